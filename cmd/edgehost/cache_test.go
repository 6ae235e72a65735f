package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCacheDirUnwritable: a cache_dir that is full (a 256 KiB tmpfs) or read-only (empty,
// or populated by an earlier start) never stops edgehost from starting and answering: it
// compiles in memory and says so. Each case runs the built binary in its own user and mount
// namespace (unshare), where it can mount a tmpfs without root.
func TestCacheDirUnwritable(t *testing.T) {
	bin, err := filepath.Abs("../../bin/edgehost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not built (make build): %v", bin, err)
	}
	if err := exec.Command("unshare", "-rm", "true").Run(); err != nil {
		t.Skipf("no user+mount namespaces here (unshare -rm: %v): cannot mount a small or read-only cache_dir", err)
	}
	img, _ := filepath.Abs(peacock)
	for _, tc := range []struct{ name, script string }{
		{"full", `mount -t tmpfs -o size=256k tmpfs "$C" && run`},
		{"read-only empty", `mount -t tmpfs -o ro tmpfs "$C" && run`},
		{"read-only populated", `mount -t tmpfs tmpfs "$C" && run >/dev/null 2>&1 && mount -o remount,ro "$C" && run`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cache := filepath.Join(dir, "cache")
			os.Mkdir(cache, 0o755)
			cfg := tempConfig(t, func(s string) string {
				return regexp.MustCompile(`(?m)^cache_dir = .*$`).ReplaceAllString(s, `cache_dir = "`+cache+`"`)
			})
			script := `run() { "$B" --config "$F" run -p classify "$I"; }; ` + tc.script
			cmd := exec.Command("unshare", "-rm", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "B="+bin, "F="+cfg, "I="+img, "C="+cache)
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("edgehost did not start and answer with cache_dir %s: %v", tc.name, err)
			}
			if !strings.Contains(string(out), `"peacock"`) {
				t.Fatalf("no peacock in the answer")
			}
			if !regexp.MustCompile("compilation cache not kept on disk|cannot write the compilation cache|cache_dir is not writable").Match(out) {
				t.Errorf("no warning that the compilation cache is not kept")
			}
		})
	}
}

// TestAddressSpaceExhausted: guest memory budgets that the address space cannot hold (64
// workers × 4095 MiB under a 16 GiB RLIMIT_AS) are a clear error naming the reservation,
// never a panic (wazero sliced the nil buffer of a failed reservation).
func TestAddressSpaceExhausted(t *testing.T) {
	bin, err := filepath.Abs("../../bin/edgehost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not built (make build): %v", bin, err)
	}
	img, _ := filepath.Abs(peacock)
	cfg := tempConfig(t, func(s string) string {
		s = strings.Replace(s, "workers = 2                    # concurrent requests", "workers = 64 # ", 1)
		return strings.Replace(s, "memory_limit_mb = 32           # guest memory budget", "memory_limit_mb = 4095", 1)
	})
	cmd := exec.Command("prlimit", "--as=17179869184", "--", bin, "--config", cfg, "run", "-p", "classify", img)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 with an error, got %v", err)
	}
	if strings.Contains(string(out), "panic") || !strings.Contains(string(out), "cannot reserve") {
		t.Fatalf("want a clear error naming the reservation, no panic")
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileFiles makes a FIFO (no writer) and a sparse 3 GiB file in dir; with /dev/zero they
// are the files a config must never block on or read whole.
func hostileFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil { // sparse: no disk, but 3 GiB to a reader
		t.Fatal(err)
	}
	f.Close()
	return map[string]string{"/dev/zero": "character device", fifo: "FIFO", huge: "over the"}
}

// TestValidateHostileFiles: `validate` with a FIFO, /dev/zero or a 3 GiB file as the
// params file, the model, a plugin or the config itself exits at once with an error naming
// the file (it hung on a FIFO and ran out of memory on /dev/zero).
func TestValidateHostileFiles(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	model := filepath.Join(root, ".deps/models/mobilenet_quant_v1_224.tflite")
	labels := filepath.Join(root, ".deps/models/mobilenet_labels.txt")
	post := filepath.Join(root, "plugins/examples/classify-c/classify-c.wasm")
	good := fmt.Sprintf(`
[models.m]
path = %q
threads = 1
[pipelines.p]
model = "m"
workers = 1
[pipelines.p.pre]
path = %q
[pipelines.p.post]
path = %q
params_files = { labels = %q }
`, model, filepath.Join(root, "plugins/examples/imagepre-c/imagepre-c.wasm"), post, labels)
	validate := func(t *testing.T, cfg string) (int, string) {
		t.Helper()
		type result struct {
			code   int
			stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, _, stderr := edgehost(t, "--config", cfg, "validate")
			done <- result{code, stderr}
		}()
		select {
		case r := <-done:
			return r.code, r.stderr
		case <-time.After(2 * time.Minute):
			t.Fatalf("validate did not return in 2 minutes")
		}
		return 0, ""
	}
	write := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if code, stderr := validate(t, write(t, good)); code != exitOK {
		t.Fatalf("the good config: exit %d: %s", code, stderr)
	}
	for file, why := range hostileFiles(t, dir) {
		for _, role := range []struct{ name, replace string }{{"params", labels}, {"model", model}, {"plugin", post}} {
			t.Run(role.name+" "+filepath.Base(file), func(t *testing.T) {
				cfg := write(t, strings.Replace(good, fmt.Sprintf("%q", role.replace), fmt.Sprintf("%q", file), 1))
				code, stderr := validate(t, cfg)
				if code != exitFailure || !strings.Contains(stderr, file) || !strings.Contains(stderr, why) {
					t.Errorf("exit %d, stderr %q: want 1 and an error naming %s and saying %q", code, stderr, file, why)
				}
			})
		}
		t.Run("config "+filepath.Base(file), func(t *testing.T) {
			code, stderr := validate(t, file)
			if code != exitFailure || !strings.Contains(stderr, file) || !strings.Contains(stderr, why) {
				t.Errorf("exit %d, stderr %q: want 1 and an error naming %s and saying %q", code, stderr, file, why)
			}
		})
	}
}

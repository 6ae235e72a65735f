package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/abi"
)

// buildBinary builds the edgehost binary once per test into a temporary directory (a few
// seconds with a warm build cache), so that tests run it as a user would.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgehost")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newcomer compiles testdata/newcomer.c with the toolchain `make deps` installs.
func newcomer(t *testing.T, name string, flags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	args := append([]string{"-O1", "-Wl,-z,stack-size=65536", "-Wl,--initial-memory=262144", "-o", out, "testdata/newcomer.c"}, flags...)
	cmd := exec.Command(filepath.Join(repoRoot(t), ".deps/bin/wasi-cc"), args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling newcomer.c %v: %v\n%s (the compiler comes from `make deps`)", flags, err, b)
	}
	return out
}

// TestPluginToolsWithoutGo: `edgehost plugin manifest` and `edgehost plugin check` work from
// the built binary with a PATH that has no go (or anything else) on it.
func TestPluginToolsWithoutGo(t *testing.T) {
	bin := buildBinary(t)
	empty := t.TempDir()
	run := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + empty, "HOME=" + empty}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("edgehost %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		return code, out.String(), errb.String()
	}
	if p, err := exec.LookPath("go"); err == nil && strings.HasPrefix(p, empty) {
		t.Fatalf("go found on the test PATH at %s", p)
	}
	good := newcomer(t, "good", "-mexec-model=reactor")
	man := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(man, []byte(`{"name":"newcomer","version":"0.1.0","abi":1,"kind":"post","content_type":"text/plain","homepage":"https://example.org"}`), 0o644); err != nil {
		t.Fatal(err)
	}

	if code, _, stderr := run("plugin", "check", good); code != exitFailure || !strings.Contains(stderr, "no \"edgehost.manifest\" custom section") {
		t.Errorf("check without a manifest: exit %d, want 1 and the missing section named", code)
	}
	code, stdout, stderr := run("plugin", "manifest", "--set", man, good)
	if code != exitOK || !strings.Contains(stdout, "manifest newcomer 0.1.0 (kind post) embedded") {
		t.Fatalf("manifest --set: exit %d", code)
	}
	if !strings.Contains(stderr, "homepage") {
		t.Errorf("manifest --set: no warning about the unknown key homepage")
	}
	wasm, _ := os.ReadFile(good)
	if raw, ok, _ := abi.CustomSection(wasm, abi.ManifestSection); !ok || !strings.Contains(string(raw), `"newcomer"`) {
		t.Fatalf("the module has no embedded manifest after --set")
	}
	if code, stdout, _ := run("plugin", "manifest", good); code != exitOK || !strings.Contains(stdout, `"kind":"post"`) {
		t.Errorf("manifest print: exit %d, stdout %q", code, stdout)
	}
	if code, stdout, _ := run("plugin", "check", good); code != exitOK || !strings.Contains(stdout, "ok: newcomer 0.1.0 (abi 1, kind post, result text/plain)") {
		t.Errorf("check: exit %d", code)
	}
	if code, _, _ := run("plugin", "check", "--kind", "pre", good); code != exitFailure {
		t.Errorf("check --kind pre of a post plugin: exit %d, want 1", code)
	}
	// Embedding it again replaces the section rather than adding one.
	run("plugin", "manifest", "--set", man, good)
	wasm, _ = os.ReadFile(good)
	secs, _ := abi.Sections(wasm)
	n := 0
	for _, s := range secs {
		if s.ID == 0 && s.Name == abi.ManifestSection {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d manifest sections after embedding twice, want 1", n)
	}

	for _, c := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"command", nil, "exports _start"},
		{"badsig", []string{"-mexec-model=reactor", "-DBADSIG"}, "export edgehost_post has signature [i32 i32] -> [i32]"},
	} {
		f := newcomer(t, c.name, c.flags...)
		if code, _, _ := run("plugin", "manifest", "--set", man, f); code != exitOK {
			t.Fatalf("%s: manifest --set: exit %d", c.name, code)
		}
		if code, _, stderr := run("plugin", "check", f); code != exitFailure || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: check: exit %d, want 1 and %q", c.name, code, c.want)
		}
		// inspect runs the same checks and says the module is not loadable.
		if code, stdout, _ := run("inspect", f); code != exitOK || !strings.Contains(stdout, "not loadable: ") || !strings.Contains(stdout, c.want) {
			t.Errorf("%s: inspect: exit %d, want the module reported not loadable (%q)", c.name, code, c.want)
		}
	}
}

// TestRunRawAndLogs: run --raw writes the post plugin's bytes unchanged, and --log-level
// shows the plugins' own log lines.
func TestRunRawAndLogs(t *testing.T) {
	img := "../../.deps/models/ssd_example.jpg"
	code, stdout, stderr := edgehost(t, "--config", shippedConfig, "run", "-p", "detect", "--raw", "--log-level", "info", img)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(stdout, `{"units":"pixels","image":{"width":1920,"height":1280},"detections":[{`) || strings.HasSuffix(stdout, "\n") {
		t.Errorf("--raw: stdout is not the compact result as the plugin wrote it: %q", stdout)
	}
	if !strings.Contains(stderr, "ssd-c: threshold=0.5") || !strings.Contains(stderr, "plugin=ssd-c") {
		t.Errorf("--log-level info: the plugin's log line is not on stderr")
	}
	if code, _, stderr := edgehost(t, "--config", shippedConfig, "run", "-p", "detect", "--log-level", "loud", img); code != exitUsage || !strings.Contains(stderr, "want trace, debug") {
		t.Errorf("--log-level loud: exit %d, want 2", code)
	}
}

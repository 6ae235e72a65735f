// Package testplugins builds the hostile test plugins of host/plugin/testdata/hostile.c for
// the host's tests, and locates the repository's models and example plugins. Test use only.
package testplugins

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/edgehost/edgehost/abi"
)

// Root is the repository root.
var Root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../../.."))
}()

// Model returns the path of a file fetched by `make deps` into .deps/models.
func Model(name string) string { return filepath.Join(Root, ".deps/models", name) }

// Example returns the path of a built example plugin, failing the test if it is missing.
func Example(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Root, "plugins/examples", name, name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run `make plugins` (%v)", p, err)
	}
	return p
}

// CC returns a command compiling C to WebAssembly with the toolchain `make deps` installs
// (.deps/bin, zig cc from PyPI ziglang). wasi selects a wasm32-wasi reactor linked with
// wasi-libc; otherwise a libc-free wasm32 module exporting every function. args are the
// remaining flags, sources and -o.
func CC(wasi bool, args ...string) *exec.Cmd {
	var base []string
	if wasi {
		base = []string{filepath.Join(Root, ".deps/bin/wasi-cc"), "-mexec-model=reactor",
			"-Wl,-z,stack-size=65536", "-Wl,--initial-memory=262144"}
	} else {
		base = []string{filepath.Join(Root, ".deps/bin/wasm32-cc"), "-nostdlib", "-Wl,--no-entry", "-rdynamic", "-fvisibility=default"}
	}
	return exec.Command(base[0], append(base[1:], args...)...)
}

// BuildC runs CC and fails the test, naming `make deps`, when the compiler is missing or fails.
func BuildC(t testing.TB, wasi bool, args ...string) {
	t.Helper()
	cmd := CC(wasi, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling C to wasm (%s): %v\n%s\n(the compiler comes from `make deps`)", cmd.Path, err, out)
	}
}

var (
	mu  sync.Mutex
	dir string
)

// Hostile builds variant v of hostile.c (compiled with -DV_<v>) with a manifest of kind
// and returns the module's path. Builds are cached for the test binary's life.
func Hostile(t testing.TB, v string, kind abi.Kind) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "edgehost-hostile")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, fmt.Sprintf("%s-%s.wasm", v, kind))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	raw := out + ".raw"
	src := filepath.Join(Root, "host/plugin/testdata/hostile.c")
	BuildC(t, true, "-O1", "-D", "V_"+v, "-o", raw, src)
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	man := fmt.Sprintf(`{"name":"hostile-%s","version":"1.0.0","abi":1,"kind":%q}`, strings.ToLower(strings.ReplaceAll(v, "_", "-")), kind)
	if b, err = abi.SetCustomSection(b, abi.ManifestSection, []byte(man)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// SeqEcho builds host/pipeline/testdata/seqecho.c, a stateful kind "both" plugin for the
// sequence tests (it counts requests per instance and reports the sequence flags and output
// tensor 0; TAG tells versions apart), and returns the module's path. Cached per tag.
func SeqEcho(t testing.TB, tag int) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "edgehost-hostile")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, fmt.Sprintf("seqecho-%d.wasm", tag))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	raw := out + ".raw"
	sdk := filepath.Join(Root, "sdk/c")
	BuildC(t, true, "-O1", fmt.Sprintf("-DTAG=%d", tag), "-I", sdk, "-o", raw,
		filepath.Join(Root, "host/pipeline/testdata/seqecho.c"), filepath.Join(sdk, "edgehost.c"), filepath.Join(sdk, "heap.c"))
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	man := fmt.Sprintf(`{"name":"seqecho","version":"1.0.%d","abi":1,"kind":"both"}`, tag)
	if b, err = abi.SetCustomSection(b, abi.ManifestSection, []byte(man)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// WithoutFrames writes a copy of example plugin name whose manifest no longer lists raw
// frames, with version 1.2.0: a pre plugin as built before ABI 1.3, for the tests that the
// host never hands such a plugin raw pixels.
func WithoutFrames(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(Example(t, name))
	if err != nil {
		t.Fatal(err)
	}
	raw, ok, err := abi.CustomSection(b, abi.ManifestSection)
	if err != nil || !ok {
		t.Fatalf("%s: no manifest: %v", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "frames")
	m["version"] = "1.2.0"
	man, _ := json.Marshal(m)
	if b, err = abi.SetCustomSection(b, abi.ManifestSection, man); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name+"-1.2.wasm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

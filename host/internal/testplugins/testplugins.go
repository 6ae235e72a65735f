// Package testplugins builds the hostile test plugins of host/plugin/testdata/hostile.c for
// the host's tests, and locates the repository's models and example plugins. Test use only.
package testplugins

import (
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
	cmd := exec.Command("clang", "--target=wasm32-wasi", "-O1", "-mexec-model=reactor", "-D", "V_"+v, "-o", raw, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building hostile plugin %s: %v\n%s", v, err, b)
	}
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

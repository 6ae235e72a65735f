package plugin_test

import (
	"context"
	"testing"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// TestInterpretUncached: a plugin missing from cache_dir loads on the provisional
// interpreter (nothing written to the cache), Recompile gives the compiled version (its
// entries written), and a runtime started later on the same cache_dir loads it compiled
// straight away. On a runtime whose engine is the interpreter the flag changes nothing.
func TestInterpretUncached(t *testing.T) {
	if !plugin.CompilerSupported() {
		t.Skip("no wazero compiler here")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := Example(t, "imagepre-c")
	cfg := plugin.Config{Path: path, InterpretUncached: true}

	a, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Load(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Interpreted() {
		t.Fatal("a plugin missing from the cache did not start on the interpreter")
	}
	if n := len(cacheFiles(t, dir)); n != 0 {
		t.Errorf("the interpreter wrote %d cache entries", n)
	}
	c, err := a.Recompile(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if c.Interpreted() || c.Hash != m.Hash {
		t.Errorf("Recompile: interpreted %v, hash %s (want the compiled %s)", c.Interpreted(), c.Hash[:12], m.Hash[:12])
	}
	if len(cacheFiles(t, dir)) == 0 {
		t.Error("Recompile wrote no cache entry")
	}
	if _, err := a.Recompile(ctx, c); err == nil {
		t.Error("Recompile of a compiled module: no error")
	}
	m.Close(ctx)
	a.KeepCache()
	c.Close(ctx)
	a.Close(ctx)

	b, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	w, err := b.Load(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	if w.Interpreted() {
		t.Error("a plugin in the cache started on the interpreter")
	}

	i, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{Engine: plugin.EngineInterpreter})
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close(ctx)
	im, err := i.Load(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close(ctx)
	if im.Interpreted() {
		t.Error("on an interpreter runtime, Interpreted (provisional) is true: nothing would ever replace it")
	}
}

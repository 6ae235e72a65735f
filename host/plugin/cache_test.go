package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// cacheFiles lists the compiled-code entries of a compilation cache directory.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "edgehost-compiled") && !strings.HasSuffix(p, ".edgehost") &&
			!strings.Contains(p, "/instrumented/") { // validated modules, not compiled code (instrumented.go)
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestCacheSharedByProcesses: two runtimes on one cache directory stand for two edgehost
// processes (a server and a `validate`, say: flock locks are per open file, so two runtimes
// of one process exclude each other as two processes do). Neither deletes what the other
// uses: a prune or a release while the other lives keeps every file, and once one is left
// alone its prune deletes what nothing it has loaded uses.
func TestCacheSharedByProcesses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	m, err := a.Load(ctx, plugin.Config{Path: Example(t, "imagepre-c")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(ctx)
	files := cacheFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no compilation cache entry written")
	}
	b, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.PruneCache(); n != 0 {
		t.Errorf("a second process pruned %d entries the first one uses", n)
	}
	mb, err := b.Load(ctx, plugin.Config{Path: Example(t, "classify-c")})
	if err != nil {
		t.Fatal(err)
	}
	mb.Release(ctx) // b's last reference: its entry is kept while a shares the directory
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("entry of the first process gone: %v", err)
		}
	}
	if len(cacheFiles(t, dir)) <= len(files) {
		t.Errorf("the second process's released entry was deleted while the directory is shared")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Alone again, a prunes what it does not use (b's entry) and keeps its own.
	if n := a.PruneCache(); n == 0 {
		t.Error("prune removed nothing once the directory was no longer shared")
	}
	if got := cacheFiles(t, dir); len(got) != len(files) {
		t.Errorf("after the prune: %v, want %v", got, files)
	}
}

// TestCacheConcurrentLoads: many goroutines load the same module bytes at once, on a cold
// and then on a warm file compilation cache, and each instantiates it from several
// goroutines. wazero v1.12.0 publishes a module read from the file cache before its entry
// preambles are compiled (upstream issue 2547): without the runtime's per-module compile
// lock a second load got the half-built module (a DATA RACE under -race, or `index out of
// range` in NewFunction without it). Concurrent NewInstance of one compiled module is the
// shape of upstream issue 2520 (a race in FunctionType.key()).
func TestCacheConcurrentLoads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	paths := []string{Example(t, "imagepre-c"), Example(t, "classify-c")}
	const loaders, instances = 6, 2
	for round := 0; round < 8; round++ { // round 0 compiles; the others read the file cache
		rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		errs := make(chan error, loaders*len(paths)*(instances+1))
		var wg sync.WaitGroup
		for i := 0; i < loaders*len(paths); i++ {
			wg.Add(1)
			go func(path string) {
				defer wg.Done()
				<-start
				m, err := rt.Load(ctx, plugin.Config{Path: path})
				if err != nil {
					errs <- err
					return
				}
				defer m.Release(ctx)
				var iw sync.WaitGroup
				for j := 0; j < instances; j++ {
					iw.Add(1)
					go func() {
						defer iw.Done()
						in, err := m.NewInstance(ctx)
						if err != nil {
							errs <- err
							return
						}
						in.Close(ctx)
					}()
				}
				iw.Wait()
			}(paths[i%len(paths)])
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		rt.KeepCache()
		if err := rt.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// cacheFiles lists the compiled-code entries of a compilation cache directory.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(filepath.Base(p), "edgehost-") {
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

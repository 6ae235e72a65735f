package plugin_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// TestCacheOldIndexDeletesOnlyOldEntries: the index of the layout before edgehost-compiled/
// (cache_dir/edgehost-cache-index.json) carries no MAC: whoever can write into cache_dir
// writes it. PruneCache deleted every regular file it named "inside cache_dir", resolved by
// path: a file another program keeps in cache_dir, and, through a symlinked folder in
// cache_dir, a file outside it (here the file beside cache_dir, as the key file is). Only
// files of the old layout's shape (cache_dir/wazero-*/NAME, in a real folder) may go.
func TestCacheOldIndexDeletesOnlyOldEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{cache, outside, filepath.Join(cache, "wazero-v1.0-amd64-linux")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victims := map[string]string{
		filepath.Join(outside, "precious.db"):   "data outside cache_dir",
		filepath.Join(cache, "important.txt"):   "another program's file in cache_dir",
		filepath.Join(cache, "sub", "data.bin"): "in a folder of cache_dir",
	}
	for p, c := range victims {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// cache/link -> ../outside, and a folder named like wazero's that is a symlink too.
	if err := os.Symlink(outside, filepath.Join(cache, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(cache, "wazero-v9-amd64-linux")); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(cache, "wazero-v1.0-amd64-linux", "0123abcd")
	if err := os.WriteFile(old, []byte("an entry of the old layout"), 0o600); err != nil {
		t.Fatal(err)
	}
	index, _ := json.Marshal(map[string][]string{"k": {
		filepath.Join(cache, "link", "precious.db"),
		filepath.Join(cache, "wazero-v9-amd64-linux", "precious.db"),
		filepath.Join(cache, "important.txt"),
		filepath.Join(cache, "sub", "data.bin"),
		old,
	}})
	if err := os.WriteFile(filepath.Join(cache, "edgehost-cache-index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	r.PruneCache()
	for p, c := range victims {
		if b, err := os.ReadFile(p); err != nil || string(b) != c {
			t.Errorf("PruneCache deleted %s, which the unauthenticated old index named: %v", p, err)
		}
	}
	if _, err := os.Lstat(old); err == nil {
		t.Errorf("the old layout's entry %s was kept", old)
	}
}

// TestCacheSymlinkedVersionFolder: a version folder inside edgehost-compiled/ that is a
// symlink (to a folder elsewhere holding a file named like the entry) is never written or
// deleted through: the foreign file keeps its content after a load and a release, and
// nothing is written into the folder the symlink names.
func TestCacheSymlinkedVersionFolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Learn the entry's name (wazero's version folder and key) from a scratch cache.
	scratch := filepath.Join(dir, "scratch")
	r0, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: scratch})
	if err != nil {
		t.Fatal(err)
	}
	m0, err := r0.Load(ctx, plugin.Config{Path: Example(t, "classify-c")})
	if err != nil {
		t.Fatal(err)
	}
	r0.KeepCache()
	m0.Release(ctx)
	r0.Close(ctx)
	files := cacheFiles(t, scratch)
	if len(files) == 0 {
		t.Fatal("no entry in the scratch cache")
	}
	rel, _ := filepath.Rel(filepath.Join(scratch, "edgehost-compiled"), files[0])
	folder, name := filepath.Split(rel)

	cache := filepath.Join(dir, "cache")
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o755)
	if err := os.MkdirAll(filepath.Join(cache, "edgehost-compiled"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(cache, "edgehost-compiled", filepath.Clean(folder))); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, name)
	if err := os.WriteFile(victim, []byte("not edgehost's"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m, err := r.Load(ctx, plugin.Config{Path: Example(t, "classify-c")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(victim)
	if err != nil || string(b) != "not edgehost's" {
		t.Errorf("a load wrote through the symlinked version folder over %s: %v (%d bytes)", victim, err, len(b))
	}
	m.Release(ctx)
	if b, err := os.ReadFile(victim); err != nil || string(b) != "not edgehost's" {
		t.Errorf("after the release, %s: %v (%d bytes)", victim, err, len(b))
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("edgehost wrote into the folder a symlink in edgehost-compiled names: %v", names)
	}
}

// TestCacheOwnFolderSwapped: edgehost-compiled is checked when the runtime opens the cache,
// then used by path. Whoever can write cache_dir can rename the folder (renaming a
// directory within its parent needs no right on the directory itself) and put a symlink in
// its place: entries and records were then written into the folder the symlink names, and
// deleted there at release.
func TestCacheOwnFolderSwapped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	elsewhere := filepath.Join(dir, "elsewhere")
	os.MkdirAll(elsewhere, 0o700)
	r, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	own := filepath.Join(cache, "edgehost-compiled")
	if err := os.Rename(own, filepath.Join(cache, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, own); err != nil {
		t.Fatal(err)
	}
	m, err := r.Load(ctx, plugin.Config{Path: Example(t, "classify-c")})
	if err != nil {
		t.Fatal(err)
	}
	m.Release(ctx)
	var wrote []string
	filepath.WalkDir(elsewhere, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != elsewhere {
			wrote = append(wrote, p)
		}
		return nil
	})
	if len(wrote) > 0 {
		t.Errorf("edgehost wrote through the symlink that replaced edgehost-compiled: %v", wrote)
	}
}

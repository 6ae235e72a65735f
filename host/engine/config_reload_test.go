package engine_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// TestConfigReload: a changed config applies pipeline by pipeline; a broken one changes
// nothing and is reported in Status.
func TestConfigReload(t *testing.T) {
	f := newFixture(t, "")
	orig, _ := os.ReadFile(f.cfgPath)
	ctx := context.Background()

	// A config that does not parse: nothing changes.
	os.WriteFile(f.cfgPath, append(append([]byte{}, orig...), "\n[pipelines.p\n"...), 0o644)
	f.e.ReloadFile(ctx, f.cfgPath)
	st := f.e.Status()
	if st.Config.LastError == "" || !strings.Contains(st.Config.LastError, "config.toml:") {
		t.Fatalf("broken config not reported: %+v", st.Config)
	}
	if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
		t.Fatalf("not serving after a broken config: %v %s", err, out)
	}

	// A valid change: a second pipeline, and fewer workers for the first.
	next := strings.Replace(string(orig), "workers = 2", "workers = 1", 1) + `
[pipelines.q]
model = "mobilenet"
workers = 1
[pipelines.q.pre]
path = "` + testplugins.Example(t, "imagepre-c") + `"
[pipelines.q.post]
path = "` + testplugins.Example(t, "classify-c") + `"
params = { top_k = 1 }
`
	os.WriteFile(f.cfgPath, []byte(next), 0o644)
	f.e.ReloadFile(ctx, f.cfgPath)
	st = f.e.Status()
	if st.Config.LastError != "" {
		t.Fatalf("valid config rejected: %s", st.Config.LastError)
	}
	p, _ := f.e.Pipeline("p")
	if _, total := p.Pipeline.Usage(); total != 1 {
		t.Errorf("pipeline p has %d workers, want 1", total)
	}
	if _, ok := f.e.Pipeline("q"); !ok {
		t.Fatal("pipeline q was not added")
	}

	// One bad pipeline does not stop the others: q's post now names a missing file.
	bad := strings.Replace(next, testplugins.Example(t, "classify-c"), "/nonexistent/post.wasm", 1)
	bad = strings.Replace(bad, "workers = 1", "workers = 2", 1) // p changes too
	os.WriteFile(f.cfgPath, []byte(bad), 0o644)
	f.e.ReloadFile(ctx, f.cfgPath)
	st = f.e.Status()
	if !strings.Contains(st.Pipelines["q"].LastError, "/nonexistent/post.wasm") {
		t.Errorf("q's failure not reported: %+v", st.Pipelines["q"])
	}
	if _, total := p.Pipeline.Usage(); total != 2 {
		t.Errorf("pipeline p was not updated beside the failing q (workers %d)", total)
	}
	q, _ := f.e.Pipeline("q")
	if q.Post.Path != testplugins.Example(t, "classify-c") {
		t.Errorf("q no longer runs its last good post plugin: %s", q.Post.Path)
	}

	// Removing a pipeline drains and removes it.
	os.WriteFile(f.cfgPath, orig, 0o644)
	f.e.ReloadFile(ctx, f.cfgPath)
	if _, ok := f.e.Pipeline("q"); ok {
		t.Error("pipeline q still there after its removal from the config")
	}
}

// TestModelReload: a corrupt model file is rejected; a changed valid one moves the
// pipelines onto it.
func TestModelReload(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	good, _ := os.ReadFile(testplugins.Model("mobilenet_quant_v1_224.tflite"))
	model := f.e.Config().Models["mobilenet"].Path
	// The fixture points at .deps/models: use a private copy instead.
	local := f.dir + "/mobilenet.tflite"
	os.WriteFile(local, good, 0o644)
	cfg, _ := os.ReadFile(f.cfgPath)
	os.WriteFile(f.cfgPath, []byte(strings.Replace(string(cfg), model, local, 1)), 0o644)
	f.e.ReloadFile(ctx, f.cfgPath)
	m, _ := f.e.Model("mobilenet")
	if m.Config.Path != local {
		t.Fatalf("model path not updated: %s (%s)", m.Config.Path, f.e.Status().Config.LastError)
	}

	os.WriteFile(local, good[:len(good)/2], 0o644)
	f.e.ReloadFile(ctx, local)
	if st := f.e.Status(); !strings.Contains(st.Models["mobilenet"].LastError, "bad model") {
		t.Fatalf("truncated model not rejected: %+v", st.Models["mobilenet"])
	}
	if _, err := f.run(); err != nil {
		t.Fatalf("not serving after a bad model: %v", err)
	}

	changed := append(append([]byte{}, good...), make([]byte, 64)...) // same graph, new bytes
	os.WriteFile(local, changed, 0o644)
	f.e.ReloadFile(ctx, local)
	m2, _ := f.e.Model("mobilenet")
	if m2 == m || m2.Hash != sha(changed) {
		t.Fatalf("model not swapped: %+v", f.e.Status().Models["mobilenet"])
	}
	if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
		t.Fatalf("after model swap: %v %s", err, out)
	}
}

// TestSignaturesOnReload: with signatures required, an unsigned or tampered new version is
// rejected on hot reload; a version signed by a trusted key is swapped in.
func TestSignaturesOnReload(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	v1, _ := plugin.Sign(echo(t, dir, 1), priv)
	f := newSignedFixture(t, v1, base64.StdEncoding.EncodeToString(pub), priv)
	ctx := context.Background()
	good := f.postHash()

	unsigned := echo(t, dir, 2)
	os.WriteFile(f.post, unsigned, 0o644)
	f.e.ReloadFile(ctx, f.post)
	if f.postHash() != good || !strings.Contains(f.e.Status().Pipelines["p"].Post.LastError, "unsigned") {
		t.Fatalf("unsigned version: %+v", f.e.Status().Pipelines["p"].Post)
	}
	signed, _ := plugin.Sign(echo(t, dir, 2), priv)
	tampered := append([]byte{}, signed...)
	tampered[len(tampered)/2] ^= 1
	os.WriteFile(f.post, tampered, 0o644)
	f.e.ReloadFile(ctx, f.post)
	if f.postHash() != good {
		t.Fatal("tampered version swapped in")
	}
	os.WriteFile(f.post, signed, 0o644)
	f.e.ReloadFile(ctx, f.post)
	if f.postHash() != sha(signed) {
		t.Fatalf("signed version not swapped in: %+v", f.e.Status().Pipelines["p"].Post)
	}
}

// TestCachePrunedAtStart: compiled entries edgehost wrote that no loaded plugin uses (a
// version replaced while edgehost was stopped) are deleted at start; files edgehost did not
// write are never touched, over 10 starts; a restart reuses the entries of the plugins in
// use (a clean stop keeps them).
func TestCachePrunedAtStart(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	foreign := map[string]string{
		filepath.Join(cache, "important.txt"):                     "user data",
		filepath.Join(cache, "sub", "data.bin"):                   "more user data",
		filepath.Join(cache, "models.tflite"):                     "not ours",
		filepath.Join(cache, "wazero-old", "0123456789abcdef"):    "another program's cache",
		filepath.Join(cache, "edgehost-compiled", "stray", "bin"): "no record: not ours either",
	}
	for p, c := range foreign {
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(c), 0o644)
	}
	// Version 2 of the post plugin runs and stops cleanly: its entry is kept.
	f0 := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 2), "", "")
	withV2 := cacheFiles(t, dir)
	f0.e.Close(context.Background())
	// Version 1 replaced it while edgehost was stopped: the next start deletes v2's entry.
	f := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", "")
	entries := cacheFiles(t, dir)
	if len(entries) == 0 || len(entries) >= len(withV2)+1 {
		t.Fatalf("entries before %v, after the start %v: the replaced version's entry was not pruned", withV2, entries)
	}
	written := map[string]time.Time{}
	for _, p := range entries {
		if st, err := os.Stat(p); err == nil {
			written[p] = st.ModTime()
		}
	}
	// A clean stop keeps every entry; a second engine on the same cache (a restart) reuses
	// them: it adds none and rewrites none. Ten restarts leave the foreign files alone.
	f.e.Close(context.Background())
	if got := cacheFiles(t, dir); strings.Join(got, ",") != strings.Join(entries, ",") {
		t.Fatalf("a clean stop changed the cache entries:\n%v\n%v", entries, got)
	}
	time.Sleep(20 * time.Millisecond) // a rewrite would get a later modification time
	for i := 0; i < 10; i++ {
		f2 := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", "")
		if got := cacheFiles(t, dir); strings.Join(got, ",") != strings.Join(entries, ",") {
			t.Fatalf("start %d: cache entries changed across a restart:\n%v\n%v", i, entries, got)
		}
		if i == 0 {
			if _, err := f2.run(); err != nil {
				t.Fatal(err)
			}
		}
		f2.e.Close(context.Background())
	}
	for p, mt := range written {
		if st, err := os.Stat(p); err != nil || !st.ModTime().Equal(mt) {
			t.Fatalf("cache entry %s was rewritten on restart (not reused): %v", p, err)
		}
	}
	for p, c := range foreign {
		if b, err := os.ReadFile(p); err != nil || string(b) != c {
			t.Errorf("a file edgehost did not write was touched: %s: %v", p, err)
		}
	}
}

// TestCacheDirSymlink: a cache_dir that is a symlink is used through it, never deleted.
func TestCacheDirSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real-cache")
	os.MkdirAll(real, 0o755)
	if err := os.Symlink(real, filepath.Join(dir, "cache")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1+i%2), "", "")
		if _, err := f.run(); err != nil {
			t.Fatal(err)
		}
		f.e.Close(context.Background())
		if fi, err := os.Lstat(filepath.Join(dir, "cache")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("start %d: the cache_dir symlink is gone: %v", i, err)
		}
	}
	if len(cacheFiles(t, dir)) == 0 {
		t.Fatal("no compiled entry written through the symlink")
	}
}

// TestCacheTampered: a compiled entry overwritten with other machine code (int3 bytes, and
// wazero's own CRC32C checksum fixed up, so wazero itself would accept it) is never
// executed: its MAC fails, the plugin is compiled again, the fresh entry replaces it and
// the pipeline answers. A corrupted entry (flipped bytes) likewise, never fatal.
func TestCacheTampered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"int3 with a valid checksum", int3Entry},
		{"16 flipped bytes", func(b []byte) []byte {
			out := append([]byte(nil), b...)
			for i := 0; i < 16; i++ {
				out[len(out)/3+i*97] ^= 0xff
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", "")
			f.e.Close(context.Background())
			entries := cacheFiles(t, dir)
			if len(entries) == 0 {
				t.Fatal("no entries")
			}
			damaged := map[string][]byte{}
			for _, p := range entries {
				b, _ := os.ReadFile(p)
				damaged[p] = tc.damage(b)
				os.WriteFile(p, damaged[p], 0o600)
			}
			f2 := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", "")
			defer f2.e.Close(context.Background())
			if out, err := f2.run(); err != nil || !strings.Contains(out, `"version":1`) {
				t.Fatalf("after tampering: %v %s", err, out)
			}
			for p, d := range damaged {
				if b, _ := os.ReadFile(p); bytes.Equal(b, d) {
					t.Errorf("the damaged entry %s was not replaced by a fresh compile", p)
				}
			}
		})
	}
}

// int3Entry overwrites the machine code of a wazero (v1.12) cache entry with int3 and
// recomputes its CRC32C, as a local attacker would: wazero's own checks accept it. Layout:
// "WAZEVO", version length and version, function count (u32) and offsets (u64 each), code
// length (u64), code, CRC32C (u32), source map.
func int3Entry(b []byte) []byte {
	out := append([]byte(nil), b...)
	off := 6 + 1 + int(out[6])
	n := int(binary.LittleEndian.Uint32(out[off:]))
	off += 4 + 8*n
	codeLen := int(binary.LittleEndian.Uint64(out[off:]))
	off += 8
	code := out[off : off+codeLen]
	for i := range code {
		code[i] = 0xcc
	}
	binary.LittleEndian.PutUint32(out[off+codeLen:], crc32.Checksum(code, crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// cacheFiles lists the compiled entries edgehost keeps in dir/cache (those with a record).
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, "cache", "edgehost-compiled"), func(p string, d fs.DirEntry, err error) error {
		if _, rec := os.Stat(p + ".edgehost"); err == nil && !d.IsDir() && rec == nil &&
			!strings.Contains(p, "/instrumented/") { // validated modules, not compiled code
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

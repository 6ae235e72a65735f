package engine_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
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

// TestCachePrunedAtStart: compilation cache entries that no loaded plugin uses (left by
// versions replaced while edgehost was stopped) are deleted at start; a restart reuses the
// entries of the plugins in use (a clean stop keeps them).
func TestCachePrunedAtStart(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "cache", "wazero-old", "0123456789abcdef")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("stale compiled code"), 0o644)
	f := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", "")
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale cache entry survived the start: %v", err)
	}
	entries := cacheFiles(t, dir)
	if len(entries) == 0 {
		t.Fatal("no cache entries for the plugins in use")
	}
	written := map[string]time.Time{}
	for _, p := range entries {
		if st, err := os.Stat(p); err == nil {
			written[p] = st.ModTime()
		}
	}
	// A clean stop keeps every entry; a second engine on the same cache (a restart) reuses
	// them: it adds none and rewrites none.
	f.e.Close(context.Background())
	if got := cacheFiles(t, dir); strings.Join(got, ",") != strings.Join(entries, ",") {
		t.Fatalf("a clean stop changed the cache entries:\n%v\n%v", entries, got)
	}
	time.Sleep(20 * time.Millisecond) // a rewrite would get a later modification time
	f2 := makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", "")
	if got := cacheFiles(t, dir); strings.Join(got, ",") != strings.Join(entries, ",") {
		t.Fatalf("cache entries changed across a restart:\n%v\n%v", entries, got)
	}
	for p, mt := range written {
		if st, err := os.Stat(p); err != nil || !st.ModTime().Equal(mt) {
			t.Fatalf("cache entry %s was rewritten on restart (not reused): %v", p, err)
		}
	}
	if _, err := f2.run(); err != nil {
		t.Fatal(err)
	}
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, "cache"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), "edgehost-cache-index") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

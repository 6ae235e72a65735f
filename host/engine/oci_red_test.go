package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/hashicorp/go-hclog"
)

// TestOCIPinnedCacheRecordForged: a source pinned by manifest digest that is in the cache
// needs no registry. What the cache holds is checked against its record only (the file
// hashes to the record's layer digest), and the record is trusted for the rest: nothing
// ties its layer to the pinned manifest. Whoever can write the cache (inside
// runtime.cache_dir by default, the directory whose writers the compilation cache's MAC is
// there to stop) writes any plugin or model with a record naming the pinned digest, and it
// serves, with no registry ever asked. Here the manifest digest pinned is of no manifest at
// all; the bytes in the cache must not serve for it.
func TestOCIPinnedCacheRecordForged(t *testing.T) {
	dir := t.TempDir()
	pre := filepath.Join(dir, "pre.wasm")
	if err := os.WriteFile(pre, mustRead(t, testplugins.Example(t, "imagepre-c")), 0o644); err != nil {
		t.Fatal(err)
	}
	pin := sha256.Sum256([]byte("the manifest the operator pinned, never pulled here"))
	src := fmt.Sprintf("oci://127.0.0.1:1/plugins/echo@sha256:%x", pin)
	ref, err := config.ParseOCIRef(src)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	planted := echo(t, dir, 9)
	path := ref.CachePath(filepath.Join(cache, "edgehost-oci"), "plugin.wasm")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, planted, 0o644); err != nil {
		t.Fatal(err)
	}
	layer := sha256.Sum256(planted)
	rec, _ := json.Marshal(map[string]any{"ref": src, "manifest": "sha256:" + hex.EncodeToString(pin[:]),
		"layer": "sha256:" + hex.EncodeToString(layer[:]), "size": len(planted), "version": "9.0.0"})
	if err := os.WriteFile(path+".oci.json", rec, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf(`[runtime]
cache_dir = %q
[models.mobilenet]
path = %q
threads = 1
[pipelines.p]
model = "mobilenet"
workers = 1
[pipelines.p.pre]
path = %q
[pipelines.p.post]
source = %q
`, cache, testplugins.Model("mobilenet_quant_v1_224.tflite"), pre, src)
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(context.Background(), c, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}))
	if err != nil {
		t.Logf("refused: %v", err)
		return
	}
	defer e.Close(context.Background())
	p, ok := e.Pipeline("p")
	if !ok {
		return
	}
	img := mustRead(t, testplugins.Model("peacock.png"))
	var out string
	if _, err := p.Pipeline.Run(context.Background(), strings.NewReader(string(img)), len(img), func(b []byte, _ string) error { out = string(b); return nil }); err == nil &&
		strings.Contains(out, `"version":9`) {
		t.Errorf("a plugin planted in the OCI cache with a record naming the pinned digest serves (%s), no registry asked", out)
	}
}

// TestOCITagCacheRecordForged: a tag resolved again at start, with the registry online,
// to the manifest the cache record names: the cached copy was kept as it was, checked only
// against the record's own layer digest. A copy and a record rewritten together (same
// manifest digest, the planted file's layer) served instead of the registry's bytes.
func TestOCITagCacheRecordForged(t *testing.T) {
	f := newOCIFixture(t)
	writeFile(t, filepath.Join(f.dir, "pre.wasm"), mustRead(t, testplugins.Example(t, "imagepre-c")))
	f.config(t, fmt.Sprintf("[runtime]\ncache_dir = %q\n[oci]\npoll_interval = \"0s\"\n", filepath.Join(f.dir, "cache")), "")
	f.push(t, echo(t, f.dir, 1))
	e, err := f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.version(t, e); v != 1 {
		t.Fatalf("serving %d, want 1", v)
	}
	e.Close(context.Background())
	cached := f.ref.CachePath(filepath.Join(f.dir, "cache", "edgehost-oci"), "plugin.wasm")
	planted := echo(t, f.dir, 9)
	if err := os.WriteFile(cached, planted, 0o644); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(mustRead(t, cached+".oci.json"), &rec); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(planted)
	rec["layer"], rec["size"] = "sha256:"+hex.EncodeToString(sum[:]), len(planted)
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(cached+".oci.json", b, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err = f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if v := f.version(t, e); v != 1 {
		t.Errorf("serving version %d from a rewritten cache copy, with the registry online serving 1", v)
	}
}

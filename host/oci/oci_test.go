package oci_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/oci"
	"github.com/edgehost/edgehost/internal/testservers"
)

func ref(t *testing.T, s string) config.OCIRef {
	t.Helper()
	r, err := config.ParseOCIRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPushPullTamper: a plugin and a model pushed to a real registry come back byte for
// byte, by tag and by digest; a blob altered in the registry's storage is refused; a
// reference pinned to a digest never gets other bytes.
func TestPushPullTamper(t *testing.T) {
	reg := testservers.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	wasm, err := os.ReadFile(testplugins.Example(t, "classify-c"))
	if err != nil {
		t.Fatal(err)
	}
	model, err := os.ReadFile(testplugins.Model("mobilenet_quant_v1_224.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, repo string
		data       []byte
		typ        string
	}{{"plugin", "plugins/classify", wasm, oci.ArtifactPlugin}, {"model", "models/mobilenet", model, oci.ArtifactModel}} {
		t.Run(c.name, func(t *testing.T) {
			r := ref(t, "oci://"+reg.Addr+"/"+c.repo+":v1")
			p, err := oci.Push(ctx, r, c.data, c.name, oci.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Type != c.typ {
				t.Errorf("pushed as %s, want %s", p.Type, c.typ)
			}
			a, err := oci.Pull(ctx, r, tmp, oci.Options{})
			if err != nil {
				t.Fatal(err)
			}
			data := mustRead(t, a.File)
			a.Close()
			if string(data) != string(c.data) || a.Manifest != p.Manifest || a.Type != c.typ || a.Size != int64(len(c.data)) {
				t.Fatalf("pulled %d bytes, manifest %s, type %s; pushed %d, %s", len(data), a.Manifest, a.Type, len(c.data), p.Manifest)
			}
			byDigest := ref(t, "oci://"+reg.Addr+"/"+c.repo+"@"+string(p.Manifest))
			if a, err = oci.Pull(ctx, byDigest, tmp, oci.Options{}); err != nil || string(mustRead(t, a.File)) != string(c.data) {
				t.Fatalf("pull by digest: %v", err)
			}
			a.Close()
			// A pinned digest that does not exist is an error, not another artifact.
			wrong := ref(t, "oci://"+reg.Addr+"/"+c.repo+"@sha256:"+strings.Repeat("0", 64))
			if _, err := oci.Pull(ctx, wrong, tmp, oci.Options{}); err == nil {
				t.Fatal("pulled an artifact by a digest nobody pushed")
			}
		})
	}
	// Tamper with the plugin's layer in the registry's storage: the pull must fail on the digest.
	r := ref(t, "oci://"+reg.Addr+"/plugins/classify:v1")
	a, err := oci.Pull(ctx, r, tmp, oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	blob := reg.BlobPath(string(a.Layer))
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("registry storage layout: %v", err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = oci.Pull(ctx, r, tmp, oci.Options{})
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("a tampered layer was accepted (err %v)", err)
	}
	t.Logf("tampered layer refused: %v", err)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("pulls left %d files in the pull directory", len(left))
	}
	// Not an edgehost artifact: refused at push.
	if _, err := oci.Push(ctx, r, []byte("hello, not a module"), "x", oci.Options{}); err == nil {
		t.Fatal("pushed a file that is neither a module nor a model")
	}
}

// TestCacheRecord: a cached copy modified on disk is refused by Load; Restore puts back
// the copy the last Store replaced.
func TestCacheRecord(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/a/plugin.wasm"
	wasm := mustRead(t, testplugins.Example(t, "classify-c"))
	stage := func(b []byte) *oci.Artifact {
		f := filepath.Join(dir, fmt.Sprintf("staged-%d", len(b)))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return &oci.Artifact{Manifest: digestOf(append([]byte("m"), b...)), Layer: digestOf(b), Type: oci.ArtifactPlugin, Size: int64(len(b)), File: f}
	}
	a := stage(wasm)
	if err := oci.Store(path, a, oci.Cached{Ref: "r", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	if rec, err := oci.Load(path); err != nil || rec.Manifest != string(a.Manifest) || rec.Version != "1.0.0" || rec.Size != int64(len(wasm)) {
		t.Fatalf("load: %+v, %v", rec, err)
	}
	// A second version, then back to the first.
	b := stage(append(append([]byte{}, wasm...), 0))
	if err := oci.Store(path, b, oci.Cached{Ref: "r", Version: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if rec, err := oci.Load(path); err != nil || rec.Version != "2.0.0" {
		t.Fatalf("load v2: %+v, %v", rec, err)
	}
	if err := oci.Restore(path); err != nil {
		t.Fatal(err)
	}
	if rec, err := oci.Load(path); err != nil || rec.Version != "1.0.0" || string(mustRead(t, path)) != string(wasm) {
		t.Fatalf("after Restore: %+v, %v", rec, err)
	}
	// A Store interrupted between its renames (new bytes, record still at .next) is finished.
	c := stage(append(append([]byte{}, wasm...), 0, 0))
	if err := os.WriteFile(path+".oci.json.next", []byte(`{"ref":"r","manifest":"`+string(c.Manifest)+`","layer":"`+string(c.Layer)+`","version":"3.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c.File, path); err != nil {
		t.Fatal(err)
	}
	if rec, err := oci.Load(path); err != nil || rec.Version != "3.0.0" {
		t.Fatalf("after an interrupted Store: %+v, %v", rec, err)
	}
	if rec, err := oci.Load(path); err != nil || rec.Version != "3.0.0" {
		t.Fatalf("the interrupted Store was not finished: %+v, %v", rec, err)
	}
	wasm[100] ^= 1
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := oci.Load(path); err == nil || !strings.Contains(err.Error(), "modified") {
		t.Fatalf("a modified cached copy loaded (err %v)", err)
	}
}

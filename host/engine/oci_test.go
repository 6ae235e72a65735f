package engine_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/oci"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
)

// TestOCITagSwap: the post plugin comes from a real registry (docker-registry 2.8.2 on
// loopback) with signatures required. v1 serves; v2 pushed to the same tag is swapped in
// under 8 concurrent clients with 0 failed requests; then an unsigned artifact, one
// modified after signing and one of the wrong kind are pushed to that tag and never serve
// (each is shown in /status), and the registry stopping changes nothing but /status; a layer tampered in the registry's storage stops a fresh
// start that has no cached copy, and a start with the cache keeps serving from it.
func TestOCITagSwap(t *testing.T) {
	reg := testservers.Registry(t)
	engine.Settle = 60 * time.Millisecond
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(b []byte) []byte {
		s, err := plugin.Sign(b, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pre := sign(mustRead(t, testplugins.Example(t, "imagepre-c")))
	prePath := filepath.Join(dir, "pre.wasm")
	if err := os.WriteFile(prePath, pre, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := "oci://" + reg.Addr + "/plugins/echo:stable"
	ref, err := config.ParseOCIRef(src)
	if err != nil {
		t.Fatal(err)
	}
	push := func(b []byte) string {
		t.Helper()
		p, err := oci.Push(ctx, ref, b, "echo.wasm", oci.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return string(p.Manifest)
	}
	v1, v2 := sign(echo(t, dir, 1)), sign(echo(t, dir, 2))
	push(v1)
	cfgText := fmt.Sprintf(`
[trust]
keys = [%q]
require_signatures = true
[oci]
cache_dir = %q
poll_interval = "100ms"
[models.mobilenet]
path = %q
threads = 1
[pipelines.p]
model = "mobilenet"
workers = 2
[pipelines.p.pre]
path = %q
[pipelines.p.post]
source = %q
`, base64.StdEncoding.EncodeToString(pub), filepath.Join(dir, "oci"), testplugins.Model("mobilenet_quant_v1_224.tflite"), prePath, src)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*engine.Engine, error) {
		c, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return engine.New(ctx, c, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}))
	}
	e, err := start()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	w, err := e.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := e.PollSources(ctx)
	defer stop()
	img := mustRead(t, testplugins.Model("peacock.png"))
	run := func() (string, error) {
		p, ok := e.Pipeline("p")
		if !ok {
			return "", fmt.Errorf("no pipeline")
		}
		var out string
		_, err := p.Pipeline.Run(ctx, bytes.NewReader(img), len(img), func(b []byte, _ string) error { out = string(b); return nil })
		return out, err
	}
	if out, err := run(); err != nil || !strings.HasPrefix(out, `{"ok":true,"version":1,`) {
		t.Fatalf("v1 from the registry: %q, %v", out, err)
	}
	source := func() engine.SourceStatus { return e.Status().Sources[src] }

	// 8 clients while the tag moves to v2.
	var stopClients atomic.Bool
	var requests, failures, fromV2 atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopClients.Load() {
				out, err := run()
				requests.Add(1)
				switch {
				case err != nil:
					failures.Add(1)
					t.Errorf("request failed during the tag swap: %v", err)
				case strings.HasPrefix(out, `{"ok":true,"version":2,`):
					fromV2.Add(1)
				case !strings.HasPrefix(out, `{"ok":true,"version":1,`):
					failures.Add(1)
					t.Errorf("response from neither version: %q", out)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	pushed := time.Now()
	d2 := push(v2)
	waitFor(t, "v2 serving", time.Minute, func() bool { return source().Manifest == d2 && fromV2.Load() > 0 })
	swapTook := time.Since(pushed)
	time.Sleep(300 * time.Millisecond)

	// Bad artifacts on the same tag: none may serve; each is reported.
	unsigned := echo(t, dir, 3)
	modified, err := abi.SetCustomSection(sign(echo(t, dir, 4)), abi.ManifestSection, []byte(`{"name":"echo","version":"4.0.1","abi":1,"kind":"post"}`))
	if err != nil {
		t.Fatal(err)
	}
	wrongKind, err := abi.SetCustomSection(echo(t, dir, 5), abi.ManifestSection, []byte(`{"name":"echo","version":"5.0.0","abi":1,"kind":"pre"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		b    []byte
		why  string
	}{{"unsigned", unsigned, "not signed"}, {"modified after signing", modified, "modified after signing"}, {"wrong kind", sign(wrongKind), "rejected by the reload"}} {
		d := push(bad.b)
		waitFor(t, bad.name+" rejected", time.Minute, func() bool { return source().Rejected == d })
		if st := source(); !strings.Contains(st.LastError, bad.why) || st.Manifest != d2 {
			t.Errorf("%s: status %+v, want the error to say %q and v2 to stay", bad.name, st, bad.why)
		}
		t.Logf("%s: %s", bad.name, source().LastError)
	}
	// The registry goes away: v2 keeps serving (the clients are still running) and /status says why.
	reg.Stop()
	waitFor(t, "registry down in /status", time.Minute, func() bool { return strings.Contains(source().LastError, "registry unreachable") })
	t.Logf("registry down: %s", source().LastError)
	reg.Restart()
	waitFor(t, "registry back in /status", time.Minute, func() bool { return strings.Contains(source().LastError, "rejected by the reload") })
	stopClients.Store(true)
	wg.Wait()
	t.Logf("tag swap under 8 clients: %d requests, %d from v2, %d failed; v2 served %.2f s after the push",
		requests.Load(), fromV2.Load(), failures.Load(), swapTook.Seconds())
	if failures.Load() != 0 {
		t.Fatal("requests failed")
	}
	if out, err := run(); err != nil || !strings.HasPrefix(out, `{"ok":true,"version":2,`) {
		t.Fatalf("after the bad pushes: %q, %v (want v2)", out, err)
	}
	cachedPath := filepath.Join(dir, "oci", strings.ReplaceAll(reg.Addr, ":", "_"), "plugins/echo/stable/plugin.wasm")
	_, err = oci.Load(cachedPath)
	if cached, _ := os.ReadFile(cachedPath); err != nil || !bytes.Equal(cached, v2) {
		t.Fatalf("the cache does not hold v2 (the serving version) after the rejections: %v", err)
	}
	stop()
	w.Close()
	e.Close(context.Background())

	// Tamper with the tag's current layer (the wrong-kind one) inside the registry. A start with
	// the cache serves v2 from it and says why in /status; a start without any cache fails.
	a, err := oci.Pull(ctx, ref, t.TempDir(), oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	blob := reg.BlobPath(string(a.Layer))
	b := mustRead(t, blob)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e2, err := start()
	if err != nil {
		t.Fatalf("start with a cached copy and a tampered registry: %v", err)
	}
	st := e2.Status().Sources[src]
	e2.Close(context.Background())
	if !strings.Contains(st.LastError, "digest") || st.Manifest != d2 {
		t.Fatalf("status after a tampered pull: %+v", st)
	}
	if err := os.RemoveAll(filepath.Join(dir, "oci")); err != nil {
		t.Fatal(err)
	}
	if e3, err := start(); err == nil {
		e3.Close(context.Background())
		t.Fatal("started from a tampered artifact")
	} else if !strings.Contains(err.Error(), "digest") {
		t.Fatalf("error does not name the digest: %v", err)
	}
}

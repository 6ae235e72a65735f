package engine_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/oci"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
)

// ociFixture: a real registry (docker-registry 2.8.2 on loopback) and a config whose post
// plugin is the tag src of it: imagepre-c → mobilenet → echo (from the registry).
type ociFixture struct {
	reg     *testservers.Server
	dir     string
	src     string
	ref     config.OCIRef
	cfgPath string
	ctx     context.Context
	img     []byte
}

func newOCIFixture(t *testing.T) *ociFixture {
	t.Helper()
	f := &ociFixture{reg: testservers.Registry(t), dir: t.TempDir()}
	f.src = "oci://" + f.reg.Addr + "/plugins/echo:stable"
	var err error
	if f.ref, err = config.ParseOCIRef(f.src); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	f.ctx = ctx
	f.img = mustRead(t, testplugins.Model("peacock.png"))
	f.cfgPath = filepath.Join(f.dir, "config.toml")
	return f
}

// config writes the config: top (sections before the models), then post (keys of the
// post plugin's table; its source is f.src unless post sets one).
func (f *ociFixture) config(t *testing.T, top, post string) {
	t.Helper()
	if !strings.Contains(post, "source =") {
		post = fmt.Sprintf("source = %q\n", f.src) + post
	}
	text := top + fmt.Sprintf(`
[models.mobilenet]
path = %q
threads = 1
[pipelines.p]
model = "mobilenet"
workers = 1
[pipelines.p.pre]
path = %q
[pipelines.p.post]
%s`, testplugins.Model("mobilenet_quant_v1_224.tflite"), f.prePath(t), post)
	if err := os.WriteFile(f.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *ociFixture) prePath(t *testing.T) string {
	p := filepath.Join(f.dir, "pre.wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the fixture's pre plugin is missing: %v", err)
	}
	return p
}

func (f *ociFixture) push(t *testing.T, b []byte) string {
	t.Helper()
	p, err := oci.Push(f.ctx, f.ref, b, "echo.wasm", oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return string(p.Manifest)
}

func (f *ociFixture) start(t *testing.T) (*engine.Engine, error) {
	t.Helper()
	c, err := config.Load(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(f.ctx, c, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}))
}

// version runs the pipeline once and returns the echo plugin's version in the result.
func (f *ociFixture) version(t *testing.T, e *engine.Engine) int {
	t.Helper()
	p, ok := e.Pipeline("p")
	if !ok {
		t.Fatal("no pipeline p")
	}
	var out string
	if _, err := p.Pipeline.Run(f.ctx, strings.NewReader(string(f.img)), len(f.img), func(b []byte, _ string) error { out = string(b); return nil }); err != nil {
		t.Fatalf("request: %v", err)
	}
	var v int
	if _, err := fmt.Sscanf(out, `{"ok":true,"version":%d,`, &v); err != nil {
		t.Fatalf("result %q: %v", out, err)
	}
	return v
}

// TestOCIOfflineRestarts: with [runtime].cache_dir set and the default OCI cache under it,
// edgehost pulls v1, then v2 when the tag moves between restarts; with the registry down, 3
// restarts in a row all start and serve v2, the last verified version, from the cache
// (whose record names v2's digest), and /status says the registry is unreachable. (The
// compilation cache's prune deleted the pulled copies at every start: the second offline
// restart failed with `connection refused`.)
func TestOCIOfflineRestarts(t *testing.T) {
	f := newOCIFixture(t)
	writeFile(t, filepath.Join(f.dir, "pre.wasm"), mustRead(t, testplugins.Example(t, "imagepre-c")))
	f.config(t, fmt.Sprintf("[runtime]\ncache_dir = %q\n[oci]\npoll_interval = \"0s\"\n", filepath.Join(f.dir, "cache")), "")
	f.push(t, echo(t, f.dir, 1))
	run := func(want int, online bool) engine.SourceStatus {
		t.Helper()
		e, err := f.start(t)
		if err != nil {
			t.Fatalf("start (registry online: %v): %v", online, err)
		}
		defer e.Close(context.Background())
		if v := f.version(t, e); v != want {
			t.Fatalf("serving version %d, want %d", v, want)
		}
		return e.Status().Sources[f.src]
	}
	run(1, true)
	d2 := f.push(t, echo(t, f.dir, 2))
	if st := run(2, true); st.Manifest != d2 || st.Version != "2.0.0" {
		t.Fatalf("after the tag moved: %+v", st)
	}
	f.reg.Stop()
	cached := f.ref.CachePath(filepath.Join(f.dir, "cache", "edgehost-oci"), "plugin.wasm")
	for i := 1; i <= 3; i++ {
		st := run(2, false)
		if st.Manifest != d2 || !strings.Contains(st.LastError, "resolving") {
			t.Fatalf("offline restart %d: status %+v, want v2's manifest and the registry's error", i, st)
		}
		rec, err := oci.Load(cached)
		if err != nil || rec.Manifest != d2 || rec.Version != "2.0.0" {
			t.Fatalf("offline restart %d: the cache record %+v, %v: want v2", i, rec, err)
		}
		t.Logf("offline restart %d: serving v2 from the cache; %s", i, st.LastError)
	}
}

// TestOCIRollbackProtection: signatures required, 1.0.0 then 2.0.0 served from a tag; the
// tag moved back to the older, validly signed 1.0.0 is refused (2.0.0 keeps serving, the
// reason is in /status), also by a restart; allow_downgrade = true rolls back on purpose
// (and lowers the floor), as does pinning the digest. (1.0.0 served 0.3 s after the tag
// moved back.)
func TestOCIRollbackProtection(t *testing.T) {
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
	top := fmt.Sprintf("[trust]\nkeys = [%q]\nrequire_signatures = true\n[oci]\ncache_dir = %%q\npoll_interval = \"100ms\"\n", base64.StdEncoding.EncodeToString(pub))
	f := newOCIFixture(t)
	top = fmt.Sprintf(top, filepath.Join(f.dir, "oci"))
	writeFile(t, filepath.Join(f.dir, "pre.wasm"), sign(mustRead(t, testplugins.Example(t, "imagepre-c"))))
	f.config(t, top, "")
	v1, v2 := sign(echo(t, f.dir, 1)), sign(echo(t, f.dir, 2))
	d1 := f.push(t, v1)
	e, err := f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	stop := e.PollSources(f.ctx)
	defer stop()
	source := func() engine.SourceStatus { return e.Status().Sources[f.src] }
	if v := f.version(t, e); v != 1 {
		t.Fatalf("serving %d, want 1", v)
	}
	d2 := f.push(t, v2)
	waitFor(t, "2.0.0 serving", 2*time.Minute, func() bool { return source().Manifest == d2 })
	if v := f.version(t, e); v != 2 {
		t.Fatalf("serving %d, want 2", v)
	}

	// The tag moves back to the signed 1.0.0 (a new manifest when pushed in another second: its
	// creation time is in it; the same layer).
	back := f.push(t, v1)
	waitFor(t, "the downgrade decided", 2*time.Minute, func() bool { st := source(); return st.Rejected == back || st.Manifest == back })
	time.Sleep(500 * time.Millisecond) // several more polls
	st := source()
	if st.Manifest != d2 || st.Rejected != back || !strings.Contains(st.LastError, "rollback protection") || !strings.Contains(st.LastError, "1.0.0 is lower than 2.0.0") {
		t.Fatalf("after the tag moved back to 1.0.0: %+v; want 2.0.0 serving and the downgrade refused in /status", st)
	}
	if v := f.version(t, e); v != 2 {
		t.Fatalf("serving %d after the tag moved back, want 2", v)
	}
	t.Logf("downgrade refused: %s", st.LastError)
	stop()
	e.Close(context.Background())

	// A restart with the tag still on 1.0.0 serves 2.0.0 from the cache and says why.
	e, err = f.start(t)
	if err != nil {
		t.Fatalf("restart with the tag on the older version: %v", err)
	}
	if v, st := f.version(t, e), e.Status().Sources[f.src]; v != 2 || st.Rejected != back || !strings.Contains(st.Why, "rollback protection") {
		t.Fatalf("restart: serving %d, status %+v; want 2 and the downgrade refused", v, st)
	}
	e.Close(context.Background())

	// On purpose: allow_downgrade = true takes 1.0.0 ...
	f.config(t, top, "allow_downgrade = true\n")
	e, err = f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.version(t, e); v != 1 {
		t.Fatalf("allow_downgrade: serving %d, want 1", v)
	}
	e.Close(context.Background())
	// ... and 1.0.0 is then the floor: without the key it keeps serving, and 2.0.0 is taken again.
	f.config(t, top, "")
	e, err = f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.version(t, e); v != 1 {
		t.Fatalf("after the deliberate rollback: serving %d, want 1", v)
	}
	e.Close(context.Background())
	f.push(t, v2)
	e, err = f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.version(t, e); v != 2 {
		t.Fatalf("2.0.0 after the deliberate rollback: serving %d, want 2", v)
	}
	e.Close(context.Background())
	// A digest pin serves what it names, whatever the tag's floor.
	f.config(t, top, fmt.Sprintf("source = %q\n", "oci://"+f.reg.Addr+"/plugins/echo@"+d1))
	e, err = f.start(t)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.version(t, e); v != 1 {
		t.Fatalf("pinned to 1.0.0's digest: serving %d, want 1", v)
	}
	e.Close(context.Background())
}

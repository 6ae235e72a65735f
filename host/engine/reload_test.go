package engine_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/edgehost/edgehost/host/plugin"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/hashicorp/go-hclog"
)

// echo builds testdata/echo.c with the given version and flags into a plugin (kind post).
func echo(t testing.TB, dir string, version int, flags ...string) []byte {
	t.Helper()
	raw := filepath.Join(dir, fmt.Sprintf("echo-%d-%s.raw", version, strings.Join(flags, "")))
	testplugins.BuildC(t, true, append([]string{"-O2", "-DVERSION=" + strconv.Itoa(version), "-o", raw, "testdata/echo.c"}, flags...)...)
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	man := fmt.Sprintf(`{"name":"echo","version":"%d.0.0","abi":1,"kind":"post"}`, version)
	b, err = abi.SetCustomSection(b, abi.ManifestSection, []byte(man))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	dir, post, cfgPath string
	e                  *engine.Engine
	img                []byte
}

// newFixture serves pipeline "p": imagepre-c → mobilenet → dir/post.wasm (echo v1).
func newFixture(t *testing.T, extra string) *fixture {
	t.Helper()
	dir := t.TempDir()
	return makeFixture(t, dir, testplugins.Example(t, "imagepre-c"), echo(t, dir, 1), "", extra)
}

// newSignedFixture is newFixture with signatures required, key trusted, and the pre plugin
// a copy of imagepre-c signed with priv.
func newSignedFixture(t *testing.T, post []byte, key string, priv ed25519.PrivateKey) *fixture {
	dir := t.TempDir()
	pre, err := plugin.Sign(mustRead(t, testplugins.Example(t, "imagepre-c")), priv)
	if err != nil {
		t.Fatal(err)
	}
	prePath := filepath.Join(dir, "pre.wasm")
	if err := os.WriteFile(prePath, pre, 0o644); err != nil {
		t.Fatal(err)
	}
	return makeFixture(t, dir, prePath, post, fmt.Sprintf("[trust]\nkeys = [%q]\nrequire_signatures = true\n", key), "")
}

func makeFixture(t testing.TB, dir, prePath string, post []byte, top, extra string) *fixture {
	t.Helper()
	f := &fixture{dir: dir}
	f.post = filepath.Join(f.dir, "post.wasm")
	if err := os.WriteFile(f.post, post, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := top + fmt.Sprintf(`
[runtime]
cache_dir = %q
[models.mobilenet]
path = %q
threads = 1
[pipelines.p]
model = "mobilenet"
workers = 2
%s
[pipelines.p.pre]
path = %q
[pipelines.p.post]
path = %q
`, filepath.Join(f.dir, "cache"), testplugins.Model("mobilenet_quant_v1_224.tflite"), extra,
		prePath, f.post)
	f.cfgPath = filepath.Join(f.dir, "config.toml")
	if err := os.WriteFile(f.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	f.e, err = engine.New(context.Background(), c, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.e.Close(context.Background()) })
	f.img, _ = os.ReadFile(testplugins.Model("peacock.png"))
	return f
}

func (f *fixture) run() (string, error) {
	p, ok := f.e.Pipeline("p")
	if !ok {
		return "", fmt.Errorf("no pipeline")
	}
	var out string
	_, err := p.Pipeline.Run(context.Background(), bytes.NewReader(f.img), len(f.img), func(b []byte, _ string) error {
		out = string(b)
		return nil
	})
	return out, err
}

func (f *fixture) postHash() string { return f.e.Status().Pipelines["p"].Post.Hash }

// waitHash waits until the pipeline's post plugin has the given hash.
func (f *fixture) waitHash(t *testing.T, hash string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.postHash() != hash {
		if time.Now().After(deadline) {
			t.Fatalf("post plugin did not change to %s (status %+v)", hash[:12], f.e.Status().Pipelines["p"].Post)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sha(b []byte) string { return engineHash(b) }

// writeStyles are the ways editors and deploy tools replace a file.
var writeStyles = map[string]func(path string, b []byte) error{
	"truncate+write in place": func(path string, b []byte) error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		half := len(b) / 2
		if _, err := f.Write(b[:half]); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
		_, err = f.Write(b[half:])
		return err
	},
	"temp file + rename": func(path string, b []byte) error {
		tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	},
	"burst of writes": func(path string, b []byte) error {
		for i := 0; i < 3; i++ {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	},
	"delete + create": func(path string, b []byte) error {
		if err := os.Remove(path); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
		return os.WriteFile(path, b, 0o644)
	},
}

// TestSwapUnderLoad: 8 clients run continuously while the post plugin is swapped between two
// versions 100 times, 25 times with each write style: no request fails and every response
// comes from exactly one of the two versions.
func TestSwapUnderLoad(t *testing.T) {
	engine.Settle = 60 * time.Millisecond
	f := newFixture(t, "")
	w, err := f.e.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	versions := [][]byte{echo(t, f.dir, 1), echo(t, f.dir, 2)}
	var stop atomic.Bool
	var requests, failures atomic.Int64
	seen := [3]atomic.Int64{}
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				out, err := f.run()
				requests.Add(1)
				switch {
				case err != nil:
					failures.Add(1)
					t.Errorf("request failed during swaps: %v", err)
				case strings.HasPrefix(out, `{"ok":true,"version":1,`):
					seen[1].Add(1)
				case strings.HasPrefix(out, `{"ok":true,"version":2,`):
					seen[2].Add(1)
				default:
					failures.Add(1)
					t.Errorf("response from neither version: %q", out)
				}
			}
		}()
	}
	swaps := 0
	for _, style := range []string{"truncate+write in place", "temp file + rename", "burst of writes", "delete + create"} {
		for i := 0; i < 25; i++ {
			next := versions[(swaps+1)%2]
			if err := writeStyles[style](f.post, next); err != nil {
				t.Fatal(err)
			}
			f.waitHash(t, sha(next))
			swaps++
		}
	}
	stop.Store(true)
	wg.Wait()
	st := f.e.Status()
	t.Logf("%d swaps, %d requests (%d from v1, %d from v2), %d failed; reloads=%d rejected=%d",
		swaps, requests.Load(), seen[1].Load(), seen[2].Load(), failures.Load(), st.Reloads, st.Failures)
	if failures.Load() != 0 || seen[1].Load() == 0 || seen[2].Load() == 0 {
		t.Fatal("failed requests, or a version never served")
	}
	// The compilation cache holds only the versions in use.
	entries, _ := filepath.Glob(filepath.Join(f.dir, "cache", "*", "*"))
	if len(entries) > 4 {
		t.Errorf("compilation cache grew to %d entries after %d swaps", len(entries), swaps)
	}
}

// TestBrokenVersionsRejected: bad bytes, a wrong ABI, a trapping init and a failing golden
// input never replace the working version; the failure is counted and shown in Status.
func TestBrokenVersionsRejected(t *testing.T) {
	f := newFixture(t, `golden_input = "`+testplugins.Model("peacock.png")+`"
golden_expect_contains = "\"ok\":true"`)
	good := f.postHash()
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"bad bytes", []byte("\x00asm\x01\x00\x00\x00garbage"), "section"},
		{"half a module", echo(t, f.dir, 2)[:500], ""},
		{"wrong ABI", mustRead(t, testplugins.Hostile(t, "ABI2", abi.KindBoth)), "ABI version 2 is not supported"},
		{"trapping init", mustRead(t, testplugins.Hostile(t, "TRAP_INIT", abi.KindBoth)), "edgehost_init trapped"},
		{"failing golden input", echo(t, f.dir, 3, "-DNO_OK"), "does not contain"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(f.post, c.b, 0o644); err != nil {
				t.Fatal(err)
			}
			f.e.ReloadFile(context.Background(), f.post)
			st := f.e.Status()
			if f.postHash() != good {
				t.Fatal("a broken version replaced the working one")
			}
			if st.Failures != int64(i+1) || !strings.Contains(st.Pipelines["p"].Post.LastError, c.want) {
				t.Fatalf("failures=%d last error %q, want it to contain %q", st.Failures, st.Pipelines["p"].Post.LastError, c.want)
			}
			if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
				t.Fatalf("old version not serving: %v %s", err, out)
			}
			t.Logf("rejected: %s", st.Pipelines["p"].Post.LastError)
		})
	}
}

// TestRollbackOnRuntimeTraps: a version that loads fine but traps at run time is rolled
// back by itself after it traps on more than the configured share of its first requests,
// and no client sees a trap: each request it failed was answered by the previous version.
func TestRollbackOnRuntimeTraps(t *testing.T) {
	f := newFixture(t, "rollback_window = 10\nrollback_trap_share = 0.3")
	good := f.postHash()
	if err := os.WriteFile(f.post, echo(t, f.dir, 5, "-DTRAP_POST"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.post)
	if f.postHash() == good {
		t.Fatal("the trapping version was not swapped in (it loads and inits fine)")
	}
	failed := 0
	for i := 0; i < 10; i++ {
		if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
			failed++
			t.Errorf("request %d: %v %s", i, err, out)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.e.Status().Rollbacks == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := f.e.Status()
	ps := st.Pipelines["p"]
	if st.Rollbacks != 1 || ps.Traps != 4 || ps.Retried != 4 || f.postHash() != good {
		t.Fatalf("rollbacks=%d traps=%d retried=%d, post hash back to the good one: %v", st.Rollbacks, ps.Traps, ps.Retried, f.postHash() == good)
	}
	traps := ps.Traps
	if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
		t.Fatalf("after rollback: %v %s", err, out)
	}
	t.Logf("rolled back after %d trapping requests: %s", traps, st.Pipelines["p"].LastError)
}

// TestRollbackOnErrorStatus: a version whose post plugin returns a non-zero status on every
// call (no trap) is rolled back too, under load from 8 clients, and no request fails: every
// one it failed is answered by the previous version (counted in /status); once a good
// version serves again, /status no longer shows the rollback as the pipeline's last error.
func TestRollbackOnErrorStatus(t *testing.T) {
	f := newFixture(t, "rollback_window = 20\nrollback_trap_share = 0.3")
	good := f.postHash()
	if err := os.WriteFile(f.post, echo(t, f.dir, 6, "-DFAIL_POST"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.post)
	if f.postHash() == good {
		t.Fatal("the failing version was not swapped in (it loads and inits fine)")
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
					failed.Add(1)
					t.Errorf("request failed or answered by the broken version: %v %s", err, out)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for f.e.Status().Rollbacks == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := f.e.Status()
	if st.Rollbacks != 1 || f.postHash() != good {
		t.Fatalf("rollbacks=%d after %d failed requests; back on the good version: %v", st.Rollbacks, failed.Load(), f.postHash() == good)
	}
	if r := st.Pipelines["p"].Retried; r < 7 || r > 7+8 { // the 7th failure (> 0.3 × 20) rolls back; 8 more may be in flight on it
		t.Errorf("%d requests answered by the previous version, want 7 to 15", r)
	}
	if !strings.Contains(st.Pipelines["p"].LastError, "rolled back") {
		t.Fatalf("rollback not shown: %q", st.Pipelines["p"].LastError)
	}
	if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
		t.Fatalf("after rollback: %v %s", err, out)
	}
	v3 := echo(t, f.dir, 3)
	if err := os.WriteFile(f.post, v3, 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.post)
	st = f.e.Status()
	if f.postHash() != sha(v3) || st.Pipelines["p"].LastError != "" || st.Pipelines["p"].Post.LastError != "" {
		t.Fatalf("a good version serves but /status still says %q / %q", st.Pipelines["p"].LastError, st.Pipelines["p"].Post.LastError)
	}
	t.Logf("rolled back after %d requests failed on the new version (answered by the old one); %d failed for clients", st.Pipelines["p"].Retried, failed.Load())
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rssKiB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

// TestReloadCyclesDoNotLeak: after a warm-up, 1000 reloads (100 with -short) leave RSS and
// the goroutine count flat.
func TestReloadCyclesDoNotLeak(t *testing.T) {
	cycles := 1000
	if s := os.Getenv("EDGEHOST_RELOAD_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		cycles = 100
	}
	f := newFixture(t, "")
	versions := [][]byte{echo(t, f.dir, 1), echo(t, f.dir, 2)}
	cycle := func(i int) {
		if err := os.WriteFile(f.post, versions[i%2], 0o644); err != nil {
			t.Fatal(err)
		}
		f.e.ReloadFile(context.Background(), f.post)
		if _, err := f.run(); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up until the Go heap, the allocator's arenas and wazero's caches reach their
	// working size (RSS rises over the first ~200 reloads, then stays flat).
	for i := 0; i < 250; i++ {
		cycle(i)
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	rss0, g0 := rssKiB(), runtime.NumGoroutine()
	var marks []string
	var firstHalf, secondHalf int64 // peak RSS in each half of the run
	for i := 1; i <= cycles; i++ {
		cycle(i)
		if i%(cycles/10) == 0 {
			runtime.GC()
			r := rssKiB()
			marks = append(marks, fmt.Sprintf("%d:%dMiB", i, r/1024))
			if i <= cycles/2 {
				firstHalf = max(firstHalf, r)
			} else {
				secondHalf = max(secondHalf, r)
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // let old versions drain and close
	runtime.GC()
	rss1, g1 := rssKiB(), runtime.NumGoroutine()
	t.Logf("%d reload cycles: RSS %d MiB -> %d MiB (%s), goroutines %d -> %d", cycles, rss0/1024, rss1/1024, strings.Join(marks, " "), g0, g1)
	// RSS settles over the first few hundred reloads (Go heap, malloc arenas of the
	// interpreters each version builds) and then only fluctuates: a leak would keep the
	// second half of the run climbing above the first half's peak.
	if secondHalf-firstHalf > 24*1024 {
		t.Errorf("RSS still climbing: peak %d MiB in the first half, %d MiB in the second", firstHalf/1024, secondHalf/1024)
	}
	if g1 > g0+5 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if st := f.e.Status(); st.Reloads < int64(cycles) {
		t.Errorf("only %d reloads happened", st.Reloads)
	}
}

// BenchmarkReloadLatency measures the time from a settled plugin file to the new version
// serving (compile, validate, pre-instantiate the workers, swap), for a C and a Go plugin.
func BenchmarkReloadLatency(b *testing.B) {
	for _, kind := range []string{"c", "go"} {
		b.Run(kind, func(b *testing.B) {
			dir := b.TempDir()
			var versions [][]byte
			if kind == "c" {
				versions = [][]byte{echo(b, dir, 1), echo(b, dir, 2)}
			} else {
				g := mustReadB(b, testplugins.Example(b, "classify-go"))
				g2, _ := abi.SetCustomSection(g, "edgehost.bench", []byte("v2")) // same code, new hash
				versions = [][]byte{g, g2}
			}
			f := makeFixture(b, dir, testplugins.Example(b, "imagepre-c"), versions[0], "", "")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.WriteFile(f.post, versions[(i+1)%2], 0o644)
				b.StartTimer()
				f.e.ReloadFile(context.Background(), f.post)
			}
			b.StopTimer()
			if f.e.Status().Failures != 0 {
				b.Fatalf("reload failures: %s", f.e.Status().Pipelines["p"].Post.LastError)
			}
		})
	}
}

func mustReadB(b testing.TB, p string) []byte {
	x, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return x
}

func engineHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestStuckLoadYields: a new version whose edgehost_init never returns, under a budget long
// enough (20 s) that the budget does not save anyone, holds nothing that serving needs: the
// old version answers requests and status meanwhile, and when the reload's context ends (as
// it does on SIGTERM) the load is abandoned at once, the old version keeps serving, and the
// engine closes promptly.
func TestStuckLoadYields(t *testing.T) {
	f := newFixture(t, "")
	good := f.postHash()
	cfg, err := os.ReadFile(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.cfgPath, append(cfg, "timeout_ms = 20000\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.cfgPath)
	if got := f.e.Config().Pipelines["p"].Post.TimeoutMS; got != 20000 {
		t.Fatalf("post timeout_ms %d after the config reload, want 20000", got)
	}
	if err := os.WriteFile(f.post, mustRead(t, testplugins.Hostile(t, "LOOP_INIT", abi.KindPost)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan time.Time)
	go func() {
		f.e.ReloadFile(ctx, f.post)
		done <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond) // the load is spinning in edgehost_init
	for i := 0; i < 5; i++ {
		if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
			t.Fatalf("old version not serving during the stuck load: %v %s", err, out)
		}
		_ = f.e.Status()
	}
	select {
	case <-done:
		t.Fatal("the stuck load returned by itself (the hostile init did not spin)")
	default:
	}
	cancelled := time.Now()
	cancel()
	select {
	case at := <-done:
		t.Logf("stuck load abandoned %v after its context ended", at.Sub(cancelled))
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck load did not end within 10 s of its context ending")
	}
	if f.postHash() != good {
		t.Fatal("the stuck version replaced the working one")
	}
	if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
		t.Fatalf("old version not serving after the abandoned load: %v %s", err, out)
	}
	if st := f.e.Status(); st.Failures == 0 || st.Pipelines["p"].Post.LastError == "" {
		t.Errorf("the abandoned load is not reported: failures %d, last error %q", st.Failures, st.Pipelines["p"].Post.LastError)
	} else {
		t.Logf("reported: %s", st.Pipelines["p"].Post.LastError)
	}
	start := time.Now()
	f.e.Close(context.Background())
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestBareInterpretersOnDemand: a model that a pipeline uses holds no bare-model interpreter
// until the first bare request (each costs 7-14 MiB), and that request gets one.
func TestBareInterpretersOnDemand(t *testing.T) {
	f := newFixture(t, "")
	m, ok := f.e.Model("mobilenet")
	if !ok {
		t.Fatal("no model")
	}
	if n := m.Pool.Created(); n != 0 {
		t.Fatalf("%d bare interpreters at start, want 0", n)
	}
	if _, err := f.run(); err != nil { // a pipeline request uses the workers' interpreters
		t.Fatal(err)
	}
	it, err := m.Pool.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Pool.Put(it)
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	if n := m.Pool.Created(); n != 1 {
		t.Fatalf("%d bare interpreters after one bare request, want 1", n)
	}
}

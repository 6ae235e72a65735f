package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
)

func hostile(t testing.TB, v string, kind abi.Kind) string { return testplugins.Hostile(t, v, kind) }

// TestRejectedAtLoad: modules that break the ABI never load, with a message naming the
// plugin file and the fault.
func TestRejectedAtLoad(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	for _, c := range []struct {
		variant string
		kind    abi.Kind
		want    string
	}{
		{"ABI2", abi.KindBoth, "ABI version 2 is not supported (this host supports 1)"},
		{"NO_PRE", abi.KindBoth, "missing export edgehost_pre"},
		{"BADSIG", abi.KindBoth, "export edgehost_alloc has signature [i64] -> [i64]"},
		{"TRAP_INIT", abi.KindBoth, "_initialize"}, // placeholder replaced below
		{"BAD_PARAMS", abi.KindBoth, "params rejected on purpose"},
		{"LOOP_INIT", abi.KindBoth, "edgehost_init exceeded its time budget of 100ms"},
	} {
		t.Run(c.variant, func(t *testing.T) {
			path := hostile(t, c.variant, c.kind)
			_, err := f.rt.Load(context.Background(), plugin.Config{Path: path, Timeout: 100 * time.Millisecond})
			if err == nil {
				t.Fatal("loaded")
			}
			want := c.want
			if c.variant == "TRAP_INIT" {
				want = "edgehost_init trapped"
			}
			var le *plugin.LoadError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q, want a LoadError naming %s and containing %q", err, path, want)
			}
			if c.variant == "TRAP_INIT" && !strings.Contains(err.Error(), "wasm stack trace") {
				t.Errorf("no guest stack in %q", err)
			}
			t.Log(err)
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.wasm")
		os.WriteFile(p, []byte("hello"), 0o644)
		_, err := f.rt.Load(context.Background(), plugin.Config{Path: p})
		if err == nil || !strings.Contains(err.Error(), "not a WebAssembly module") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		b, _ := os.ReadFile(hostile(t, "GOOD", abi.KindBoth))
		b, _ = abi.SetCustomSection(b, abi.ManifestSection, nil)
		p := filepath.Join(t.TempDir(), "x.wasm")
		os.WriteFile(p, b, 0o644)
		_, err := f.rt.Load(context.Background(), plugin.Config{Path: p})
		if err == nil || !strings.Contains(err.Error(), "embed a manifest") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("wrong kind", func(t *testing.T) {
		_, err := f.rt.Load(context.Background(), plugin.Config{Path: wasm(t, "classify-go"), WantKind: abi.KindPre})
		if err == nil || !strings.Contains(err.Error(), `is kind "post" but is configured as a pre plugin`) {
			t.Fatalf("error %v", err)
		}
	})
}

// hostilePipeline builds mobilenet with a hostile pre or post plugin and the good other half.
func hostilePipeline(t *testing.T, f *fixture, v string, role abi.Kind, limit uint64) *pipeline.Pipeline {
	t.Helper()
	ctx := context.Background()
	good, err := f.rt.Load(ctx, plugin.Config{Path: hostile(t, "GOOD", abi.KindBoth)})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := f.rt.Load(ctx, plugin.Config{Path: hostile(t, v, abi.KindBoth), MemoryLimit: limit, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	spec := pipeline.Spec{Name: "hostile-" + v, Model: f.model, Workers: 1, Pre: good, Post: good}
	if role == abi.KindPre {
		spec.Pre = bad
	} else {
		spec.Post = bad
	}
	p, err := pipeline.New(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	return p
}

func runErr(p *pipeline.Pipeline, in []byte) (string, error) {
	var out string
	_, err := p.Run(context.Background(), bytes.NewReader(in), len(in), func(b []byte, _ string) error {
		out = string(b)
		return nil
	})
	return out, err
}

// TestHostileAtRunTime: each hostile behaviour fails its request with a clear error; the
// instance is replaced and the same pipeline, and a good one beside it, keep serving.
func TestHostileAtRunTime(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	img, _ := os.ReadFile(models + "peacock.png")
	goodPipe := f.pipeline(t, "imagepre-go", "classify-go", map[string]any{"labels": labels(t, models+"mobilenet_labels.txt")}, false, 1)
	// Nothing leaks: every hostile pipeline's guest memories are unmapped when it closes.
	live := f.rt.LiveMemories()
	defer func() {
		if got := f.rt.LiveMemories(); got != live {
			t.Errorf("guest memories mapped: %d before the hostile suite, %d after", live, got)
		}
	}()
	for _, c := range []struct {
		variant string
		role    abi.Kind
		limit   uint64
		want    string // in the error
		trap    bool
	}{
		{"TRAP_PRE", abi.KindPre, 0, "edgehost_pre trapped: wasm error: unreachable", true},
		{"TRAP_POST", abi.KindPost, 0, "edgehost_post trapped: wasm error: unreachable", true},
		{"RECURSION", abi.KindPre, 0, "edgehost_pre trapped", true},
		{"MEMBOMB", abi.KindPre, 8 << 20, "memory exhausted as planned", false},
		{"MALLOC_BOMB", abi.KindPre, 8 << 20, "malloc returned NULL", false},
		{"OOB_LOG", abi.KindPre, 0, "lies outside guest memory", true},
		{"OOB_ERROR", abi.KindPre, 0, "lies outside guest memory", true},
		{"OOB_RESULT", abi.KindPost, 0, "result [4294967280, +100) lies outside guest memory", true},
		{"HUGE_RESULT", abi.KindPost, 0, "exceeds the cap", true},
		{"OPEN_FILE", abi.KindPre, 0, "open /etc/hostname failed as it should", false},
		{"LOOP_PRE", abi.KindPre, 0, "edgehost_pre exceeded its time budget of 100ms", false},
		{"LOOP_POST", abi.KindPost, 0, "edgehost_post exceeded its time budget of 100ms", false},
		{"FIB", abi.KindPre, 0, "edgehost_pre exceeded its time budget of 100ms", false},
		{"GETENV", abi.KindPre, 0, "environment is empty as it should be", false},
		{"SOCKET", abi.KindPre, 0, "no socket reachable as it should be", false},
		{"CLOCK", abi.KindPre, 0, "realtime clock says 1640995200", false},
	} {
		t.Run(c.variant, func(t *testing.T) {
			p := hostilePipeline(t, f, c.variant, c.role, c.limit)
			for round := 0; round < 2; round++ { // the second round runs on a replaced instance
				_, err := runErr(p, []byte{42, 1, 2})
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "hostile-") {
					t.Fatalf("round %d: error %v, want one naming the plugin and containing %q", round, err, c.want)
				}
				var trap *plugin.TrapError
				if errors.As(err, &trap) != c.trap {
					t.Fatalf("trap=%v for %v", !c.trap, err)
				}
			}
			if out, err := runErr(goodPipe, img); err != nil || !strings.Contains(out, "peacock") {
				t.Fatalf("good pipeline broken after %s: %v %s", c.variant, err, out)
			}
		})
	}
	t.Run("LOG_FLOOD", func(t *testing.T) {
		p := hostilePipeline(t, f, "LOG_FLOOD", abi.KindPre, 0)
		out, err := runErr(p, []byte{42})
		if err != nil || !strings.HasPrefix(out, `{"ok":true`) {
			t.Fatalf("%v %s", err, out)
		}
	})
	t.Run("WRITE_PAST_TENSOR", func(t *testing.T) {
		// Writing past its tensor only corrupts the plugin's own memory; TFLite reads its
		// own bytes and the host is unaffected.
		p := hostilePipeline(t, f, "WRITE_PAST_TENSOR", abi.KindPre, 0)
		if _, err := runErr(p, []byte{42}); err != nil {
			t.Logf("error (acceptable): %v", err)
		}
		if out, err := runErr(goodPipe, img); err != nil || !strings.Contains(out, "peacock") {
			t.Fatalf("good pipeline broken: %v %s", err, out)
		}
	})
	t.Run("MISALIGNED_ALLOC", func(t *testing.T) {
		_, err := pipeline.New(context.Background(), pipeline.Spec{Name: "x", Model: f.model,
			Pre: mustLoad(t, f, hostile(t, "MISALIGNED_ALLOC", abi.KindBoth)), Post: mustLoad(t, f, hostile(t, "GOOD", abi.KindBoth))}, nil)
		if err == nil || !strings.Contains(err.Error(), "misaligned") {
			t.Fatalf("error %v", err)
		}
	})
}

func mustLoad(t *testing.T, f *fixture, path string) *plugin.Module {
	t.Helper()
	m, err := f.rt.Load(context.Background(), plugin.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCancelledRequestStopsPlugin: when a request's context ends (client gone, request
// timeout), a plugin still running is stopped at its next fuel check, well before its own
// time budget, and its instance is replaced.
func TestCancelledRequestStopsPlugin(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	ctx := context.Background()
	good, err := f.rt.Load(ctx, plugin.Config{Path: hostile(t, "GOOD", abi.KindBoth)})
	if err != nil {
		t.Fatal(err)
	}
	loop, err := f.rt.Load(ctx, plugin.Config{Path: hostile(t, "LOOP_PRE", abi.KindBoth), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(ctx, pipeline.Spec{Name: "cancel", Model: f.model, Workers: 1, Pre: loop, Post: good}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for round := 0; round < 2; round++ {
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		start := time.Now()
		_, err := p.Run(rctx, bytes.NewReader([]byte{1}), 1, func([]byte, string) error { return nil })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("round %d: %v after %v, want the request's deadline error well before the 10 s budget", round, err, time.Since(start))
		}
	}
}

package engine

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/hashicorp/go-hclog"
)

// TestInterpreterFirst: with an empty cache_dir, NewWith(InterpreterFirst) serves both
// pipelines on wazero's interpreter; a runaway pre plugin is stopped there (at ten times
// its budget, plugin.InterpreterBudgetFactor); requests running while the compiled plugins
// are swapped in all succeed with the right answer; after the swap both pipelines run
// compiled code, the runaway is stopped at its own budget, and the compiled code is in
// cache_dir. The swap is held (swapGate) until requests run on the interpreter, so the test
// does not depend on how fast this machine compiles. Budgets are generous: the
// interpreter is 30-70x slower, more under -race on a busy machine.
func TestInterpreterFirst(t *testing.T) {
	if !plugin.CompilerSupported() {
		t.Skip("no wazero compiler here: every plugin runs on the interpreter anyway")
	}
	img, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const budget = 300 * time.Millisecond
	cfgText := fmt.Sprintf(`
[runtime]
cache_dir = %q
watch = false
[models.mobilenet]
path = %q
[pipelines.classify]
model = "mobilenet"
workers = 2
queue_timeout = "120s"
[pipelines.classify.pre]
path = %q
params = { mean = 127.5, std = 127.5 }
timeout_ms = 60000
[pipelines.classify.post]
path = %q
params = { top_k = 3 }
timeout_ms = 60000
[pipelines.runaway]
model = "mobilenet"
workers = 1
[pipelines.runaway.pre]
path = %q
timeout_ms = %d
[pipelines.runaway.post]
path = %q
`, filepath.Join(dir, "cache"), testplugins.Model("mobilenet_quant_v1_224.tflite"), testplugins.Example(t, "imagepre-c"),
		testplugins.Example(t, "classify-c"), testplugins.Hostile(t, "LOOP_PRE", abi.KindPre), budget.Milliseconds(),
		testplugins.Example(t, "classify-c"))
	cp := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cp, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gate := make(chan struct{})
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	e, err := NewWith(ctx, cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}),
		Options{InterpreterFirst: true, swapGate: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	defer release()

	st := e.Status()
	if st.Compiling != 2 {
		t.Errorf("status compiling = %d right after start, want 2", st.Compiling)
	}
	for _, n := range []string{"classify", "runaway"} {
		if got := st.Pipelines[n].WasmEngine; got != plugin.EngineInterpreter {
			t.Errorf("pipeline %s runs on %q right after an empty-cache start, want the interpreter", n, got)
		}
	}

	runaway := func(wantBudget time.Duration) {
		t.Helper()
		p, _ := e.Pipeline("runaway")
		start := time.Now()
		_, err := p.Pipeline.Run(ctx, bytes.NewReader(img), len(img), func([]byte, string) error { return nil })
		took := time.Since(start)
		var te *plugin.TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("runaway pre plugin: %v, want a time-budget stop", err)
		}
		if te.Budget != wantBudget {
			t.Errorf("runaway stopped by a budget of %v, want %v", te.Budget, wantBudget)
		}
		if took < wantBudget {
			t.Errorf("runaway stopped after %v, before its budget of %v", took, wantBudget)
		}
		t.Logf("runaway stopped after %v (budget %v)", took, wantBudget)
	}
	runaway(budget * plugin.InterpreterBudgetFactor)

	// Two clients until the swap is done and a little after.
	var (
		ok, failed, onInterp atomic.Int64
		firstErr             atomic.Value
		stop                 atomic.Bool
		wg                   sync.WaitGroup
	)
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				p, _ := e.Pipeline("classify")
				interp := p.Pre.Interpreted()
				var out []byte
				_, err := p.Pipeline.Run(ctx, bytes.NewReader(img), len(img), func(b []byte, _ string) error {
					out = bytes.Clone(b)
					return nil
				})
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case !strings.Contains(string(out), `{"index":85,`): // the peacock, first
					failed.Add(1)
					firstErr.CompareAndSwap(nil, "wrong answer: "+string(out))
				default:
					ok.Add(1)
					if interp {
						onInterp.Add(1)
					}
				}
			}
		}()
	}
	for deadline := time.Now().Add(120 * time.Second); ok.Load()+failed.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	release()
	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	err = e.WaitCompiled(wctx)
	cancel()
	if err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("compiled plugins not swapped in within 120 s: %v", err)
	}
	after := ok.Load() + failed.Load()
	for deadline := time.Now().Add(120 * time.Second); ok.Load()+failed.Load() < after+4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests answered (%d taken on the interpreter version), %d failed", ok.Load(), onInterp.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed across the swap; first: %v", failed.Load(), firstErr.Load())
	}
	if onInterp.Load() == 0 || ok.Load() == onInterp.Load() {
		t.Errorf("want requests on both engines: %d of %d on the interpreter", onInterp.Load(), ok.Load())
	}

	st = e.Status()
	if st.Compiling != 0 {
		t.Errorf("status compiling = %d after WaitCompiled", st.Compiling)
	}
	for _, n := range []string{"classify", "runaway"} {
		if got := st.Pipelines[n].WasmEngine; got != plugin.EngineCompiler {
			t.Errorf("pipeline %s runs on %q after the swap, want the compiler", n, got)
		}
	}
	runaway(budget)
	entries, _ := filepath.Glob(filepath.Join(dir, "cache", "edgehost-compiled", "wazero-*", "*"))
	if len(entries) == 0 {
		t.Errorf("no compiled code in cache_dir after the background compile")
	}
}

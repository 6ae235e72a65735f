package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

func engineRuntime(t testing.TB, engine string) *plugin.Runtime {
	t.Helper()
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{Engine: engine})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	return rt
}

// TestEngineChoice: auto picks the compiler where wazero has one (this test's amd64 or arm64)
// and the interpreter elsewhere; asking for the compiler where there is none, or for an
// unknown engine, is an error, not wazero's panic.
func TestEngineChoice(t *testing.T) {
	want := plugin.EngineInterpreter
	if plugin.CompilerSupported() {
		want = plugin.EngineCompiler
	}
	if runtime.GOARCH == "arm64" && !plugin.CompilerSupported() || runtime.GOARCH == "arm" && plugin.CompilerSupported() {
		t.Errorf("CompilerSupported() = %v on %s", plugin.CompilerSupported(), runtime.GOARCH)
	}
	if got := engineRuntime(t, plugin.EngineAuto).Engine(); got != want {
		t.Errorf("auto chose %q on %s, want %q", got, runtime.GOARCH, want)
	}
	if got := engineRuntime(t, plugin.EngineInterpreter).Engine(); got != plugin.EngineInterpreter {
		t.Errorf("interpreter asked, %q runs", got)
	}
	ctx := context.Background()
	if _, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{Engine: "jit"}); err == nil || !strings.Contains(err.Error(), "unknown wasm engine") {
		t.Errorf("engine jit: %v", err)
	}
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{Engine: plugin.EngineCompiler})
	if plugin.CompilerSupported() {
		if err != nil {
			t.Fatal(err)
		}
		rt.Close(ctx)
	} else if err == nil || !strings.Contains(err.Error(), "no compiler") {
		t.Errorf("compiler asked on %s: %v", runtime.GOARCH, err)
	}
}

// TestInterpreterBudgets: under the interpreter (armhf's only engine) the time budget still
// stops a runaway pre loop and a start function that never returns: the fuel checks the
// rewrite adds call a host function, which the interpreter runs like the compiler does.
func TestInterpreterBudgets(t *testing.T) {
	rt := engineRuntime(t, plugin.EngineInterpreter)
	ctx := context.Background()
	budget := 100 * time.Millisecond
	var te *plugin.TimeoutError

	_, err, took := loadRaw(t, rt, "start-loop", testplugins.RawPlugin(testplugins.PluginSpec{Start: []byte{0x03, 0x40, 0x0c, 0, 0x0b, 0x0b}}),
		plugin.Config{Timeout: budget})
	if !errors.As(err, &te) {
		t.Fatalf("start loop: %v, want a TimeoutError", err)
	}
	if took > budget+time.Second {
		t.Errorf("start loop stopped after %v (budget %v)", took, budget)
	}
	t.Logf("start loop stopped after %v", took)

	// pre: loop { br 0 } (no fuel of its own: only the rewrite's counter can stop it).
	inst := rawInstance(t, rt, "pre-loop", testplugins.RawPlugin(testplugins.PluginSpec{Pre: []byte{0x03, 0x40, 0x0c, 0, 0x0b, 0x41, 0, 0x0b}}),
		plugin.Config{Timeout: budget})
	start := time.Now()
	err = inst.Pre(ctx, 1)
	took = time.Since(start)
	if !errors.As(err, &te) {
		t.Fatalf("pre loop: %v, want a TimeoutError", err)
	}
	if took > budget+time.Second {
		t.Errorf("pre loop stopped after %v (budget %v)", took, budget)
	}
	t.Logf("pre loop stopped after %v", took)

	// A Go guest's runaway loop (the runtime, the scheduler and the GC in Wasm). Its budget
	// is 2 s: the Go runtime's own start-up, 40-70× slower in the interpreter, must fit the
	// same budget on a busy machine.
	budget = 2 * time.Second
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Hostile(t, "LOOP_PRE", abi.KindBoth), Timeout: budget, MemoryLimit: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	gi, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gi.Close(ctx)
	if err := gi.Bind(ctx, []plugin.Tensor{{Name: "t", DType: abi.UInt8, Shape: []int{4}, Bytes: 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gi.InputBuffer(ctx, 1); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	err = gi.Pre(ctx, 1)
	took = time.Since(start)
	if !errors.As(err, &te) {
		t.Fatalf("Go guest loop: %v, want a TimeoutError", err)
	}
	if took > budget+2*time.Second {
		t.Errorf("Go guest loop stopped after %v (budget %v)", took, budget)
	}
	t.Logf("Go guest loop stopped after %v", took)
}

// preTensor runs the classify pipeline's pre-processing (an example plugin, peacock.png to
// 224x224x3 uint8) on one runtime and returns the tensor it wrote.
func preTensor(t testing.TB, rt *plugin.Runtime, name string) (*plugin.Instance, []byte) {
	t.Helper()
	ctx := context.Background()
	img, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(t, name), MemoryLimit: 256 << 20, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(ctx) })
	if err := inst.Bind(ctx, []plugin.Tensor{{Name: "in", DType: abi.UInt8, Shape: []int{1, 224, 224, 3}, Bytes: 224 * 224 * 3}}); err != nil {
		t.Fatal(err)
	}
	buf, err := inst.InputBuffer(ctx, uint32(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, img)
	if err := inst.Pre(ctx, uint32(len(img))); err != nil {
		t.Fatal(err)
	}
	out, _ := inst.TensorData(0)
	return inst, bytes.Clone(out)
}

// TestEnginesAgree: the example pre plugins (C and Go) write the same tensor bytes under the
// interpreter as under the compiler.
func TestEnginesAgree(t *testing.T) {
	if !plugin.CompilerSupported() {
		t.Skip("no wazero compiler on " + runtime.GOARCH + ": nothing to compare the interpreter with")
	}
	comp, interp := engineRuntime(t, plugin.EngineCompiler), engineRuntime(t, plugin.EngineInterpreter)
	for _, name := range []string{"imagepre-c", "imagepre-go"} {
		_, a := preTensor(t, comp, name)
		_, b := preTensor(t, interp, name)
		if len(a) != 224*224*3 || !bytes.Equal(a, b) {
			t.Errorf("%s: compiler and interpreter differ (%d and %d bytes)", name, len(a), len(b))
		}
	}
}

// BenchmarkEngines: the classify pipeline's pre-stage (peacock.png → 224x224x3) under
// wazero's compiler and interpreter, interleaved per iteration so both see the same machine;
// reports the interpreter's cost as x-compiler (RATIONALE.md, "Interpreter fallback").
func BenchmarkEngines(b *testing.B) {
	if !plugin.CompilerSupported() {
		b.Skip("no wazero compiler on " + runtime.GOARCH)
	}
	ctx := context.Background()
	comp, interp := engineRuntime(b, plugin.EngineCompiler), engineRuntime(b, plugin.EngineInterpreter)
	img, _ := os.ReadFile(testplugins.Model("peacock.png"))
	for _, name := range []string{"imagepre-c", "imagepre-go"} {
		b.Run(name, func(b *testing.B) {
			ic, _ := preTensor(b, comp, name)
			ii, _ := preTensor(b, interp, name)
			var tc, ti time.Duration
			for i := 0; i < b.N; i++ {
				for _, x := range []struct {
					inst *plugin.Instance
					d    *time.Duration
				}{{ic, &tc}, {ii, &ti}} {
					buf, _ := x.inst.InputBuffer(ctx, uint32(len(img)))
					copy(buf, img)
					start := time.Now()
					if err := x.inst.Pre(ctx, uint32(len(img))); err != nil {
						b.Fatal(err)
					}
					*x.d += time.Since(start)
				}
			}
			b.ReportMetric(float64(tc.Microseconds())/float64(b.N)/1000, "ms-compiler")
			b.ReportMetric(float64(ti.Microseconds())/float64(b.N)/1000, "ms-interpreter")
			b.ReportMetric(float64(ti)/float64(tc), "x-compiler")
		})
	}
}

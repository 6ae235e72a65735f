package plugin_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/wasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestInstrumentDifferential: the rewritten module computes exactly what the original does
// (recursion, loops, indirect calls through the table, an import that shifts every function
// index), and calls edgehost.fuel as it runs.
func TestInstrumentDifferential(t *testing.T) {
	ctx := context.Background()
	tiny := filepath.Join(t.TempDir(), "tiny.wasm")
	testplugins.BuildC(t, false, "-O1", "-o", tiny, "testdata/tiny.c")
	orig, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := plugin.Instrument(orig)
	if err != nil {
		t.Fatal(err)
	}
	refills := 0
	run := func(bin []byte) map[string]uint64 {
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		rt.NewHostModuleBuilder("env").NewFunctionBuilder().
			WithGoFunction(api.GoFunc(func(ctx context.Context, s []uint64) { s[0] = s[0] + 1 }), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
			Export("ext").Instantiate(ctx)
		rt.NewHostModuleBuilder("edgehost").NewFunctionBuilder().
			WithGoFunction(api.GoFunc(func(ctx context.Context, s []uint64) { refills++; s[0] = 1000 }), nil, []api.ValueType{api.ValueTypeI32}).
			Export(plugin.FuelImport).
			NewFunctionBuilder().WithGoFunction(api.GoFunc(func(ctx context.Context, s []uint64) {}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
			Export(wasm.MemoryFillImport).
			NewFunctionBuilder().WithGoFunction(api.GoFunc(func(ctx context.Context, s []uint64) {}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
			Export(wasm.MemoryCopyImport).Instantiate(ctx)
		mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		// In order: apply and nested share a global counter.
		for _, c := range []struct {
			name string
			args []uint64
		}{{"fib", []uint64{27}}, {"apply", []uint64{1, 21}}, {"nested", []uint64{60}}} {
			res, err := mod.ExportedFunction(c.name).Call(ctx, c.args...)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			out[c.name] = res[0]
		}
		return out
	}
	want := run(orig)
	before := refills
	got := run(inst)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: instrumented %d, original %d", name, got[name], v)
		}
	}
	if refills-before < 10 {
		t.Errorf("edgehost.fuel called %d times: the checks do not run", refills-before)
	}
	t.Logf("results %v equal; %d fuel refills", want, refills-before)
}

// TestInstrumentedPluginsAgree: the example pre plugins (Go and C, real compilers' output)
// write identical tensors with and without instrumentation.
func TestInstrumentedPluginsAgree(t *testing.T) {
	ctx := context.Background()
	img, err := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	tensor := []plugin.Tensor{{Name: "in", DType: abi.UInt8, Shape: []int{1, 300, 300, 3}, Bytes: 300 * 300 * 3}}
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	for _, name := range []string{"imagepre-go", "imagepre-c"} {
		var outs [][]byte
		for _, unmetered := range []bool{true, false} {
			m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(t, name), Unmetered: unmetered,
				Timeout: 30 * time.Second}) // agreement, not speed: a busy machine may take seconds
			if err != nil {
				t.Fatal(err)
			}
			inst, err := m.NewInstance(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := inst.Bind(ctx, tensor); err != nil {
				t.Fatal(err)
			}
			buf, _ := inst.InputBuffer(ctx, uint32(len(img)))
			copy(buf, img)
			if err := inst.Pre(ctx, uint32(len(img))); err != nil {
				t.Fatal(err)
			}
			data, _ := inst.TensorData(0)
			outs = append(outs, append([]byte(nil), data...))
			inst.Close(ctx)
		}
		if !bytes.Equal(outs[0], outs[1]) {
			t.Errorf("%s: instrumented and plain modules wrote different tensors", name)
		}
	}
}

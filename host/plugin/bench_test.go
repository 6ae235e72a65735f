package plugin_test

import (
	"context"
	"os"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// BenchmarkCallOverhead: one host→guest call through Instance (time budget armed), against
// a bare wazero CallWithStack of the same export in the same run.
func BenchmarkCallOverhead(b *testing.B) {
	ctx := context.Background()
	path := testplugins.Hostile(b, "GOOD", abi.KindBoth)
	b.Run("wazero-bare", func(b *testing.B) {
		wasm, _ := os.ReadFile(path)
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		rt.NewHostModuleBuilder("edgehost").
			NewFunctionBuilder().WithFunc(func(int32, int32, int32) {}).Export("log").
			NewFunctionBuilder().WithFunc(func(int32, int32) {}).Export("set_error").Instantiate(ctx)
		mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions())
		if err != nil {
			b.Fatal(err)
		}
		f := mod.ExportedFunction(abi.ExportABIVersion)
		stack := make([]uint64, 1)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := f.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("edgehost", func(b *testing.B) {
		rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close(ctx)
		m, err := rt.Load(ctx, plugin.Config{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		inst, err := m.NewInstance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer inst.Close(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := inst.ABIVersion(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFuel: the cost of time-budget enforcement (fuel instrumentation) on real pre
// plugins decoding and resizing peacock.png into mobilenet's input, against the same
// plugin without instrumentation in the same run. The ratio is reported as x-unmetered.
func BenchmarkFuel(b *testing.B) {
	ctx := context.Background()
	img, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		b.Fatal(err)
	}
	tensor := []plugin.Tensor{{Name: "in", DType: abi.UInt8, Shape: []int{1, 224, 224, 3}, Bytes: 224 * 224 * 3}}
	for _, name := range []string{"imagepre-c", "imagepre-go"} {
		var base float64
		for _, unmetered := range []bool{true, false} {
			label := name + "/metered"
			if unmetered {
				label = name + "/unmetered"
			}
			b.Run(label, func(b *testing.B) {
				rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer rt.Close(ctx)
				m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(b, name), Unmetered: unmetered})
				if err != nil {
					b.Fatal(err)
				}
				inst, err := m.NewInstance(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer inst.Close(ctx)
				if err := inst.Bind(ctx, tensor); err != nil {
					b.Fatal(err)
				}
				buf, _ := inst.InputBuffer(ctx, uint32(len(img)))
				copy(buf, img)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := inst.Pre(ctx, uint32(len(img))); err != nil {
						b.Fatal(err)
					}
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if unmetered {
					base = ns
				} else if base > 0 {
					b.ReportMetric(ns/base, "x-unmetered")
				}
			})
		}
	}
}

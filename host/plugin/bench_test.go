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

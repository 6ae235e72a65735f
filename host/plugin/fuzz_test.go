package plugin_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/tetratelabs/wazero"
)

// FuzzSections: the custom-section parser and manifest decoder never panic.
func FuzzSections(f *testing.F) {
	// Small seeds: a header, a type section, a manifest and a signature section.
	mod := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00")
	mod, err := abi.SetCustomSection(mod, abi.ManifestSection, []byte(`{"name":"x","version":"1","abi":1,"kind":"pre"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mod)
	signed, _ := abi.SetCustomSection(mod, abi.SignatureSection, []byte(`{"key_id":"00","sig":"AA=="}`))
	f.Add(signed)
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x05\x04name"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if raw, ok, err := abi.CustomSection(b, abi.ManifestSection); err == nil && ok {
			_, _ = abi.ParseManifest(raw)
		}
		_, _ = abi.SetCustomSection(b, "x", []byte("y"))
	})
}

// FuzzInstrument: for any module wazero accepts, the instrumented module is accepted too;
// the rewriter never panics on garbage.
func FuzzInstrument(f *testing.F) {
	// A small libc-free seed keeps each execution fast (big modules make the fuzzer stall).
	tiny := filepath.Join(f.TempDir(), "tiny.wasm")
	testplugins.BuildC(f, false, "-O1", "-o", tiny, "testdata/tiny.c")
	b, err := os.ReadFile(tiny)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := plugin.Instrument(b)
		if err != nil {
			return
		}
		if c, err := rt.CompileModule(ctx, b); err == nil {
			c.Close(ctx)
			c2, err := rt.CompileModule(ctx, out)
			if err != nil {
				t.Fatalf("original compiles, instrumented does not: %v", err)
			}
			c2.Close(ctx)
		}
	})
}

// FuzzGuestPointers: pointers and lengths a guest hands the host (log, set_error, the post
// result) never make the host read outside guest memory or crash: bad ones trap the guest.
func FuzzGuestPointers(f *testing.F) {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		f.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Hostile(f, "FUZZ_PTRS", abi.KindBoth), MemoryLimit: 4 << 20})
	if err != nil {
		f.Fatal(err)
	}
	cmd := func(op byte, ptr, n uint32) []byte {
		b := []byte{op}
		b = binary.LittleEndian.AppendUint32(b, ptr)
		return binary.LittleEndian.AppendUint32(b, n)
	}
	f.Add(cmd(0, 1024, 16))
	f.Add(cmd(1, 0xfffffff0, 64))
	f.Add(cmd(2, 1024, 1<<30))
	f.Add(append(cmd(2, 0, 0), cmd(0, 4<<20, 1)...))
	var inst *plugin.Instance
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 {
			return
		}
		if inst == nil || inst.Broken() != nil {
			if inst != nil {
				inst.Close(ctx)
			}
			if inst, err = m.NewInstance(ctx); err != nil {
				t.Fatal(err)
			}
			if err := inst.Bind(ctx, []plugin.Tensor{{Name: "t", DType: abi.UInt8, Shape: []int{64}, Bytes: 64}}); err != nil {
				t.Fatal(err)
			}
		}
		buf, err := inst.InputBuffer(ctx, uint32(len(in)))
		if err != nil {
			t.Fatal(err)
		}
		copy(buf, in)
		err = inst.Pre(ctx, uint32(len(in)))
		var trap *plugin.TrapError
		var se *plugin.StatusError
		if err != nil && !errors.As(err, &trap) && !errors.As(err, &se) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if err != nil {
			return
		}
		res, err := inst.Post(ctx, nil)
		if err == nil && len(res) > plugin.MaxResult {
			t.Fatalf("result of %d bytes passed the cap", len(res))
		}
	})
}

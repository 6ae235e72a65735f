package wasm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
)

// FuzzInstrument: the rewrite never accepts a module the validator rejects; what it accepts
// compiles; and fuel bounds every loop body of the output (each loop starts by spending
// fuel, or is the wrapper's retry loop, which only the slow path re-enters).
func FuzzInstrument(f *testing.F) {
	// Small libc-free seeds keep each execution fast (big modules make the fuzzer stall).
	// The compiled seed is added when the C toolchain works; the hand-written ones always are.
	tiny := filepath.Join(f.TempDir(), "tiny.wasm")
	if out, err := CC(false, "-O1", "-o", tiny, filepath.Join(Root, "host/plugin/testdata/tiny.c")).CombinedOutput(); err != nil {
		f.Logf("no compiled seed (the C toolchain from make deps failed: %v %s)", err, out)
	} else if b, err := os.ReadFile(tiny); err == nil {
		f.Add(b)
	}
	f.Add(RawPlugin(PluginSpec{Pre: bulkSeed, PreLocals: []byte{1, 1, 0x7f}, Start: []byte{0x03, 0x40, 0x0c, 0, 0x0b, 0x0b},
		Tables: Vec([]byte{0x70, 0, 1})}))
	f.Add(oneFunc([]byte{0}, append(append([]byte{0x41}, SLEB(1<<30)...), 0x24, 0, 0x0b)))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		out, err := Instrument(ctx, b, Options{HostModule: "edgehost"})
		_, verr := Validate(ctx, b, Limits{}, "edgehost")
		if err == nil && verr != nil {
			t.Fatalf("instrumented a module the validator rejects: %v", verr)
		}
		if err != nil {
			return
		}
		c, err := validatorRuntime().CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("valid module, invalid rewrite: %v", err)
		}
		c.Close(ctx)
		if err := checkFuelled(out); err != nil {
			t.Fatal(err)
		}
	})
}

// bulkSeed: one of each charged bulk instruction, in a loop.
var bulkSeed = func() []byte {
	c := []byte{0x03, 0x40}
	three := []byte{0x41, 0, 0x41, 0, 0x41, 8}
	c = append(append(c, three...), 0xfc, 11, 0)             // memory.fill
	c = append(append(c, three...), 0xfc, 10, 0, 0)          // memory.copy
	c = append(c, 0xd0, 0x70, 0x41, 1, 0xfc, 15, 0, 0x1a)    // table.grow, drop
	c = append(c, 0x41, 0, 0xd0, 0x70, 0x41, 1, 0xfc, 17, 0) // table.fill
	c = append(append(c, three...), 0xfc, 14, 0, 0)          // table.copy
	return append(c, 0x20, 0, 0x0d, 0, 0x0b, 0x41, 0, 0x0b)
}()

// checkFuelled checks that every loop of an instrumented module begins by spending fuel.
func checkFuelled(out []byte) error {
	secs, err := sectionsRaw(out)
	if err != nil {
		return err
	}
	var globals uint32
	for _, s := range secs {
		switch s.id {
		case 2:
			_, g, err := countImports(s.payload)
			if err != nil {
				return err
			}
			globals += g
		case 6:
			n, err := (&reader{b: s.payload}).u32()
			if err != nil {
				return err
			}
			globals += n
		}
	}
	if globals == 0 {
		return fmt.Errorf("no fuel global")
	}
	g := appendU32(nil, globals-1)
	spend := append(append(append(append([]byte{0x23}, g...), 0x41, 1, 0x6b, 0x24), g...), 0x23)
	retry := []byte{0x03, 0x40, 0x02, 0x40, 0x03}
	for _, s := range secs {
		if s.id != 10 {
			continue
		}
		r := &reader{b: s.payload}
		n, _ := r.u32()
		for i := uint32(0); i < n; i++ {
			size, _ := r.u32()
			body := s.payload[r.pos : r.pos+int(size)]
			r.pos += int(size)
			br := &reader{b: body}
			groups, _ := br.u32()
			for k := uint32(0); k < groups; k++ {
				br.u32()
				br.byte()
			}
			for br.pos < len(body) {
				at := br.pos
				op, _ := br.byte()
				if err := skipImmediates(br, op); err != nil {
					return fmt.Errorf("function %d: %w", i, err)
				}
				if op == 0x03 && !bytes.HasPrefix(body[br.pos:], spend) && !bytes.HasPrefix(body[at:], retry) {
					return fmt.Errorf("function %d: loop at byte %d does not spend fuel", i, at)
				}
			}
		}
	}
	return nil
}

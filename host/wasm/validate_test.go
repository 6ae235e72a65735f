package wasm

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
)

func repeat(n int, b ...byte) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		out = append(out, b...)
	}
	return out
}

// TestLimits: each structural limit rejects a module over it with a named LimitError, before
// anything compiles it, and quickly (the cases of issue 10: 64M locals in 412 bytes, 5,000
// loops in one function, deep nesting, a table of 64M entries).
func TestLimits(t *testing.T) {
	ctx := context.Background()
	nest := func(n int) []byte {
		return append(append(repeat(n, 0x02, 0x40), repeat(n, 0x0b)...), 0x0b)
	}
	table := func(min uint64) []byte {
		return Module(Section(1, Vec([]byte{0x60, 0, 0})), Section(4, Vec(append([]byte{0x70, 0}, ULEB(min)...))))
	}
	manyFuncs := Module(Section(1, Vec([]byte{0x60, 0, 0})), Section(3, append(ULEB(200_000), repeat(200_000, 0)...)))
	for _, c := range []struct {
		name, limit string
		b           []byte
	}{
		{"64M locals", "Locals", oneFunc(append([]byte{1}, append(ULEB(64<<20), 0x7f)...), []byte{0x0b})},
		{"locals in groups", "Locals", oneFunc(append([]byte{2}, append(append(ULEB(6000), 0x7f), append(ULEB(6000), 0x7e)...)...), []byte{0x0b})},
		{"5000 loops", "Blocks", oneFunc([]byte{0}, append(repeat(5000, 0x03, 0x40, 0x0b), 0x0b))},
		{"deep nesting", "Nesting", oneFunc([]byte{0}, nest(100_000))},
		{"big function", "FunctionBytes", oneFunc([]byte{0}, append(repeat(1<<20, 0x01), 0x0b))},
		{"many functions", "Functions", manyFuncs},
		{"huge table", "TableEntries", table(64 << 20)},
		{"many globals", "Entries", Module(Section(1, Vec([]byte{0x60, 0, 0})), Section(6, append(ULEB(200_000), repeat(200_000, 0x7f, 0, 0x41, 0, 0x0b)...)))},
		{"many tables", "Tables", Module(Section(1, Vec([]byte{0x60, 0, 0})), Section(4, append([]byte{5}, repeat(5, 0x70, 0, 1)...)))},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := Validate(ctx, c.b, Limits{}, "edgehost")
			took := time.Since(start)
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != c.limit || !errors.Is(err, ErrLimit) {
				t.Fatalf("err %v, want a %s LimitError", err, c.limit)
			}
			if took > time.Second {
				t.Errorf("took %v", took)
			}
			t.Logf("%d bytes, rejected in %v: %v", len(c.b), took, err)
		})
	}
}

// TestDeclaredCounts: a section claiming more entries than it has bytes is rejected before
// wazero's decoder, which sizes its slices from the claim (a fuzzer found a 13-byte module
// that took it 1.5 s, and larger claims exhaust memory).
func TestDeclaredCounts(t *testing.T) {
	for _, id := range []byte{1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13} {
		b := Module(Section(id, append(ULEB(0xffff_fff0), 0, 0, 0)))
		start := time.Now()
		_, err := Validate(context.Background(), b, Limits{}, "edgehost")
		if err == nil || !strings.Contains(err.Error(), "entries in") {
			t.Errorf("section %d: %v", id, err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("section %d: %v", id, d)
		}
	}
}

// TestNestedCounts: counts nested inside sections that wazero's decoder allocates from
// (a type's parameters, an element vector, a data segment, the name section's maps) are
// bounded by the bytes that follow, so a tiny module cannot make the decoder allocate GBs.
func TestNestedCounts(t *testing.T) {
	big := ULEB(0xffff_fff0)
	name := append(Str("name"), append([]byte{1}, append(ULEB(uint64(len(big)+2)), append(big, 0, 0)...)...)...)
	for what, b := range map[string][]byte{
		"type params":    Module(Section(1, append(append([]byte{1, 0x60}, big...), 0))),
		"element vector": Module(Section(9, append(append([]byte{1, 1, 0}, big...), 0))),
		"data size":      Module(Section(11, append(append([]byte{1, 1}, big...), 0))),
		"export name":    Module(Section(7, append(append([]byte{1}, big...), 0))),
		"name map":       Module(Section(0, name)),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := Validate(context.Background(), b, Limits{}, "edgehost")
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: valid", what)
		}
		if d, a := time.Since(start), after.TotalAlloc-before.TotalAlloc; d > 100*time.Millisecond || a > 1<<20 {
			t.Errorf("%s: %v, %d bytes allocated", what, d, a)
		}
		t.Logf("%s: %v", what, err)
	}
}

// TestValidateAsWritten: a module naming the indices the rewrite adds is invalid as written
// and rejected; Instrument refuses it too.
func TestValidateAsWritten(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		code []byte
	}{
		{"fuel global", append(append([]byte{0x41}, SLEB(1<<30)...), 0x24, 0, 0x0b)}, // global.set 0: no globals
		{"added import", []byte{0x10, 1, 0x0b}},                                      // call 1: one function
		{"added type", []byte{0x02, 1, 0x0b, 0x0b}},                                  // block (type 1): one type
	} {
		b := oneFunc([]byte{0}, c.code)
		if _, err := Validate(ctx, b, Limits{}, "edgehost"); err == nil {
			t.Errorf("%s: valid", c.name)
		}
		if _, err := Instrument(ctx, b, Options{HostModule: "edgehost"}); err == nil {
			t.Errorf("%s: instrumented", c.name)
		}
	}
}

package wasm

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Instrumentation: the load-time rewrite that makes a module's running time checkable
// (see RATIONALE.md, "Stopping runaway plugins", and doc.go for the shape of the code).

// Host imports the rewrite adds, all in module abi.HostModule. A module as written may not
// import them (Validate rejects it).
const (
	FuelImport       = "fuel"        // () -> i32: check the deadline, return the refill
	MemoryFillImport = "memory_fill" // (dst, value, n i32): memory.fill, in deadline-checked chunks
	MemoryCopyImport = "memory_copy" // (dst, src, n i32): memory.copy, in deadline-checked chunks
)

// Reserved lists the imports the rewrite adds.
var Reserved = []string{FuelImport, MemoryFillImport, MemoryCopyImport}

// FuelRefill is how many ticks run between deadline checks. A tick is one loop iteration
// or call; bulk instructions cost more (see BulkShift).
const FuelRefill = 65536

// Bulk instructions are charged in proportion to their length operand: memory.init and the
// small memory.fill/copy cost n>>BulkShift ticks (one per 64 bytes, about the time of a
// loop iteration's worth of work), table instructions n>>TableShift. memory.fill and
// memory.copy longer than BulkInline bytes go to the host, which does them in chunks and
// checks the deadline between chunks.
const (
	BulkShift  = 6
	TableShift = 3
	BulkInline = 65536
)

// addedImports is how many function imports the rewrite adds: every defined function's
// index moves up by this much.
const addedImports = 3

// Options tune the rewrite.
type Options struct {
	Limits     Limits // structural limits of the module as written (see Validate)
	HostModule string // the module name of the host imports (abi.HostModule)

	// TableEntries caps the entries of all tables together (initial size plus growth):
	// every table's maximum is lowered so that growth cannot pass it. 0 means
	// DefaultLimits.TableEntries.
	TableEntries uint32
}

// rewriter holds what renumbering needs.
type rewriter struct {
	nImp       uint32   // imported functions before the rewrite
	fuel       uint32   // index of the fuel global
	check      []byte   // the inline check inserted at function entries (and loops with params)
	fast       []byte   // a wrapped loop's head: decrement, br_if 1 to the slow path
	slow       []byte   // a wrapped loop's slow path: refill, br 0 back to the loop
	typeParams []int    // parameter count of each type
	funcTypes  []uint32 // type index of each defined function
	tables     uint32   // cap on all table entries
	bulkType   uint32   // index of the added type (i32, i32, i32) -> ()
}

func (w *rewriter) fn(idx uint32) uint32 {
	if idx >= w.nImp {
		return idx + addedImports
	}
	return idx
}

// Instrument validates wasm as written (Validate, with o.Limits) and returns it with fuel
// checks added, bulk instructions charged, tables capped and function indices renumbered.
// It never rewrites a module the validator rejects: the rewrite itself assumes valid input.
func Instrument(ctx context.Context, wasm []byte, o Options) ([]byte, error) {
	if _, err := Validate(ctx, wasm, o.Limits, o.HostModule); err != nil {
		return nil, err
	}
	return rewrite(wasm, o)
}

// rewrite is Instrument on a module already validated.
func rewrite(wasm []byte, o Options) ([]byte, error) {
	secs, err := sectionsRaw(wasm)
	if err != nil {
		return nil, err
	}
	var nTypes, nImpGlobals, nGlobals uint32
	w := &rewriter{tables: o.TableEntries}
	if w.tables == 0 {
		w.tables = DefaultLimits.TableEntries
	}
	for _, s := range secs {
		r := &reader{b: s.payload}
		switch s.id {
		case 1:
			nTypes, err = r.u32()
			if err == nil {
				w.typeParams, err = typeParams(s.payload)
			}
		case 2:
			w.nImp, nImpGlobals, err = countImports(s.payload)
		case 3:
			w.funcTypes, err = funcTypes(s.payload)
		case 6:
			nGlobals, err = r.u32()
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	w.fuel = nImpGlobals + nGlobals
	w.bulkType = nTypes + 1
	g := appendU32(nil, w.fuel)
	w.check = append([]byte{0x23}, g...)                                           // global.get $fuel
	w.check = append(w.check, 0x41, 0x01, 0x6b, 0x24)                              // i32.const 1, i32.sub, global.set
	w.check = append(append(w.check, g...), 0x23)                                  // $fuel, global.get
	w.check = append(append(w.check, g...), 0x41, 0x00, 0x4c)                      // $fuel, i32.const 0, i32.le_s
	w.check = append(append(w.check, 0x04, 0x40, 0x10), appendU32(nil, w.nImp)...) // if, call $fuel
	w.check = append(append(append(w.check, 0x24), g...), 0x0b)                    // global.set $fuel, end

	w.fast = append([]byte{0x23}, g...)                                 // global.get $fuel
	w.fast = append(w.fast, 0x41, 0x01, 0x6b, 0x24)                     // i32.const 1, i32.sub, global.set
	w.fast = append(append(w.fast, g...), 0x23)                         // $fuel, global.get
	w.fast = append(append(w.fast, g...), 0x41, 0x00, 0x4c, 0x0d, 0x01) // $fuel, i32.const 0, i32.le_s, br_if 1
	w.slow = append([]byte{0x10}, appendU32(nil, w.nImp)...)            // call $fuel
	w.slow = append(append(append(w.slow, 0x24), g...), 0x0c, 0x00)     // global.set $fuel, br 0

	fuelGlobal := append([]byte{0x7f, 0x01, 0x41}, appendSLEB32(nil, FuelRefill)...)
	fuelGlobal = append(fuelGlobal, 0x0b)
	addedTypes := [][]byte{
		{0x60, 0x00, 0x01, 0x7f},             // nTypes: () -> i32
		{0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00}, // nTypes+1: (i32, i32, i32) -> ()
	}
	hostImport := func(name string, typ uint32) []byte {
		b := appendU32(nil, uint32(len("edgehost")))
		b = append(b, "edgehost"...)
		b = appendU32(b, uint32(len(name)))
		b = append(append(b, name...), 0x00)
		return appendU32(b, typ)
	}
	addedImps := [][]byte{ // in this order: fuel is nImp, fill nImp+1, copy nImp+2
		hostImport(FuelImport, nTypes),
		hostImport(MemoryFillImport, nTypes+1),
		hostImport(MemoryCopyImport, nTypes+1),
	}

	out := append([]byte(nil), wasm[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	seen := map[byte]bool{}
	for _, s := range secs {
		// Sections edgehost adds when the module has none, in their required order.
		if s.id != 0 {
			if !seen[2] && s.id > 2 {
				emit(2, appendVec([]byte{0}, addedImps...))
				seen[2] = true
			}
			if !seen[6] && isAfterGlobals(s.id) {
				emit(6, append([]byte{1}, fuelGlobal...))
				seen[6] = true
			}
			seen[s.id] = true
		}
		var p []byte
		switch s.id {
		case 0:
			switch {
			case s.name == "name":
				p, err = w.nameSection(s.payload)
				if err == nil {
					emit(0, p)
				}
			case strings.HasPrefix(s.name, ".debug"):
				// dropped: code offsets move
			default:
				out = append(out, s.raw...)
			}
		case 1:
			emit(1, appendVec(s.payload, addedTypes...))
		case 2:
			emit(2, appendVec(s.payload, addedImps...))
		case 4:
			p, err = w.tableSection(s.payload)
			if err == nil {
				emit(4, p)
			}
		case 6:
			p, err = w.globals(s.payload)
			if err == nil {
				emit(6, append(p, fuelGlobal...))
			}
		case 7:
			p, err = w.exports(s.payload)
			if err == nil {
				emit(7, p)
			}
		case 8:
			var idx uint32
			if idx, err = (&reader{b: s.payload}).u32(); err == nil {
				emit(8, appendU32(nil, w.fn(idx)))
			}
		case 9:
			p, err = w.elements(s.payload)
			if err == nil {
				emit(9, p)
			}
		case 10:
			p, err = w.code(s.payload)
			if err == nil {
				emit(10, p)
			}
		default:
			out = append(out, s.raw...)
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	if !seen[1] {
		return nil, errors.New("module has no type section")
	}
	// A module whose last sections come before imports or globals gets them at the end.
	if !seen[2] {
		emit(2, appendVec([]byte{0}, addedImps...))
	}
	if !seen[6] {
		emit(6, append([]byte{1}, fuelGlobal...))
	}
	return out, nil
}

func (w *rewriter) code(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if r.pos+int(size) > len(payload) {
			return nil, fmt.Errorf("function %d: body runs past the section", i)
		}
		body, err := w.body(i, payload[r.pos:r.pos+int(size)])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		r.pos += int(size)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

func (w *rewriter) body(fn uint32, body []byte) ([]byte, error) {
	r := &reader{b: body}
	groups, err := r.u32()
	if err != nil {
		return nil, err
	}
	var locals uint64
	for g := uint32(0); g < groups; g++ {
		c, err := r.u32()
		if err != nil {
			return nil, err
		}
		locals += uint64(c)
		if _, err := r.byte(); err != nil {
			return nil, err
		}
	}
	calls, bulk, err := scanBody(body, r.pos)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)+len(w.check)*4)
	var b *bulkCode
	if bulk {
		// One scratch i32 local after the declared ones holds a bulk instruction's length.
		if int(fn) >= len(w.funcTypes) || int(w.funcTypes[fn]) >= len(w.typeParams) {
			return nil, errors.New("function without a valid type")
		}
		first := uint64(w.typeParams[w.funcTypes[fn]]) + locals
		if first+1 > 1<<31 {
			return nil, errors.New("too many locals")
		}
		b = w.bulkCode(uint32(first))
		out = appendU32(out, groups+1)
		out = append(out, body[(&reader{b: body}).skipU32():r.pos]...)
		out = append(out, 0x01, 0x7f)
	} else {
		out = append(out, body[:r.pos]...)
	}
	if calls {
		// Only functions that call can recurse: leaf functions need no entry check, and
		// their loops are checked at the loop heads.
		out = append(out, w.check...)
	}
	// A loop whose block type has no parameters is wrapped so that the slow path (the host
	// call) lies outside it, which keeps the loop body free of calls:
	//
	//	block bt                ;; done: the loop's results
	//	  loop                  ;; retry
	//	    block               ;; slow
	//	      loop bt           ;; the original loop
	//	        <fast>          ;; fuel -= 1; br_if 1 (to slow) when fuel <= 0
	//	        ...body...
	//	      end
	//	      br 2              ;; finished: to done, with the results
	//	    end
	//	    <slow>              ;; fuel = edgehost.fuel(); br 0 (to retry)
	//	  end
	//	  unreachable
	//	end
	//
	// Branches from inside a wrapped loop to labels outside it cross three more blocks.
	var frames []bool // open blocks, innermost last: true for a wrapped loop
	depth := func(d uint32) uint32 {
		extra := uint32(0)
		for k := 0; k < int(d) && k < len(frames); k++ {
			if frames[len(frames)-1-k] {
				extra += 3
			}
		}
		return d + extra
	}
	for r.pos < len(body) {
		start := r.pos
		op, _ := r.byte()
		switch op {
		case 0x10, 0x12, 0xd2: // call, return_call, ref.func
			idx, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), w.fn(idx))
			continue
		case 0x0c, 0x0d: // br, br_if
			d, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), depth(d))
			continue
		case 0x0e: // br_table
			n, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), n)
			for k := uint32(0); k <= n; k++ {
				d, err := r.u32()
				if err != nil {
					return nil, err
				}
				out = appendU32(out, depth(d))
			}
			continue
		case 0x03: // loop
			btStart := r.pos
			if err := r.blockType(); err != nil {
				return nil, err
			}
			bt := body[btStart:r.pos]
			if w.hasParams(bt) {
				out = append(append(append(out, 0x03), bt...), w.check...)
				frames = append(frames, false)
				continue
			}
			out = append(append(out, 0x02), bt...)          // block bt (done)
			out = append(out, 0x03, 0x40, 0x02, 0x40, 0x03) // loop (retry), block (slow), loop
			out = append(append(out, bt...), w.fast...)
			frames = append(frames, true)
			continue
		case 0x02, 0x04: // block, if
			frames = append(frames, false)
		case 0xfc:
			sub, err := r.u32()
			if err != nil {
				return nil, err
			}
			if err := skipFCImmediates(r, sub); err != nil {
				return nil, err
			}
			op := body[start:r.pos]
			switch sub {
			case 10, 11: // memory.copy, memory.fill
				out = b.large(out, sub, op)
			case 8: // memory.init
				out = append(b.charge(out, BulkShift), op...)
			case 12, 14, 15, 17: // table.init, table.copy, table.grow, table.fill
				out = append(b.charge(out, TableShift), op...)
			default:
				out = append(out, op...)
			}
			continue
		case 0x0b: // end
			if len(frames) > 0 {
				wrapped := frames[len(frames)-1]
				frames = frames[:len(frames)-1]
				if wrapped {
					out = append(out, 0x0b, 0x0c, 0x02, 0x0b) // end loop, br 2 (done), end slow
					out = append(out, w.slow...)
					out = append(out, 0x0b, 0x00, 0x0b) // end retry, unreachable, end done
					continue
				}
			}
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, fmt.Errorf("opcode 0x%02x at byte %d: %w", op, start, err)
		}
		out = append(out, body[start:r.pos]...)
	}
	return out, nil
}

// hasParams reports whether a block type (as encoded) takes parameters.
func (w *rewriter) hasParams(bt []byte) bool {
	if len(bt) == 1 && (bt[0] == 0x40 || bt[0]&0x80 == 0 && bt[0] >= 0x6f) {
		return false // empty, or a single value type
	}
	r := &reader{b: bt}
	idx, err := r.u32() // a non-negative s33 type index encodes like a u32
	if err != nil || int(idx) >= len(w.typeParams) {
		return true // unknown: keep the inline check, which is always valid
	}
	return w.typeParams[idx] > 0
}

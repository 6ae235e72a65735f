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

// tableSection lowers every defined table's maximum so that all tables together hold at
// most w.tables entries: each gets an equal share of what their initial sizes leave.
func (w *rewriter) tableSection(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	var reftypes []byte
	var tables []Table
	var initial uint64
	for i := uint32(0); i < n; i++ {
		rt, err := r.byte()
		if err != nil {
			return nil, err
		}
		t, err := r.table()
		if err != nil {
			return nil, err
		}
		reftypes, tables = append(reftypes, rt), append(tables, t)
		initial += uint64(t.Min)
	}
	if initial > uint64(w.tables) {
		return nil, &LimitError{Limit: "TableEntries", Function: -1, Got: initial, Max: uint64(w.tables)}
	}
	share := uint64(0)
	if n > 0 {
		share = (uint64(w.tables) - initial) / uint64(n)
	}
	out := appendU32(nil, n)
	for i, t := range tables {
		m := uint64(t.Min) + share
		if t.HasMax && uint64(t.Max) < m {
			m = uint64(t.Max)
		}
		out = append(out, reftypes[i], 0x01)
		out = appendU32(appendU32(out, t.Min), uint32(m))
	}
	return out, nil
}

func (w *rewriter) globals(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n+1)
	for i := uint32(0); i < n; i++ {
		out = append(out, payload[r.pos:r.pos+2]...) // valtype, mutability
		if err := r.skip(2); err != nil {
			return nil, err
		}
		if out, err = w.constExpr(r, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (w *rewriter) exports(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		start := r.pos
		if err := r.name(); err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		end := r.pos
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = append(out, payload[start:end]...)
		if kind == 0 {
			idx = w.fn(idx)
		}
		out = appendU32(out, idx)
	}
	return out, nil
}

func (w *rewriter) funcVec(r *reader, out []byte) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out = appendU32(out, n)
	for i := uint32(0); i < n; i++ {
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, w.fn(idx))
	}
	return out, nil
}

func (w *rewriter) exprVec(r *reader, out []byte) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out = appendU32(out, n)
	for i := uint32(0); i < n; i++ {
		if out, err = w.constExpr(r, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (w *rewriter) elements(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	copyN := func(f func() error) error {
		start := r.pos
		if err := f(); err != nil {
			return err
		}
		out = append(out, payload[start:r.pos]...)
		return nil
	}
	oneByte := func() error { _, err := r.byte(); return err }
	u32 := func() error { _, err := r.u32(); return err }
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, flags)
		if flags > 7 {
			return nil, fmt.Errorf("element segment flags %d", flags)
		}
		if flags == 2 || flags == 6 { // table index
			if err := copyN(u32); err != nil {
				return nil, err
			}
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = w.constExpr(r, out); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // elemkind or reftype byte
			if err := copyN(oneByte); err != nil {
				return nil, err
			}
		}
		if flags&4 == 0 {
			out, err = w.funcVec(r, out)
		} else {
			out, err = w.exprVec(r, out)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// constExpr copies a constant expression up to and including its end, renumbering ref.func.
func (w *rewriter) constExpr(r *reader, out []byte) ([]byte, error) {
	for {
		start := r.pos
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		if op == 0xd2 {
			idx, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendU32(append(out, op), w.fn(idx))
			continue
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.pos]...)
		if op == 0x0b {
			return out, nil
		}
	}
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
		// Three scratch i32 locals after the declared ones hold a bulk instruction's operands.
		if int(fn) >= len(w.funcTypes) || int(w.funcTypes[fn]) >= len(w.typeParams) {
			return nil, errors.New("function without a valid type")
		}
		first := uint64(w.typeParams[w.funcTypes[fn]]) + locals
		if first+3 > 1<<31 {
			return nil, errors.New("too many locals")
		}
		b = w.bulkCode(uint32(first))
		out = appendU32(out, groups+1)
		out = append(out, body[(&reader{b: body}).skipU32():r.pos]...)
		out = append(out, 0x03, 0x7f)
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

// typeParams returns the parameter count of each function type of a type section.
func (w *rewriter) nameSection(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	if err := r.name(); err != nil { // "name"
		return nil, err
	}
	out := append([]byte(nil), payload[:r.pos]...)
	for r.pos < len(payload) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if r.pos+int(size) > len(payload) {
			return nil, errShort
		}
		sub := payload[r.pos : r.pos+int(size)]
		r.pos += int(size)
		if id == 1 || id == 2 {
			sr := &reader{b: sub}
			n, err := sr.u32()
			if err != nil {
				return nil, err
			}
			p := appendU32(nil, n)
			for i := uint32(0); i < n; i++ {
				idx, err := sr.u32()
				if err != nil {
					return nil, err
				}
				p = appendU32(p, w.fn(idx))
				start := sr.pos
				if id == 1 {
					err = sr.name()
				} else { // indirect name map: the function's local names
					var m uint32
					if m, err = sr.u32(); err == nil {
						for k := uint32(0); k < m && err == nil; k++ {
							if _, err = sr.u32(); err == nil {
								err = sr.name()
							}
						}
					}
				}
				if err != nil {
					return nil, err
				}
				p = append(p, sub[start:sr.pos]...)
			}
			sub = p
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

// bulkCode emits the charged forms of bulk instructions in one function, whose scratch
// locals start at a (a, b, n: the operands of memory.fill/copy; n alone for the others).
type bulkCode struct {
	w       *rewriter
	a, b, n []byte // encoded local indices
	g       []byte // encoded fuel global index
}

func (w *rewriter) bulkCode(first uint32) *bulkCode {
	return &bulkCode{w: w, a: appendU32(nil, first), b: appendU32(nil, first+1), n: appendU32(nil, first+2),
		g: appendU32(nil, w.fuel)}
}

// charge emits, before an instruction whose length operand n is on top of the stack:
//
//	local.tee $n  global.get $fuel  local.get $n  i32.const shift  i32.shr_u  i32.sub
//	global.set $fuel  global.get $fuel  i32.const 0  i32.le_s  if  call $fuel  global.set $fuel  end
//
// n stays on the stack. Checking at once keeps one large n from driving the counter past
// its range before the next loop head.
func (c *bulkCode) charge(out []byte, shift byte) []byte {
	out = append(append(out, 0x22), c.n...)
	out = append(append(out, 0x23), c.g...)
	out = append(append(out, 0x20), c.n...)
	out = append(out, 0x41, shift, 0x76, 0x6b, 0x24)
	out = append(out, c.g...)
	out = append(append(out, 0x23), c.g...)
	out = append(out, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x10)
	out = appendU32(out, c.w.nImp)
	out = append(append(out, 0x24), c.g...)
	return append(out, 0x0b)
}

// large emits memory.fill or memory.copy (op, as encoded) with its length decided at run time:
//
//	local.set $n  local.set $b  local.set $a
//	local.get $n  i32.const BulkInline  i32.gt_u
//	if    local.get $a  local.get $b  local.get $n  call $edgehost.memory_fill|copy
//	else  fuel -= n >> BulkShift  local.get $a  local.get $b  local.get $n  op
//	end
//
// The small path is not checked on the spot: n>>BulkShift is at most 1024 ticks, and the
// next loop head or function entry sees the spent fuel.
func (c *bulkCode) large(out []byte, sub uint32, op []byte) []byte {
	host := c.w.nImp + 1 // memory_fill
	if sub == 10 {
		host = c.w.nImp + 2 // memory_copy
	}
	get3 := func(out []byte) []byte {
		out = append(append(out, 0x20), c.a...)
		out = append(append(out, 0x20), c.b...)
		return append(append(out, 0x20), c.n...)
	}
	out = append(append(out, 0x21), c.n...)
	out = append(append(out, 0x21), c.b...)
	out = append(append(out, 0x21), c.a...)
	out = append(append(out, 0x20), c.n...)
	out = append(append(out, 0x41), appendSLEB32(nil, BulkInline)...)
	out = append(out, 0x4b, 0x04, 0x40)
	out = appendU32(append(get3(out), 0x10), host)
	out = append(out, 0x05)
	out = append(append(out, 0x23), c.g...)
	out = append(append(out, 0x20), c.n...)
	out = append(out, 0x41, BulkShift, 0x76, 0x6b, 0x24)
	out = append(out, c.g...)
	out = append(get3(out), op...)
	return append(out, 0x0b)
}

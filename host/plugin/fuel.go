package plugin

import (
	"errors"

	"fmt"
	"github.com/edgehost/edgehost/abi"
	"strings"
)

// Time budgets (see RATIONALE.md, "Stopping runaway plugins").
//
// At load, the module is rewritten so that every loop head and the entry of every function
// that calls another (only those can recurse) decrements a new mutable i32 global, the fuel, and calls the host import edgehost.fuel
// when it reaches zero or less:
//
//	global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	global.get $fuel  i32.const 0  i32.le_s
//	if  call $edgehost.fuel  global.set $fuel  end
//
// The host function checks the call's deadline: past it, it traps the guest; otherwise it
// returns the refill. Entering Go every FuelRefill ticks also lets the garbage collector
// stop the world, which a guest spinning in a loop would otherwise hold up.
//
// The new import shifts every defined function's index by one, so the rewriter renumbers
// call, return_call and ref.func in code and constant expressions, function exports, the
// start function, element segments and the name section. DWARF sections are dropped: the
// code offsets they describe move.

// FuelImport is the host import the rewriter adds (module abi.HostModule).
const FuelImport = "fuel"

// FuelRefill is how many ticks (loop iterations or calls) run between deadline checks.
const FuelRefill = 65536

var errShort = errors.New("unexpected end of module")

type reader struct {
	b   []byte
	pos int
}

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 u32 too long")
}

// sleb skips a signed LEB128 of at most max bytes.
func (r *reader) sleb(max int) error {
	for i := 0; i < max; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 too long")
}

func (r *reader) skip(n int) error {
	if n < 0 || r.pos+n > len(r.b) {
		return errShort
	}
	r.pos += n
	return nil
}

func (r *reader) name() error {
	l, err := r.u32()
	if err != nil {
		return err
	}
	return r.skip(int(l))
}

func (r *reader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.u32()
	}
	return err
}

func appendU32(b []byte, v uint32) []byte { return abi.AppendULEB(b, uint64(v)) }

type rawSection struct {
	id      byte
	name    string // custom sections
	payload []byte
	raw     []byte
}

func sectionsRaw(wasm []byte) ([]rawSection, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module")
	}
	r := &reader{b: wasm, pos: 8}
	var out []rawSection
	for r.pos < len(wasm) {
		start := r.pos
		id, _ := r.byte()
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		if err := r.skip(int(n)); err != nil {
			return nil, fmt.Errorf("section %d runs past the end", id)
		}
		s := rawSection{id: id, payload: wasm[r.pos-int(n) : r.pos], raw: wasm[start:r.pos]}
		if id == 0 {
			nr := &reader{b: s.payload}
			if l, err := nr.u32(); err == nil && nr.pos+int(l) <= len(s.payload) {
				s.name = string(s.payload[nr.pos : nr.pos+int(l)])
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// rewriter holds what renumbering needs.
type rewriter struct {
	nImp       uint32 // imported functions before the rewrite
	fuel       uint32 // index of the fuel global
	check      []byte // the inline check inserted at function entries (and loops with params)
	fast       []byte // a wrapped loop's head: decrement, br_if 1 to the slow path
	slow       []byte // a wrapped loop's slow path: refill, br 0 back to the loop
	typeParams []int  // parameter count of each type
}

func (w *rewriter) fn(idx uint32) uint32 {
	if idx >= w.nImp {
		return idx + 1
	}
	return idx
}

// instrument returns wasm with fuel checks added and function indices renumbered.
func instrument(wasm []byte) ([]byte, error) {
	secs, err := sectionsRaw(wasm)
	if err != nil {
		return nil, err
	}
	var nTypes, nImpGlobals, nGlobals uint32
	w := &rewriter{}
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
	fuelType := []byte{0x60, 0x00, 0x01, 0x7f} // () -> i32
	fuelImport := appendU32(nil, uint32(len("edgehost")))
	fuelImport = append(fuelImport, "edgehost"...)
	fuelImport = appendU32(fuelImport, uint32(len(FuelImport)))
	fuelImport = append(append(fuelImport, FuelImport...), 0x00)
	fuelImport = appendU32(fuelImport, nTypes)

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
				emit(2, append([]byte{1}, fuelImport...))
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
			emit(1, appendVec(s.payload, fuelType))
		case 2:
			emit(2, appendVec(s.payload, fuelImport))
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
	return out, nil
}

func isAfterGlobals(id byte) bool {
	return id == 7 || id == 8 || id == 9 || id == 12 || id == 10 || id == 11
}

// appendVec adds one entry to a vector section payload (count, entries...).
func appendVec(payload, entry []byte) []byte {
	r := &reader{b: payload}
	n, _ := r.u32()
	out := appendU32(nil, n+1)
	out = append(out, payload[r.pos:]...)
	return append(out, entry...)
}

func appendSLEB32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func countImports(payload []byte) (funcs, globals uint32, err error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return 0, 0, err
	}
	for i := uint32(0); i < n; i++ {
		if err := r.name(); err != nil {
			return 0, 0, err
		}
		if err := r.name(); err != nil {
			return 0, 0, err
		}
		kind, err := r.byte()
		if err != nil {
			return 0, 0, err
		}
		switch kind {
		case 0x00:
			funcs++
			_, err = r.u32()
		case 0x01:
			if _, err = r.byte(); err == nil {
				err = r.limits()
			}
		case 0x02:
			err = r.limits()
		case 0x03:
			globals++
			err = r.skip(2)
		case 0x04:
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return 0, 0, fmt.Errorf("unknown import kind 0x%02x", kind)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return funcs, globals, nil
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
		body, err := w.body(payload[r.pos : r.pos+int(size)])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		r.pos += int(size)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

func (w *rewriter) body(body []byte) ([]byte, error) {
	r := &reader{b: body}
	groups, err := r.u32()
	if err != nil {
		return nil, err
	}
	for g := uint32(0); g < groups; g++ {
		if _, err := r.u32(); err != nil {
			return nil, err
		}
		if _, err := r.byte(); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, len(body)+len(w.check)*4)
	out = append(out, body[:r.pos]...)
	calls, err := hasCalls(body, r.pos)
	if err != nil {
		return nil, err
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
func typeParams(payload []byte) ([]int, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, min(int(n), len(payload))) // n comes from the module: never trust it for sizes
	for i := uint32(0); i < n; i++ {
		if form, err := r.byte(); err != nil || form != 0x60 {
			return nil, fmt.Errorf("type %d is not a function type", i)
		}
		params, err := r.u32()
		if err != nil {
			return nil, err
		}
		if err := r.skip(int(params)); err != nil {
			return nil, err
		}
		results, err := r.u32()
		if err != nil {
			return nil, err
		}
		if err := r.skip(int(results)); err != nil {
			return nil, err
		}
		out = append(out, int(params))
	}
	return out, nil
}

// hasCalls reports whether the code from pos calls another function.
func hasCalls(body []byte, pos int) (bool, error) {
	r := &reader{b: body, pos: pos}
	for r.pos < len(body) {
		op, _ := r.byte()
		if op == 0x10 || op == 0x11 || op == 0x12 || op == 0x13 {
			return true, nil
		}
		if err := skipImmediates(r, op); err != nil {
			return false, err
		}
	}
	return false, nil
}

// nameSection renumbers function names (subsection 1) and local names (subsection 2).
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

func (r *reader) blockType() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	switch c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return nil
	}
	r.pos--
	return r.sleb(5) // type index as s33
}

func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 { // multi-memory: memory index follows
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.u32()
	return err
}

func (r *reader) u32s(n int) error {
	for i := 0; i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// skipImmediates advances past op's immediates.
func skipImmediates(r *reader, op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04:
		return r.blockType()
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0xd2 || (op >= 0x20 && op <= 0x26):
		return r.u32s(1)
	case op == 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		return r.u32s(int(n) + 1)
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		return r.u32s(2)
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return err
		}
		return r.skip(int(n))
	case op >= 0x28 && op <= 0x3e:
		return r.memarg()
	case op == 0x3f || op == 0x40:
		return r.u32s(1)
	case op == 0x41:
		return r.sleb(5)
	case op == 0x42:
		return r.sleb(10)
	case op == 0x43:
		return r.skip(4)
	case op == 0x44:
		return r.skip(8)
	case op == 0xd0:
		return r.skip(1)
	case op == 0xfc:
		return skipFC(r)
	case op == 0xfd:
		return skipSIMD(r)
	case op == 0xfe:
		return skipAtomic(r)
	case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1 || (op >= 0x45 && op <= 0xc4):
		return nil
	}
	return fmt.Errorf("unsupported opcode 0x%02x", op)
}

func skipFC(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7:
		return nil
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		return r.u32s(2)
	case sub == 9 || sub == 11 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		return r.u32s(1)
	}
	return fmt.Errorf("unsupported 0xfc opcode %d", sub)
}

func skipSIMD(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		return r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		return r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		return r.skip(1)
	case sub >= 84 && sub <= 91: // load and store lane
		if err := r.memarg(); err != nil {
			return err
		}
		return r.skip(1)
	case sub <= 275:
		return nil
	}
	return fmt.Errorf("unsupported SIMD opcode %d", sub)
}

func skipAtomic(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	if sub == 3 { // atomic.fence
		return r.skip(1)
	}
	if sub <= 0x4e {
		return r.memarg()
	}
	return fmt.Errorf("unsupported atomic opcode %d", sub)
}

// Instrument exposes the load-time rewriter for tests and tools: it returns the module
// with fuel checks added.
func Instrument(wasm []byte) ([]byte, error) { return instrument(wasm) }

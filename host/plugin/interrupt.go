package plugin

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Time budgets (see RATIONALE.md, "Stopping runaway plugins").
//
// At load, every function body is rewritten to read a new exported mutable i32 global,
// InterruptGlobal, at its entry and at the head of every loop, and to trap when it is not
// zero:
//
//	global.get $interrupt  if  unreachable  end
//
// A call's watchdog timer sets the global to 1 when the budget runs out, and the guest
// traps at its next loop iteration or function entry. No import is added, so no function
// index moves: names, exports, tables and stack traces stay valid. Only the global and
// export sections grow and the code section is re-encoded.

// InterruptGlobal is the name of the exported global the host sets to stop a guest.
const InterruptGlobal = "edgehost_interrupt"

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

// importedGlobals counts the globals an import section imports.
func importedGlobals(payload []byte) (uint32, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	var globals uint32
	for i := uint32(0); i < n; i++ {
		for k := 0; k < 2; k++ { // module and field names
			l, err := r.u32()
			if err != nil {
				return 0, err
			}
			if err := r.skip(int(l)); err != nil {
				return 0, err
			}
		}
		kind, err := r.byte()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 0x00: // function: type index
			_, err = r.u32()
		case 0x01: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = r.limits()
			}
		case 0x02: // memory: limits
			err = r.limits()
		case 0x03: // global: valtype, mutability
			globals++
			err = r.skip(2)
		case 0x04: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return 0, fmt.Errorf("unknown import kind 0x%02x", kind)
		}
		if err != nil {
			return 0, err
		}
	}
	return globals, nil
}

// instrument returns wasm with the interrupt checks added.
func instrument(wasm []byte) ([]byte, error) {
	secs, err := sectionsRaw(wasm)
	if err != nil {
		return nil, err
	}
	var imported, defined uint32
	hasGlobal, hasExport := false, false
	for _, s := range secs {
		switch s.id {
		case 2:
			if imported, err = importedGlobals(s.payload); err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
		case 6:
			hasGlobal = true
			if defined, err = (&reader{b: s.payload}).u32(); err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
		case 7:
			hasExport = true
		}
	}
	if !hasExport {
		return nil, errors.New("module has no export section")
	}
	gidx := imported + defined
	check := append([]byte{0x23}, appendU32(nil, gidx)...) // global.get
	check = append(check, 0x04, 0x40, 0x00, 0x0b)          // if (empty) unreachable end
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}      // (mut i32) (i32.const 0)

	out := append([]byte(nil), wasm[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	for _, s := range secs {
		switch {
		case s.id == 6:
			r := &reader{b: s.payload}
			n, _ := r.u32()
			p := appendU32(nil, n+1)
			p = append(p, s.payload[r.pos:]...)
			emit(6, append(p, newGlobal...))
		case s.id == 7:
			r := &reader{b: s.payload}
			n, _ := r.u32()
			p := appendU32(nil, n+1)
			p = append(p, s.payload[r.pos:]...)
			p = appendU32(p, uint32(len(InterruptGlobal)))
			p = append(p, InterruptGlobal...)
			p = append(p, 0x03)
			emit(7, appendU32(p, gidx))
		case s.id == 10:
			code, err := instrumentCode(s.payload, check)
			if err != nil {
				return nil, fmt.Errorf("code section: %w", err)
			}
			emit(10, code)
		default:
			if !hasGlobal && isAfterGlobals(s.id) {
				emit(6, append([]byte{1}, newGlobal...))
				hasGlobal = true
			}
			out = append(out, s.raw...)
		}
	}
	return out, nil
}

// isAfterGlobals reports section ids that come after the global section in a module.
func isAfterGlobals(id byte) bool {
	return id == 7 || id == 8 || id == 9 || id == 12 || id == 10 || id == 11
}

type rawSection struct {
	id      byte
	payload []byte
	raw     []byte
}

func sectionsRaw(wasm []byte) ([]rawSection, error) {
	if len(wasm) < 8 || binary.LittleEndian.Uint32(wasm[:4]) != 0x6d736100 {
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
		out = append(out, rawSection{id: id, payload: wasm[r.pos-int(n) : r.pos], raw: wasm[start:r.pos]})
	}
	return out, nil
}

func instrumentCode(payload, check []byte) ([]byte, error) {
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
		body, err := instrumentBody(payload[r.pos:r.pos+int(size)], check)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		r.pos += int(size)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

func instrumentBody(body, check []byte) ([]byte, error) {
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
	out := make([]byte, 0, len(body)+len(check)*4)
	out = append(out, body[:r.pos]...)
	out = append(out, check...) // function entry
	last := r.pos
	for r.pos < len(body) {
		op, _ := r.byte()
		if err := skipImmediates(r, op); err != nil {
			return nil, fmt.Errorf("opcode 0x%02x at byte %d: %w", op, r.pos, err)
		}
		if op == 0x03 { // loop: check at the head of every iteration
			out = append(out, body[last:r.pos]...)
			out = append(out, check...)
			last = r.pos
		}
	}
	return append(out, body[last:]...), nil
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

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
		} else {
			return append(b, c)
		}
	}
}

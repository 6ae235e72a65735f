package wasm

import (
	"errors"
	"fmt"

	"github.com/edgehost/edgehost/abi"
)

// Binary parsing: a bounds-checked reader of the WebAssembly binary format, the section
// list, and the immediates of every instruction wazero accepts (core 2.0 plus threads).
// Counts read from a module are never trusted to size an allocation.

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

func isAfterGlobals(id byte) bool {
	return id == 7 || id == 8 || id == 9 || id == 12 || id == 10 || id == 11
}

// appendVec adds entries to a vector section payload (count, entries...).
func appendVec(payload []byte, entries ...[]byte) []byte {
	r := &reader{b: payload}
	n, _ := r.u32()
	out := appendU32(nil, n+uint32(len(entries)))
	out = append(out, payload[r.pos:]...)
	for _, e := range entries {
		out = append(out, e...)
	}
	return out
}

// funcTypes returns the type index of each function of a function section.
func funcTypes(payload []byte) ([]uint32, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, min(int(n), len(payload)))
	for i := uint32(0); i < n; i++ {
		t, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
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

// scanBody reports whether the code from pos calls another function and whether it holds
// a bulk memory or table instruction that the rewrite charges.
func scanBody(body []byte, pos int) (calls, bulk bool, err error) {
	r := &reader{b: body, pos: pos}
	for r.pos < len(body) {
		op, _ := r.byte()
		switch op {
		case 0x10, 0x11, 0x12, 0x13:
			calls = true
		case 0xfc:
			sub, err := r.u32()
			if err != nil {
				return false, false, err
			}
			switch sub {
			case 8, 10, 11, 12, 14, 15, 17:
				bulk = true
			}
			if err := skipFCImmediates(r, sub); err != nil {
				return false, false, err
			}
			continue
		}
		if err := skipImmediates(r, op); err != nil {
			return false, false, err
		}
	}
	return calls, bulk, nil
}

// skipU32 returns the position after a LEB128 u32 at the reader's position (for slicing).
func (r *reader) skipU32() int {
	_, _ = r.u32()
	return r.pos
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
	return skipFCImmediates(r, sub)
}

func skipFCImmediates(r *reader, sub uint32) error {
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

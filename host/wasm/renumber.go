package wasm

import "fmt"

// Renumbering outside the code section: the added imports shift every defined function's
// index (exports, start, element segments, ref.func in constant expressions, the name
// section), the fuel global is appended to the globals, and table maxima are capped.

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

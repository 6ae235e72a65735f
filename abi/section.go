package abi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Section is one section of a WebAssembly binary.
type Section struct {
	ID      byte
	Name    string // custom sections (ID 0) only
	Payload []byte // for custom sections, the bytes after the name
	Raw     []byte // the whole section including ID and size
}

// Sections splits a WebAssembly binary into its sections.
func Sections(wasm []byte) ([]Section, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], wasmHeader) {
		return nil, errors.New("not a WebAssembly module (bad magic or version)")
	}
	var out []Section
	p := 8
	for p < len(wasm) {
		start := p
		id := wasm[p]
		p++
		size, n, err := uleb(wasm[p:])
		if err != nil {
			return nil, fmt.Errorf("section at offset %d: %w", start, err)
		}
		p += n
		if uint64(len(wasm)-p) < size {
			return nil, fmt.Errorf("section at offset %d: size %d runs past the end of the module", start, size)
		}
		body := wasm[p : p+int(size)]
		p += int(size)
		s := Section{ID: id, Raw: wasm[start:p], Payload: body}
		if id == 0 {
			l, n, err := uleb(body)
			if err != nil || uint64(len(body)-n) < l {
				return nil, fmt.Errorf("custom section at offset %d: bad name", start)
			}
			s.Name = string(body[n : n+int(l)])
			s.Payload = body[n+int(l):]
		}
		out = append(out, s)
	}
	return out, nil
}

// CustomSection returns the payload of the last custom section called name.
func CustomSection(wasm []byte, name string) ([]byte, bool, error) {
	secs, err := Sections(wasm)
	if err != nil {
		return nil, false, err
	}
	var found []byte
	ok := false
	for _, s := range secs {
		if s.ID == 0 && s.Name == name {
			found, ok = s.Payload, true
		}
	}
	return found, ok, nil
}

// SetCustomSection returns wasm with every custom section called name removed and one
// with payload appended at the end.
func SetCustomSection(wasm []byte, name string, payload []byte) ([]byte, error) {
	secs, err := Sections(wasm)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), wasmHeader...)
	for _, s := range secs {
		if s.ID == 0 && s.Name == name {
			continue
		}
		out = append(out, s.Raw...)
	}
	if payload == nil {
		return out, nil
	}
	var body []byte
	body = AppendULEB(body, uint64(len(name)))
	body = append(body, name...)
	body = append(body, payload...)
	out = append(out, 0)
	out = AppendULEB(out, uint64(len(body)))
	return append(out, body...), nil
}

func uleb(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 5; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad LEB128 integer")
}

// AppendULEB appends v as an unsigned LEB128 integer, as WebAssembly encodes sizes and
// indices.
func AppendULEB(b []byte, v uint64) []byte {
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

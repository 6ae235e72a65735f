package testplugins

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgehost/edgehost/abi"
)

// Hand-written modules: for hostile cases no compiler emits (an index the rewrite adds, a
// start section, 64M locals), built from raw sections.

// ULEB encodes v as unsigned LEB128.
func ULEB(v uint64) []byte { return abi.AppendULEB(nil, v) }

// SLEB encodes v as signed LEB128.
func SLEB(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Vec is a vector: its count, then the items.
func Vec(items ...[]byte) []byte {
	out := ULEB(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

// Str is a name: its length, then its bytes.
func Str(s string) []byte { return append(ULEB(uint64(len(s))), s...) }

// Section is one section with its size.
func Section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, ULEB(uint64(len(payload)))...), payload...)
}

// Module is the header followed by the sections.
func Module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

// Body is a function body: locals (already encoded, count of groups first) and code,
// which must end with 0x0b.
func Body(locals, code []byte) []byte {
	b := append(append([]byte(nil), locals...), code...)
	return append(ULEB(uint64(len(b))), b...)
}

// PluginSpec overrides parts of the minimal plugin RawPlugin builds.
type PluginSpec struct {
	Pre       []byte // code of edgehost_pre (i32) -> i32; default: i32.const 0, end
	PreLocals []byte // its locals; default none
	Start     []byte // code of a () -> () start function; none by default
	Pages     uint32 // initial memory pages; default 2
	MaxPages  uint32 // 0: no maximum
	Tables    []byte // a raw table section payload; none by default
	Extra     [][]byte
	// Faults a newcomer's toolchain produces, for the load checks:
	StartExport  string // export the Start function under this name (say "_start") instead of running it
	PreSignature bool   // edgehost_pre gets the signature (i32, i32) -> i32
	NoMemory     bool   // do not export the memory
	ImportMemory bool   // import the memory as env.memory instead of defining it (and export none)
}

// RawPlugin builds a minimal valid plugin of kind "both" by hand: a bump allocator over
// one mutable global, init and post returning 0, and pre as given. Function indices:
// 0 abi_version, 1 alloc, 2 free, 3 init, 4 pre, 5 post, 6 start. Types: 0 () -> i32,
// 1 (i32, i32) -> i32, 2 (i32) -> (), 3 (i32) -> i32, 4 () -> (). Global 0 is the heap top.
func RawPlugin(s PluginSpec) []byte {
	i32 := byte(0x7f)
	types := Vec(
		[]byte{0x60, 0, 1, i32},
		[]byte{0x60, 2, i32, i32, 1, i32},
		[]byte{0x60, 1, i32, 0},
		[]byte{0x60, 1, i32, 1, i32},
		[]byte{0x60, 0, 0},
	)
	ftypes := []byte{0, 1, 2, 1, 3, 3}
	if s.PreSignature {
		ftypes[4] = 1
	}
	if s.Start != nil {
		ftypes = append(ftypes, 4)
	}
	funcs := append(ULEB(uint64(len(ftypes))), ftypes...)
	if s.Pages == 0 {
		s.Pages = 2
	}
	mem := []byte{0}
	if s.MaxPages != 0 {
		mem = []byte{1}
	}
	mem = append(mem, ULEB(uint64(s.Pages))...)
	if s.MaxPages != 0 {
		mem = append(mem, ULEB(uint64(s.MaxPages))...)
	}
	globals := Vec(append([]byte{i32, 1, 0x41}, append(SLEB(1024), 0x0b)...))
	exp := func(name string, kind byte, idx uint64) []byte { return append(append(Str(name), kind), ULEB(idx)...) }
	exps := [][]byte{exp(abi.ExportABIVersion, 0, 0), exp(abi.ExportAlloc, 0, 1),
		exp(abi.ExportFree, 0, 2), exp(abi.ExportInit, 0, 3), exp(abi.ExportPre, 0, 4), exp(abi.ExportPost, 0, 5)}
	if !s.NoMemory && !s.ImportMemory {
		exps = append(exps, exp("memory", 2, 0))
	}
	if s.StartExport != "" {
		exps = append(exps, exp(s.StartExport, 0, 6))
	}
	exports := Vec(exps...)
	pre := s.Pre
	if pre == nil {
		pre = []byte{0x41, 0, 0x0b}
	}
	preLocals := s.PreLocals
	if preLocals == nil {
		preLocals = []byte{0}
	}
	// alloc(size, align): p = (top + 63) & -64; top = p + size; return p
	alloc := []byte{0x23, 0, 0x41, 63, 0x6a, 0x41, 0x40, 0x71, 0x22, 2, 0x20, 0, 0x6a, 0x24, 0, 0x20, 2, 0x0b}
	bodies := [][]byte{
		Body([]byte{0}, []byte{0x41, 1, 0x0b}),
		Body([]byte{1, 1, i32}, alloc),
		Body([]byte{0}, []byte{0x0b}),
		Body([]byte{0}, []byte{0x41, 0, 0x0b}),
		Body(preLocals, pre),
		Body([]byte{0}, []byte{0x41, 0, 0x0b}),
	}
	if s.Start != nil {
		bodies = append(bodies, Body([]byte{0}, s.Start))
	}
	secs := [][]byte{Section(1, types)}
	if s.ImportMemory {
		secs = append(secs, Section(2, Vec(append(append(Str("env"), Str("memory")...), append([]byte{2}, mem...)...))))
	}
	secs = append(secs, Section(3, funcs))
	if s.Tables != nil {
		secs = append(secs, Section(4, s.Tables))
	}
	if !s.ImportMemory {
		secs = append(secs, Section(5, Vec(mem)))
	}
	secs = append(secs, Section(6, globals), Section(7, exports))
	if s.Start != nil && s.StartExport == "" {
		secs = append(secs, Section(8, ULEB(6)))
	}
	secs = append(secs, Section(10, Vec(bodies...)))
	secs = append(secs, s.Extra...)
	return Module(secs...)
}

// WriteRaw embeds a manifest named name in b and writes it to a temporary .wasm file.
func WriteRaw(t testing.TB, name string, b []byte) string {
	t.Helper()
	man := `{"name":"` + name + `","version":"1.0.0","abi":1,"kind":"both"}`
	b, err := abi.SetCustomSection(b, abi.ManifestSection, []byte(man))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name+".wasm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

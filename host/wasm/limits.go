package wasm

import (
	"errors"
	"fmt"
)

// Limits bound the shape of a module before anything compiles it, so that compile time and
// compile memory are bounded for every module that passes (wazero's compiler is superlinear
// in the size of one function and allocates per declared local). The zero value of a field
// means its default (DefaultLimits).
type Limits struct {
	ModuleBytes   int    // the whole binary
	CodeBytes     int    // the code section
	Functions     uint32 // defined plus imported functions
	FunctionBytes uint32 // one function body
	Locals        uint32 // declared locals of one function (parameters excluded)
	Nesting       uint32 // open blocks, loops and ifs at any point of one function
	Blocks        uint32 // blocks and ifs in one function, a loop counting LoopWeight
	TotalBlocks   uint64 // weighted blocks of all functions together
	Tables        uint32 // defined plus imported tables
	Entries       uint32 // entries of any one section (types, imports, globals, exports, segments…)
	TableEntries  uint32 // the initial size of all tables together, and each one's cap
}

// DefaultLimits admit the example plugins (the 4.2 MB Go guest: 2.6 MB of code, 2,563
// functions, the largest 50 KB with 989 weighted blocks, 89,795 in all, 24 locals, nesting 549) and keep wazero's compile in its linear regime (about 30 µs per
// weighted block below 5,000 in one function, superlinear above: 8,000 took 1.1 s, 20,000
// 4.4 s). See RATIONALE.md, "Validating modules as written", for the figures.
var DefaultLimits = Limits{
	ModuleBytes:   16 << 20,
	CodeBytes:     6 << 20,
	Functions:     100_000,
	FunctionBytes: 1 << 20,
	Locals:        10_000,
	Nesting:       1_024,
	Blocks:        5_000,
	TotalBlocks:   120_000,
	Tables:        4,
	Entries:       100_000,
	TableEntries:  1 << 20,
}

// LoopWeight is what a loop counts in the Blocks limits: the rewrite wraps it in three blocks,
// and wazero's compile time per loop measured about six times that of a block (1,000 loops
// in one function 157 ms, 5,000 blocks 129 ms).
const LoopWeight = 6

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *uint32, def uint32) {
		if *v == 0 {
			*v = def
		}
	}
	if l.ModuleBytes == 0 {
		l.ModuleBytes = d.ModuleBytes
	}
	if l.CodeBytes == 0 {
		l.CodeBytes = d.CodeBytes
	}
	set(&l.Functions, d.Functions)
	set(&l.FunctionBytes, d.FunctionBytes)
	set(&l.Locals, d.Locals)
	set(&l.Nesting, d.Nesting)
	set(&l.Blocks, d.Blocks)
	if l.TotalBlocks == 0 {
		l.TotalBlocks = d.TotalBlocks
	}
	set(&l.Tables, d.Tables)
	set(&l.Entries, d.Entries)
	set(&l.TableEntries, d.TableEntries)
	return l
}

// LimitError is a module over one of its Limits. Limit names the field of Limits.
type LimitError struct {
	Limit    string // "Locals", "Nesting", …
	Function int    // index of the defined function, or -1
	Got, Max uint64
}

func (e *LimitError) Error() string {
	where := ""
	if e.Function >= 0 {
		where = fmt.Sprintf("function %d: ", e.Function)
	}
	return fmt.Sprintf("%s%s %d exceeds the limit of %d", where, limitText[e.Limit], e.Got, e.Max)
}

var limitText = map[string]string{
	"ModuleBytes":   "module size in bytes",
	"CodeBytes":     "code section size in bytes",
	"Functions":     "number of functions",
	"FunctionBytes": "function body size in bytes",
	"Locals":        "number of locals",
	"Nesting":       "block nesting depth",
	"Blocks":        "weighted number of blocks, ifs and loops (a loop counts 6)",
	"TotalBlocks":   "weighted number of blocks, ifs and loops of all functions",
	"Tables":        "number of tables",
	"Entries":       "number of entries in one section",
	"TableEntries":  "initial table entries",
}

// ErrLimit matches every *LimitError with errors.Is.
var ErrLimit = errors.New("wasm: module over a structural limit")

func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Shape is what the structural check learned about a module.
type Shape struct {
	Functions    uint32   // imported plus defined
	Tables       []Table  // imported tables first
	MaxLocals    uint32   // the most locals of any function
	MaxNesting   uint32   // the deepest nesting of any function
	MaxBlocks    uint32   // the most (weighted) blocks of any function
	TotalBlocks  uint64   // weighted blocks of all functions
	CodeBytes    int      // the code section's size
	MaxFuncBytes uint32   // the largest function body
	funcTypes    []uint32 // type index of each defined function
}

// Table is one table's declared limits.
type Table struct {
	Min    uint32
	Max    uint32 // meaningful when HasMax
	HasMax bool
}

// CheckLimits checks the structure of a module against l without compiling it. It reads
// only what the limits need; a module it accepts may still be invalid (see Validate).
func CheckLimits(b []byte, l Limits) (*Shape, error) {
	l = l.withDefaults()
	over := func(name string, fn int, got, max uint64) error {
		if got > max {
			return &LimitError{Limit: name, Function: fn, Got: got, Max: max}
		}
		return nil
	}
	if err := over("ModuleBytes", -1, uint64(len(b)), uint64(l.ModuleBytes)); err != nil {
		return nil, err
	}
	secs, err := sectionsRaw(b)
	if err != nil {
		return nil, err
	}
	sh := &Shape{}
	var entries uint64
	for _, s := range secs {
		r := &reader{b: s.payload}
		// wazero's decoder sizes each section's slice from the count the module declares
		// (make([]T, count)): a 13-byte element section claiming 2^28 segments cost it 1.5 s,
		// and larger claims exhaust memory, which kills the process. Every entry takes at
		// least one byte, and no section may hold more than l.Entries.
		switch s.id {
		case 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13:
			n, err := (&reader{b: s.payload}).u32()
			if err != nil {
				return nil, fmt.Errorf("section %d: %w", s.id, err)
			}
			if int64(n) > int64(len(s.payload)) {
				return nil, fmt.Errorf("section %d declares %d entries in %d bytes", s.id, n, len(s.payload))
			}
			limit, name := l.Entries, "Entries"
			if s.id == 3 || s.id == 10 { // functions and bodies
				limit, name = l.Functions, "Functions"
			}
			if err := over(name, -1, uint64(n), uint64(limit)); err != nil {
				return nil, err
			}
		}
		if err := checkNested(s, l); err != nil {
			return nil, err
		}
		switch s.id {
		case 2:
			funcs, _, err := countImports(s.payload)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			sh.Functions += funcs
			tables, err := importedTables(s.payload)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			sh.Tables = append(sh.Tables, tables...)
		case 3:
			n, err := r.u32()
			if err != nil {
				return nil, fmt.Errorf("function section: %w", err)
			}
			if err := over("Functions", -1, uint64(sh.Functions)+uint64(n), uint64(l.Functions)); err != nil {
				return nil, err
			}
			sh.Functions += n
			for i := uint32(0); i < n; i++ {
				t, err := r.u32()
				if err != nil {
					return nil, fmt.Errorf("function section: %w", err)
				}
				sh.funcTypes = append(sh.funcTypes, t)
			}
		case 4:
			n, err := r.u32()
			if err != nil {
				return nil, fmt.Errorf("table section: %w", err)
			}
			if err := over("Tables", -1, uint64(len(sh.Tables))+uint64(n), uint64(l.Tables)); err != nil {
				return nil, err
			}
			for i := uint32(0); i < n; i++ {
				if _, err := r.byte(); err != nil { // reftype
					return nil, fmt.Errorf("table section: %w", err)
				}
				t, err := r.table()
				if err != nil {
					return nil, fmt.Errorf("table section: %w", err)
				}
				sh.Tables = append(sh.Tables, t)
			}
		case 10:
			if err := over("CodeBytes", -1, uint64(len(s.payload)), uint64(l.CodeBytes)); err != nil {
				return nil, err
			}
			sh.CodeBytes = len(s.payload)
			if err := checkCode(s.payload, l, sh); err != nil {
				return nil, err
			}
		}
	}
	if err := over("Tables", -1, uint64(len(sh.Tables)), uint64(l.Tables)); err != nil {
		return nil, err
	}
	for _, t := range sh.Tables {
		entries += uint64(t.Min)
	}
	if err := over("TableEntries", -1, entries, uint64(l.TableEntries)); err != nil {
		return nil, err
	}
	return sh, nil
}

func (r *reader) table() (Table, error) {
	flags, err := r.byte()
	if err != nil {
		return Table{}, err
	}
	var t Table
	if t.Min, err = r.u32(); err != nil {
		return t, err
	}
	if flags&1 != 0 {
		t.HasMax = true
		t.Max, err = r.u32()
	}
	return t, err
}

func importedTables(payload []byte) ([]Table, error) {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	var out []Table
	for i := uint32(0); i < n; i++ {
		if err := r.name(); err != nil {
			return nil, err
		}
		if err := r.name(); err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0x00:
			_, err = r.u32()
		case 0x01:
			var t Table
			if _, err = r.byte(); err == nil {
				t, err = r.table()
				out = append(out, t)
			}
		case 0x02:
			err = r.limits()
		case 0x03:
			err = r.skip(2)
		case 0x04:
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return nil, fmt.Errorf("unknown import kind 0x%02x", kind)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkCode walks every function body once: locals, size, blocks and nesting.
func checkCode(payload []byte, l Limits, sh *Shape) error {
	r := &reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return fmt.Errorf("code section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		fn := int(i)
		size, err := r.u32()
		if err != nil {
			return fmt.Errorf("code section: %w", err)
		}
		if size > l.FunctionBytes {
			return &LimitError{Limit: "FunctionBytes", Function: fn, Got: uint64(size), Max: uint64(l.FunctionBytes)}
		}
		if r.pos+int(size) > len(payload) {
			return fmt.Errorf("function %d: body runs past the section", i)
		}
		body := payload[r.pos : r.pos+int(size)]
		r.pos += int(size)
		sh.MaxFuncBytes = max(sh.MaxFuncBytes, size)
		br := &reader{b: body}
		groups, err := br.u32()
		if err != nil {
			return fmt.Errorf("function %d: %w", i, err)
		}
		var locals uint64
		for g := uint32(0); g < groups; g++ {
			c, err := br.u32()
			if err != nil {
				return fmt.Errorf("function %d: %w", i, err)
			}
			if _, err := br.byte(); err != nil {
				return fmt.Errorf("function %d: %w", i, err)
			}
			if locals += uint64(c); locals > uint64(l.Locals) {
				return &LimitError{Limit: "Locals", Function: fn, Got: locals, Max: uint64(l.Locals)}
			}
		}
		sh.MaxLocals = max(sh.MaxLocals, uint32(locals))
		var depth, deepest, blocks uint32
		for br.pos < len(body) {
			start := br.pos
			op, _ := br.byte()
			switch op {
			case 0x02, 0x03, 0x04:
				depth++
				blocks++
				if op == 0x03 {
					blocks += LoopWeight - 1
				}
				if depth > l.Nesting {
					return &LimitError{Limit: "Nesting", Function: fn, Got: uint64(depth), Max: uint64(l.Nesting)}
				}
				if blocks > l.Blocks {
					return &LimitError{Limit: "Blocks", Function: fn, Got: uint64(blocks), Max: uint64(l.Blocks)}
				}
				deepest = max(deepest, depth)
			case 0x0b:
				if depth > 0 {
					depth--
				}
			}
			if err := skipImmediates(br, op); err != nil {
				return fmt.Errorf("function %d: opcode 0x%02x at byte %d: %w", i, op, start, err)
			}
		}
		sh.MaxNesting = max(sh.MaxNesting, deepest)
		sh.MaxBlocks = max(sh.MaxBlocks, blocks)
		if sh.TotalBlocks += uint64(blocks); sh.TotalBlocks > l.TotalBlocks {
			return &LimitError{Limit: "TotalBlocks", Function: -1, Got: sh.TotalBlocks, Max: l.TotalBlocks}
		}
	}
	return nil
}

// checkNested bounds the counts and sizes nested inside sections, which wazero's decoder
// also trusts for its allocations (a type's parameter count, an element segment's vector, a
// data segment's size, the name section's maps): each must fit the bytes that follow, and
// element entries and name-map entries have their own caps.
func checkNested(s rawSection, l Limits) error {
	r := &reader{b: s.payload}
	wrap := func(err error) error {
		if err == nil {
			return nil
		}
		var le *LimitError
		if errors.As(err, &le) {
			return err
		}
		return fmt.Errorf("section %d: %w", s.id, err)
	}
	switch s.id {
	case 0:
		if s.name == "name" {
			return wrap(checkNames(r, l))
		}
	case 1:
		_, err := typeParams(s.payload)
		return wrap(err)
	case 7:
		n, err := r.u32()
		for i := uint32(0); err == nil && i < n; i++ {
			if err = r.name(); err == nil {
				if _, err = r.byte(); err == nil {
					_, err = r.u32()
				}
			}
		}
		return wrap(err)
	case 9:
		return wrap(checkElements(r, l))
	case 11:
		n, err := r.u32()
		for i := uint32(0); err == nil && i < n; i++ {
			var flags, size uint32
			if flags, err = r.u32(); err != nil {
				break
			}
			if flags == 2 {
				_, err = r.u32()
			}
			if err == nil && flags != 1 {
				err = skipConstExpr(r)
			}
			if err == nil {
				if size, err = r.u32(); err == nil {
					err = r.skip(int(size))
				}
			}
		}
		return wrap(err)
	}
	return nil
}

func skipConstExpr(r *reader) error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		if op == 0x0b {
			return nil
		}
		if err := skipImmediates(r, op); err != nil {
			return err
		}
	}
}

func checkElements(r *reader, l Limits) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	var total uint64
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return fmt.Errorf("element segment flags %d", flags)
		}
		if flags == 2 || flags == 6 {
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		if flags&1 == 0 {
			if err := skipConstExpr(r); err != nil {
				return err
			}
		}
		if flags&3 != 0 {
			if _, err := r.byte(); err != nil {
				return err
			}
		}
		count, err := r.u32()
		if err != nil {
			return err
		}
		if int(count) > len(r.b)-r.pos {
			return fmt.Errorf("element segment %d declares %d entries in %d bytes", i, count, len(r.b)-r.pos)
		}
		if total += uint64(count); total > uint64(l.TableEntries) {
			return &LimitError{Limit: "TableEntries", Function: -1, Got: total, Max: uint64(l.TableEntries)}
		}
		for k := uint32(0); k < count; k++ {
			if flags&4 == 0 {
				_, err = r.u32()
			} else {
				err = skipConstExpr(r)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNames walks the name section: function names and local names, each map at most
// Functions (or, per function, Entries) long and within its subsection.
func checkNames(r *reader, l Limits) error {
	if err := r.name(); err != nil {
		return err
	}
	for r.pos < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		if r.pos+int(size) > len(r.b) || int(size) < 0 {
			return errShort
		}
		sr := &reader{b: r.b[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		if id != 1 && id != 2 {
			continue
		}
		n, err := sr.u32()
		if err != nil {
			return err
		}
		if n > l.Functions || int(n) > len(sr.b) {
			return fmt.Errorf("name section: %d names in %d bytes", n, len(sr.b))
		}
		for i := uint32(0); i < n; i++ {
			if _, err := sr.u32(); err != nil {
				return err
			}
			if id == 1 {
				if err := sr.name(); err != nil {
					return err
				}
				continue
			}
			m, err := sr.u32()
			if err != nil {
				return err
			}
			if m > l.Entries || int(m) > len(sr.b)-sr.pos {
				return fmt.Errorf("name section: %d local names in %d bytes", m, len(sr.b)-sr.pos)
			}
			for k := uint32(0); k < m; k++ {
				if _, err := sr.u32(); err != nil {
					return err
				}
				if err := sr.name(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

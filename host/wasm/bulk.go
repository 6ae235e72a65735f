package wasm

// Bulk memory and table instructions, charged by their length operand (see Instrument).

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

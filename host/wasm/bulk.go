package wasm

// Bulk memory and table instructions, charged by their length operand (see Instrument).

// bulkCode emits the charged forms of bulk instructions in one function, whose scratch
// local n (an i32 after the declared locals) holds a length operand.
type bulkCode struct {
	w *rewriter
	n []byte // encoded local index
	g []byte // encoded fuel global index
}

func (w *rewriter) bulkCode(local uint32) *bulkCode {
	return &bulkCode{w: w, n: appendU32(nil, local), g: appendU32(nil, w.fuel)}
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

// large emits memory.fill or memory.copy (op, as encoded) with its length decided at run time;
// the operands stay on the stack and enter the if as its parameters:
//
//	local.tee $n  local.get $n  i32.const BulkInline  i32.gt_u
//	if (type (i32 i32 i32) -> ())
//	      call $edgehost.memory_fill|copy
//	else  fuel -= n >> BulkShift  op
//	end
//
// The small path is not checked on the spot: n>>BulkShift is at most 1024 ticks, and the
// next loop head or function entry sees the spent fuel.
func (c *bulkCode) large(out []byte, sub uint32, op []byte) []byte {
	host := c.w.nImp + 1 // memory_fill
	if sub == 10 {
		host = c.w.nImp + 2 // memory_copy
	}
	out = append(append(out, 0x22), c.n...)
	out = append(append(out, 0x20), c.n...)
	out = append(append(out, 0x41), appendSLEB32(nil, BulkInline)...)
	out = append(out, 0x4b, 0x04)
	out = appendSLEB32(out, int32(c.w.bulkType))
	out = appendU32(append(out, 0x10), host)
	out = append(out, 0x05)
	out = append(append(out, 0x23), c.g...)
	out = append(append(out, 0x20), c.n...)
	out = append(out, 0x41, BulkShift, 0x76, 0x6b, 0x24)
	out = append(out, c.g...)
	out = append(out, op...)
	return append(out, 0x0b)
}

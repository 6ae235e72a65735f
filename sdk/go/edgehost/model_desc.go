package edgehost

import (
	"encoding/binary"
	"math"

	"github.com/edgehost/edgehost/abi"
)

// decodeDescs reads n tensor descriptors (ABI §5.4) from table; data and names are left
// empty (model_tensors writes neither).
func decodeDescs(table []byte, n int) []*Tensor {
	le := binary.LittleEndian
	out := make([]*Tensor, 0, n)
	for i := 0; i < n && (i+1)*abi.TensorDescSize <= len(table); i++ {
		d := table[i*abi.TensorDescSize:]
		nd := min(int(le.Uint32(d[abi.TensorOffNDims:])), abi.MaxDims)
		shape := make([]int, nd)
		for k := range shape {
			shape[k] = int(int32(le.Uint32(d[abi.TensorOffDims+4*k:])))
		}
		out = append(out, &Tensor{DType: abi.DType(le.Uint32(d[abi.TensorOffDType:])), Shape: shape,
			Scale: math.Float32frombits(le.Uint32(d[abi.TensorOffScale:])), ZeroPoint: int32(le.Uint32(d[abi.TensorOffZeroPoint:])),
			Data: make([]byte, 0, le.Uint32(d[abi.TensorOffBytes:]))})
	}
	return out
}

// aligned returns n zeroed bytes at an address that is a multiple of align (a power of
// two), inside a block the caller keeps alive; addr gives a slice's address.
func aligned(n, align int, addr func([]byte) uintptr) (view, block []byte) {
	block = make([]byte, n+align)
	off := (align - int(addr(block)%uintptr(align))) % align
	return block[off : off+n : off+n], block
}

// bufTable is run_model's table: {data, bytes} per tensor, inputs then outputs.
func bufTable(ts []*Tensor, addr func([]byte) uintptr) []uint32 {
	out := make([]uint32, 0, 2*len(ts))
	for _, t := range ts {
		out = append(out, uint32(addr(t.Data)), uint32(len(t.Data)))
	}
	return out
}

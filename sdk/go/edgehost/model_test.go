package edgehost

import (
	"encoding/binary"
	"math"
	"testing"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
)

// TestModelTables: descriptors as the host's model_tensors writes them decode to tensors of
// the right type, shape and size; buffers are 64-byte aligned; run_model's table lists
// {data, bytes} per tensor in order. (A plugin built with the SDK runs a real model in
// host/pipeline's TestSDKModelCalls.)
func TestModelTables(t *testing.T) {
	le := binary.LittleEndian
	table := make([]byte, 2*abi.TensorDescSize)
	put := func(i int, dt abi.DType, shape []int32, scale float32, zp int32, bytes uint32) {
		d := table[i*abi.TensorDescSize:]
		le.PutUint32(d[abi.TensorOffDType:], uint32(dt))
		le.PutUint32(d[abi.TensorOffNDims:], uint32(len(shape)))
		for k, v := range shape {
			le.PutUint32(d[abi.TensorOffDims+4*k:], uint32(v))
		}
		le.PutUint32(d[abi.TensorOffScale:], math.Float32bits(scale))
		le.PutUint32(d[abi.TensorOffZeroPoint:], uint32(zp))
		le.PutUint32(d[abi.TensorOffBytes:], bytes)
	}
	put(0, abi.UInt8, []int32{1, 224, 224, 3}, 0.0078125, 128, 150528)
	put(1, abi.Float32, []int32{1, 195}, 0, 0, 780)
	ts := decodeDescs(table, 2)
	if len(ts) != 2 || ts[0].DType != abi.UInt8 || len(ts[0].Shape) != 4 || ts[0].Shape[1] != 224 || cap(ts[0].Data) != 150528 ||
		ts[0].Scale != 0.0078125 || ts[0].ZeroPoint != 128 || ts[1].DType != abi.Float32 || cap(ts[1].Data) != 780 {
		t.Fatalf("decoded %+v %+v", ts[0], ts[1])
	}
	addr := func(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
	var keep [][]byte
	for _, tn := range ts {
		v, b := aligned(cap(tn.Data), abi.TensorAlign, addr)
		if addr(v)%abi.TensorAlign != 0 || len(v) != cap(tn.Data) {
			t.Fatalf("buffer at %#x, %d bytes", addr(v), len(v))
		}
		tn.Data = v
		keep = append(keep, b)
	}
	bt := bufTable(ts, addr)
	if len(bt) != 4 || bt[0] != uint32(addr(ts[0].Data)) || bt[1] != 150528 || bt[3] != 780 {
		t.Fatalf("table %v", bt)
	}
	_ = keep
}

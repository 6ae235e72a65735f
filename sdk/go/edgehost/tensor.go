package edgehost

import (
	"math"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
)

// Tensor is a typed view of one tensor. Data aliases the buffer TFLite reads (pre) or wrote
// (post): writing to it writes the model input in place. A Tensor is valid only during the
// call that received it.
type Tensor struct {
	Name      string
	DType     abi.DType
	Shape     []int
	Scale     float32 // 0 when not quantised
	ZeroPoint int32
	Data      []byte
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	if s := t.DType.Size(); s > 0 {
		return len(t.Data) / s
	}
	return 0
}

// Uint8 views the data as uint8 (DType UInt8).
func (t *Tensor) Uint8() []uint8 { return t.Data }

// Int8 views the data as int8 (DType Int8).
func (t *Tensor) Int8() []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(t.Data))), len(t.Data))
}

// Float32 views the data as float32 (DType Float32).
func (t *Tensor) Float32() []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.Data))), len(t.Data)/4)
}

// Int32 views the data as int32 (DType Int32).
func (t *Tensor) Int32() []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(t.Data))), len(t.Data)/4)
}

// Quantized reports whether the tensor has a quantisation scale.
func (t *Tensor) Quantized() bool { return t.Scale != 0 }

// Quantize maps a real value to the tensor's integer domain: round(v/scale) + zero_point,
// clamped to the dtype's range. Without a scale it just rounds and clamps.
func (t *Tensor) Quantize(v float32) int32 {
	q := float64(v)
	if t.Scale != 0 {
		q = q/float64(t.Scale) + float64(t.ZeroPoint)
	}
	q = math.Round(q)
	lo, hi := -128.0, 127.0
	if t.DType == abi.UInt8 {
		lo, hi = 0, 255
	}
	return int32(math.Max(lo, math.Min(hi, q)))
}

// Dequantize maps a stored integer to its real value: scale × (q − zero_point).
func (t *Tensor) Dequantize(q int32) float32 {
	if t.Scale == 0 {
		return float32(q)
	}
	return t.Scale * float32(q-t.ZeroPoint)
}

// Float returns element i as a real value, dequantising integer tensors.
func (t *Tensor) Float(i int) float32 {
	switch t.DType {
	case abi.Float32:
		return t.Float32()[i]
	case abi.UInt8:
		return t.Dequantize(int32(t.Data[i]))
	case abi.Int8:
		return t.Dequantize(int32(int8(t.Data[i])))
	case abi.Int32:
		return float32(t.Int32()[i])
	}
	return 0
}

// SetFloat stores the real value v at element i, quantising for integer tensors.
func (t *Tensor) SetFloat(i int, v float32) {
	switch t.DType {
	case abi.Float32:
		t.Float32()[i] = v
	case abi.UInt8:
		t.Data[i] = uint8(t.Quantize(v))
	case abi.Int8:
		t.Data[i] = byte(int8(t.Quantize(v)))
	case abi.Int32:
		t.Int32()[i] = int32(math.Round(float64(v)))
	}
}

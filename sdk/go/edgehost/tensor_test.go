package edgehost_test

import (
	"fmt"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/sdk/go/edgehost"
)

func TestQuantizeRoundTrip(t *testing.T) {
	u8 := &edgehost.Tensor{DType: abi.UInt8, Scale: 0.0078125, ZeroPoint: 128, Data: make([]byte, 4)}
	i8 := &edgehost.Tensor{DType: abi.Int8, Scale: 0.5, ZeroPoint: -1, Data: make([]byte, 4)}
	for _, c := range []struct {
		t    *edgehost.Tensor
		in   float32
		q    int32
		back float32
	}{
		{u8, 0, 128, 0},
		{u8, 1, 255, 0.9921875}, // 1/scale+128 = 256 clamps to 255
		{u8, -1, 0, -1},
		{u8, -5, 0, -1},                  // clamped at 0
		{u8, 0.00390625, 129, 0.0078125}, // half a step rounds away from zero, as TFLite does
		{i8, 3.2, 5, 3},                  // 3.2/0.5-1 = 5.4 → 5
		{i8, -100, -128, -63.5},          // clamped at -128
		{i8, 100, 127, 64},               // clamped at 127
	} {
		if q := c.t.Quantize(c.in); q != c.q {
			t.Errorf("%v Quantize(%v) = %d, want %d", c.t.DType, c.in, q, c.q)
		}
		c.t.SetFloat(0, c.in)
		if got := c.t.Float(0); got != c.back {
			t.Errorf("%v SetFloat(%v) then Float = %v, want %v", c.t.DType, c.in, got, c.back)
		}
	}
}

func TestTypedViews(t *testing.T) {
	f := &edgehost.Tensor{DType: abi.Float32, Shape: []int{2}, Data: make([]byte, 8)}
	f.SetFloat(1, 2.5)
	if f.Len() != 2 || f.Float32()[1] != 2.5 || f.Float(1) != 2.5 || f.Quantized() {
		t.Fatalf("float32 view: %v", f.Float32())
	}
	i := &edgehost.Tensor{DType: abi.Int32, Data: make([]byte, 8)}
	i.SetFloat(0, -7.6)
	if i.Int32()[0] != -8 || i.Len() != 2 {
		t.Fatalf("int32 view: %v", i.Int32())
	}
}

// A quantised uint8 output tensor, read back as real values.
func ExampleTensor_Float() {
	out := &edgehost.Tensor{Name: "scores", DType: abi.UInt8, Shape: []int{1, 3},
		Scale: 1.0 / 256, ZeroPoint: 0, Data: []byte{0, 128, 253}}
	for i := 0; i < out.Len(); i++ {
		fmt.Printf("%s[%d] = %.4f\n", out.Name, i, out.Float(i))
	}
	// Output:
	// scores[0] = 0.0000
	// scores[1] = 0.5000
	// scores[2] = 0.9883
}

// Filling a quantised int8 input tensor from real values.
func ExampleTensor_SetFloat() {
	in := &edgehost.Tensor{DType: abi.Int8, Shape: []int{1, 2}, Scale: 1.0 / 128, ZeroPoint: 0, Data: make([]byte, 2)}
	in.SetFloat(0, -1)
	in.SetFloat(1, 0.5)
	fmt.Println(in.Int8())
	// Output: [-128 64]
}

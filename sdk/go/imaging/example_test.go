package imaging_test

import (
	"fmt"
	"os"

	"github.com/edgehost/edgehost/sdk/go/imaging"
)

// A pre plugin keeps one Decoder and one Resizer for all its requests: their buffers are
// reused, so a steady stream of requests does not grow the sandbox's memory.
var (
	dec imaging.Decoder
	rs  imaging.Resizer
)

func Example() {
	body, err := os.ReadFile("testdata/420.jpg") // 160×120
	if err != nil {
		panic(err)
	}
	// The model input: [1, 32, 32, 3] float32, values in [-1, 1]. In a plugin this is
	// req.Tensors[0].Float32(), written in place.
	const h, w, c = 32, 32, 3
	input := make([]float32, h*w*c)

	// A JPEG is decoded in the DCT domain at the smallest of 1/1, 1/2, 1/4, 1/8 of its size
	// that is still at least 32×32: here 1/2 (1/4 would be 40×30).
	img, err := dec.Decode(body, w, h)
	if err != nil {
		panic(err)
	}
	fmt.Printf("decoded at %dx%d\n", img.W, img.H)
	half := [3]float32{127.5, 127.5, 127.5}
	if err := rs.Float32(input, w, h, c, img, half, half); err != nil {
		panic(err)
	}
	fmt.Println(len(input), "values, first in range:", input[0] >= -1 && input[0] <= 1)
	// Output:
	// decoded at 80x60
	// 3072 values, first in range: true
}

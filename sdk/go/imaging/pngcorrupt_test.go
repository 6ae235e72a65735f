package imaging

import (
	"bytes"
	"image/png"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPNGCorruptStreams: corrupted and truncated PNGs (CRCs fixed up) in IDAT chunks of 5
// and 7 bytes, Adam7 ones of several colour types and depths among them, give a FormatError
// or image/png's pixels, the same from DecodePNG and DecodeResize, and never hang or panic.
func TestPNGCorruptStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	seeds := [][]byte{}
	for _, name := range []string{"rgb.png", "rgba.png", "gray16.png", "palette-trns.png"} {
		seeds = append(seeds, rechunk(readTestdata(t, name), 7))
	}
	// Adam7 seeds of several kinds.
	for _, c := range [][3]int{{8, 6, 4}, {16, 6, 8}, {1, 0, 1}, {4, 3, 1}, {16, 0, 2}} {
		w, h := 37, 23
		bits := c[0] * [7]int{1, 0, 3, 1, 2, 0, 4}[c[1]]
		raw := make([]byte, h*((w*bits+7)/8))
		for i := range raw {
			raw[i] = byte(rng.IntN(256))
		}
		var plte []byte
		if c[1] == 3 {
			plte = make([]byte, 30)
		}
		seeds = append(seeds, rechunk(encodeAdam7(w, h, c[0], c[1], raw, plte, rng), 5))
	}
	for _, s := range seeds {
		if _, err := png.Decode(bytes.NewReader(s)); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	var d Decoder
	d.MaxPixels = 1 << 20
	var r Resizer
	dst := make([]byte, 20*20*3)
	n := 0
	iters := 4000
	if testing.Short() {
		iters = 400
	}
	for i := 0; i < iters; i++ {
		data := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for k := 1 + rng.IntN(3); k > 0; k-- {
			data[8+rng.IntN(len(data)-8)] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(5) == 0 {
			data = data[:8+rng.IntN(len(data)-8)]
		}
		data = withCRCs(data)
		done := make(chan bool)
		go func() {
			img, err := d.DecodePNG(data)
			_, _, err2 := d.DecodeResize(data, &r, Tensor{W: 20, H: 20, C: 3, Uint8: dst})
			if (err == nil) != (err2 == nil) {
				t.Errorf("DecodePNG %v, DecodeResize %v", err, err2)
			}
			if err == nil {
				n++
				if std, serr := png.Decode(bytes.NewReader(data)); serr == nil {
					ref := (&Decoder{}).FromImage(std)
					if !bytes.Equal(ref.Pix, img.Pix) {
						t.Errorf("differs from image/png")
					}
				}
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("hang")
		}
	}
	t.Logf("%d of %d decoded", n, iters)
}

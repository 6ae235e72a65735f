package plugin_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"image"
	"image/png"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// photoLike is a w×h RGBA image of gradients with a little noise: it compresses like a
// photograph (a 4032×3024 one to about 11 MB).
func photoLike(w, h int) *image.NRGBA {
	im := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := uint32(7)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r ^= r << 13
			r ^= r >> 17
			r ^= r << 5
			n := uint8(r & 7)
			i := im.PixOffset(x, y)
			im.Pix[i], im.Pix[i+1], im.Pix[i+2], im.Pix[i+3] = uint8(x/16+y/9)+n, uint8(y/12)+n, uint8((x+y)/20)+n, 255
		}
	}
	return im
}

// adam7PNG encodes im as an interlaced (Adam7) 8-bit RGBA PNG: image/png writes none.
func adam7PNG(t testing.TB, im *image.NRGBA) []byte {
	t.Helper()
	passes := [7][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	w, h := im.Rect.Dx(), im.Rect.Dy()
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	for _, p := range passes {
		for y := p[1]; y < h; y += p[3] {
			if p[0] >= w {
				break
			}
			row := []byte{1} // filter Sub
			var prev [4]byte
			for x := p[0]; x < w; x += p[2] {
				px := im.Pix[im.PixOffset(x, y):][:4]
				for c := 0; c < 4; c++ {
					row = append(row, px[c]-prev[c])
					prev[c] = px[c]
				}
			}
			zw.Write(row)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return testplugins.PNGFile(uint32(w), uint32(h), 8, 6, 1, z.Bytes(), 65536) // IDAT chunks of 64 KiB, as encoders write them
}

// TestImagePrePNGMemory: at the shipped budget of the classify pipeline's pre plugin
// (imagepre-c, 32 MiB), ordinary large PNGs decode, and the guest's memory (its high-water
// mark) stays far below the budget: the image is decoded row by row into the 224×224 input,
// never held. Issue 24: 2560×1440, 4032×3024 and an Adam7 1920×1280 failed with "png: out
// of memory" (decoding held the inflated rows and the RGB image: ~7 bytes a pixel).
func TestImagePrePNGMemory(t *testing.T) {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	const budget = 32 << 20
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(t, "imagepre-c"), MemoryLimit: budget, WantKind: abi.KindPre})
	if err != nil {
		t.Fatal(err)
	}
	encode := func(im image.Image) []byte {
		var b bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, im); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	cases := []struct {
		name string
		body []byte
	}{
		{"2560x1440", encode(photoLike(2560, 1440))},
		{"4032x3024 (12 Mpx)", encode(photoLike(4032, 3024))},
		{"1920x1280 Adam7", adam7PNG(t, photoLike(1920, 1280))},
	}
	for _, c := range cases {
		inst, err := m.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.Bind(ctx, []plugin.Tensor{{Name: "input", DType: abi.UInt8, Shape: []int{1, 224, 224, 3}, Bytes: 224 * 224 * 3}}); err != nil {
			t.Fatal(err)
		}
		before := inst.MemorySize()
		buf, err := inst.InputBuffer(ctx, uint32(len(c.body)))
		if err != nil {
			t.Fatal(err)
		}
		copy(buf, c.body)
		if err := inst.Pre(ctx, uint32(len(c.body))); err != nil {
			t.Errorf("%s (%d bytes): %v", c.name, len(c.body), err)
		}
		peak := inst.MemorySize()
		t.Logf("%s: body %.1f MB; guest memory %.1f MiB after binding, %.1f MiB at the peak (budget %d MiB)",
			c.name, float64(len(c.body))/1e6, float64(before)/(1<<20), float64(peak)/(1<<20), budget>>20)
		// The body plus a few MiB: nothing of the image's size but the body is held.
		if limit := uint32(len(c.body)) + 4<<20; peak-before > limit {
			t.Errorf("%s: the request took %.1f MiB of guest memory, want at most the body + 4 MiB (%.1f MiB)",
				c.name, float64(peak-before)/(1<<20), float64(limit)/(1<<20))
		}
		inst.Close(ctx)
	}
}

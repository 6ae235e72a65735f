package imaging

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

// slowRGB is what imagepre-go 1.0 did for any image: color.NRGBAModel per pixel (for
// *image.RGBA it took the stored bytes, which is what FromImage does too).
func slowRGB(img image.Image) []byte {
	b := img.Bounds()
	var out []byte
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if m, ok := img.(*image.RGBA); ok {
				c := m.RGBAAt(x, y)
				out = append(out, c.R, c.G, c.B)
				continue
			}
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out = append(out, c.R, c.G, c.B)
		}
	}
	return out
}

func TestPNGMatchesPerPixel(t *testing.T) {
	for _, name := range []string{"rgb.png", "rgba.png", "gray.png", "gray-alpha.png", "gray16.png", "palette.png", "palette-trns.png"} {
		data := readTestdata(t, name)
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var d Decoder
		got, err := d.DecodePNG(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Pix, slowRGB(img)) {
			t.Errorf("%s (%T): packed RGB differs from the per-pixel conversion", name, img)
		}
	}
}

func TestFromImageYCbCr(t *testing.T) {
	for _, name := range []string{"420.jpg", "422.jpg", "444.jpg"} {
		img := stdlibImage(t, readTestdata(t, name))
		var d Decoder
		if got := d.FromImage(img); !bytes.Equal(got.Pix, slowRGB(img)) {
			t.Errorf("%s: packed RGB differs from the per-pixel conversion", name)
		}
		// A sub-image starts at its own origin.
		sub := img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rect(3, 5, 50, 40))
		if got := d.FromImage(sub); !bytes.Equal(got.Pix, slowRGB(sub)) {
			t.Errorf("%s: sub-image differs", name)
		}
	}
}

func TestPNGBad(t *testing.T) {
	var d Decoder
	data := readTestdata(t, "rgb.png")
	if _, err := d.DecodePNG(data[:len(data)/2]); err == nil {
		t.Error("truncated PNG decoded")
	}
	d.MaxPixels = 100
	if _, err := d.DecodePNG(data); err == nil {
		t.Error("PNG over MaxPixels decoded")
	}
}

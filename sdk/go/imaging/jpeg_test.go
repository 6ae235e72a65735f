package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// baselineFiles are the testdata JPEGs this package decodes (made with Pillow: 4:2:0, 4:2:2,
// 4:4:4, grey, odd sizes, restart intervals, quality 100).
var baselineFiles = []string{"420.jpg", "422.jpg", "444.jpg", "gray.jpg", "odd420.jpg", "odd444.jpg",
	"oddgray.jpg", "restart.jpg", "oddrestart.jpg", "q100.jpg"}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bundled returns a file of the repository's fetched models, or skips.
func bundled(t testing.TB, name string) []byte {
	t.Helper()
	root := os.Getenv("EDGEHOST_ROOT")
	if root == "" {
		root = filepath.Join("..", "..", "..")
	}
	b, err := os.ReadFile(filepath.Join(root, ".deps", "models", name))
	if err != nil {
		t.Skipf("%s not fetched (make deps): %v", name, err)
	}
	return b
}

func stdlibImage(t testing.TB, data []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// stdlibRGB decodes with image/jpeg and packs the result.
func stdlibRGB(t testing.TB, data []byte) *RGB {
	t.Helper()
	var d Decoder
	out := *d.FromImage(stdlibImage(t, data))
	return &out
}

// compare returns the largest absolute difference and the PSNR of b against a.
func compare(t testing.TB, a, b *RGB) (int, float64) {
	t.Helper()
	if a.W != b.W || a.H != b.H {
		t.Fatalf("size %dx%d, want %dx%d", b.W, b.H, a.W, a.H)
	}
	maxd, sse := 0, 0.0
	for i := range a.Pix[:a.W*a.H*3] {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		maxd = max(maxd, d)
		sse += float64(d * d)
	}
	mse := sse / float64(a.W*a.H*3)
	if mse == 0 {
		return maxd, math.Inf(1)
	}
	return maxd, 10 * math.Log10(255*255/mse)
}

// boxDown averages f×f blocks of a full-size image (edge blocks over the pixels they have),
// to the size a 1/f scaled decode has.
func boxDown(a *RGB, f int) *RGB {
	w, h := (a.W+f-1)/f, (a.H+f-1)/f
	out := &RGB{W: w, H: h, Pix: make([]byte, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				sum, n := 0, 0
				for yy := y * f; yy < min(y*f+f, a.H); yy++ {
					for xx := x * f; xx < min(x*f+f, a.W); xx++ {
						sum += int(a.Pix[(yy*a.W+xx)*3+c])
						n++
					}
				}
				out.Pix[(y*w+x)*3+c] = byte((sum + n/2) / n)
			}
		}
	}
	return out
}

func TestJPEGFullMatchesStdlib(t *testing.T) {
	for _, name := range baselineFiles {
		data := readTestdata(t, name)
		var d Decoder
		got, err := d.DecodeJPEG(data, 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		maxd, psnr := compare(t, stdlibRGB(t, data), got)
		t.Logf("%s %dx%d: max diff %d, PSNR %.1f dB", name, got.W, got.H, maxd, psnr)
		if maxd > 8 || psnr < 40 {
			t.Errorf("%s: max diff %d, PSNR %.1f dB against image/jpeg; want <= 8 and > 40 dB", name, maxd, psnr)
		}
	}
}

func TestJPEGFullMatchesStdlibBundled(t *testing.T) {
	data := bundled(t, "ssd_example.jpg")
	var d Decoder
	got, err := d.DecodeJPEG(data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	maxd, psnr := compare(t, stdlibRGB(t, data), got)
	t.Logf("ssd_example.jpg %dx%d: max diff %d, PSNR %.1f dB", got.W, got.H, maxd, psnr)
	if maxd > 8 || psnr < 40 {
		t.Errorf("max diff %d, PSNR %.1f dB against image/jpeg; want <= 8 and > 40 dB", maxd, psnr)
	}
}

func testScaled(t *testing.T, name string, data []byte) {
	full := stdlibRGB(t, data)
	for _, f := range []int{2, 4, 8} {
		var d Decoder
		// Ask for exactly the 1/f size: the decoder must pick 1/f.
		w, h := (full.W+f-1)/f, (full.H+f-1)/f
		got, err := d.DecodeJPEG(data, w, h)
		if err != nil {
			t.Fatalf("%s 1/%d: %v", name, f, err)
		}
		_, psnr := compare(t, boxDown(full, f), got)
		t.Logf("%s 1/%d %dx%d: PSNR %.1f dB against a box-filtered full decode", name, f, got.W, got.H, psnr)
		if psnr < 30 {
			t.Errorf("%s 1/%d: PSNR %.1f dB, want > 30", name, f, psnr)
		}
	}
}

func TestJPEGScaled(t *testing.T) {
	for _, name := range baselineFiles {
		testScaled(t, name, readTestdata(t, name))
	}
}

func TestJPEGScaledBundled(t *testing.T) {
	testScaled(t, "ssd_example.jpg", bundled(t, "ssd_example.jpg"))
}

func TestJPEGScaleChoice(t *testing.T) {
	data := readTestdata(t, "420.jpg") // 160×120
	for _, c := range []struct{ minW, minH, w, h int }{
		{0, 0, 160, 120}, {160, 120, 160, 120}, {81, 10, 160, 120}, {80, 60, 80, 60},
		{80, 61, 160, 120}, {41, 30, 80, 60}, {40, 30, 40, 30}, {20, 15, 20, 15}, {1, 1, 20, 15},
	} {
		var d Decoder
		got, err := d.DecodeJPEG(data, c.minW, c.minH)
		if err != nil {
			t.Fatal(err)
		}
		if got.W != c.w || got.H != c.h {
			t.Errorf("at least %dx%d: got %dx%d, want %dx%d", c.minW, c.minH, got.W, got.H, c.w, c.h)
		}
	}
}

func TestJPEGUnsupported(t *testing.T) {
	base := readTestdata(t, "420.jpg")
	sof := bytes.Index(base, []byte{0xff, 0xc0})
	if sof < 0 {
		t.Fatal("no SOF0 in 420.jpg")
	}
	patch := func(i int, b byte) []byte {
		c := bytes.Clone(base)
		c[i] = b
		return c
	}
	for name, data := range map[string][]byte{
		"cmyk":                   readTestdata(t, "cmyk.jpg"),
		"progressive arithmetic": patch(sof+1, 0xca),
		"12-bit":                 patch(sof+4, 12),
		"arithmetic":             patch(sof+1, 0xc9),
		"lossless":               patch(sof+1, 0xc3),
	} {
		var d Decoder
		_, err := d.DecodeJPEG(data, 0, 0)
		var u UnsupportedError
		if !errors.As(err, &u) {
			t.Errorf("%s: got %v, want an UnsupportedError", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestJPEGCorrupt(t *testing.T) {
	for _, name := range baselineFiles {
		data := readTestdata(t, name)
		var d Decoder
		// Every truncation either decodes (a missing EOI is tolerated) or fails with a
		// FormatError; none panics.
		step := 1
		for n := 0; n < len(data); n += step {
			if n > 700 {
				step = 211 // headers byte by byte, the scan data sampled
			}
			for _, scale := range []int{0, 1000} {
				_, err := d.DecodeJPEG(data[:n], scale, scale)
				if err == nil && n < len(data)-2 {
					t.Errorf("%s truncated to %d bytes: no error", name, n)
				}
				var f FormatError
				if err != nil && !errors.As(err, &f) {
					t.Errorf("%s truncated to %d bytes: %v, want a FormatError", name, n, err)
				}
			}
		}
		// Flipped bytes: no panic, whatever the result.
		c := bytes.Clone(data)
		for i := 0; i < len(c); i += 7 {
			old := c[i]
			c[i] ^= 0x5a
			_, _ = d.DecodeJPEG(c, 0, 0)
			_, _ = d.DecodeJPEG(c, 10, 10)
			c[i] = old
		}
	}
}

func TestJPEGTooLarge(t *testing.T) {
	d := Decoder{MaxPixels: 160*120 - 1}
	_, err := d.DecodeJPEG(readTestdata(t, "420.jpg"), 0, 0)
	var f FormatError
	if !errors.As(err, &f) {
		t.Fatalf("got %v, want a FormatError", err)
	}
}

// A Decoder reused across calls allocates nothing in the steady state, and gives the same
// result as a fresh one.
func TestJPEGReuse(t *testing.T) {
	a, b := readTestdata(t, "444.jpg"), readTestdata(t, "oddgray.jpg")
	var d, fresh Decoder
	for _, data := range [][]byte{a, b, a} {
		got, err := d.DecodeJPEG(data, 40, 30)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := fresh.DecodeJPEG(data, 40, 30)
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Fatal("reused decoder differs from a fresh one")
		}
		fresh = Decoder{}
	}
	if n := testing.AllocsPerRun(10, func() { _, _ = d.DecodeJPEG(a, 40, 30) }); n != 0 {
		t.Errorf("%v allocations per steady-state decode, want 0", n)
	}
}

func TestDecodeFormat(t *testing.T) {
	var d Decoder
	if _, err := d.Decode([]byte("GIF89a...."), 0, 0); err != ErrFormat {
		t.Errorf("GIF: %v, want ErrFormat", err)
	}
	if _, err := d.Decode(nil, 0, 0); err != ErrFormat {
		t.Errorf("empty: %v, want ErrFormat", err)
	}
	if img, err := d.Decode(readTestdata(t, "420.jpg"), 80, 60); err != nil || img.W != 80 {
		t.Errorf("JPEG: %v", err)
	}
	if img, err := d.Decode(readTestdata(t, "rgb.png"), 80, 60); err != nil || img.W != 160 {
		t.Errorf("PNG: %v", err)
	}
}

func FuzzDecodeJPEG(f *testing.F) {
	for _, name := range append(baselineFiles, "progressive.jpg", "cmyk.jpg") {
		f.Add(readTestdata(f, name), 0)
		f.Add(readTestdata(f, name), 20)
	}
	var d Decoder
	d.MaxPixels = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte, scale int) {
		img, err := d.DecodeJPEG(data, scale, scale)
		if err != nil {
			var fe FormatError
			var ue UnsupportedError
			if !errors.As(err, &fe) && !errors.As(err, &ue) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
			t.Fatalf("inconsistent image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
		}
	})
}

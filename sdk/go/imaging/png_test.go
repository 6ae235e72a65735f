package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// pngImages: one image of every kind image/png encodes, with content that makes the encoder
// use every filter type (noise, gradients, flat areas), at every compression level (stored,
// fixed and dynamic Huffman blocks), in sizes from 1×1 to several IDAT chunks.
func pngImages(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := map[string][]byte{}
	for _, sz := range [][2]int{{1, 1}, {3, 2}, {37, 23}, {300, 211}} {
		w, h := sz[0], sz[1]
		val := func(x, y, c int) uint16 {
			switch (y / 7) % 3 {
			case 0:
				return uint16(rng.IntN(65536)) // noise
			case 1:
				return uint16((x*40 + y*13 + c*5000) * 7) // gradient
			}
			return uint16(c * 20000) // flat
		}
		imgs := map[string]image.Image{}
		g, g16 := image.NewGray(image.Rect(0, 0, w, h)), image.NewGray16(image.Rect(0, 0, w, h))
		rgba, nrgba := image.NewRGBA(image.Rect(0, 0, w, h)), image.NewNRGBA(image.Rect(0, 0, w, h))
		rgba64 := image.NewRGBA64(image.Rect(0, 0, w, h))
		pal := make(color.Palette, 200)
		for i := range pal {
			pal[i] = color.RGBA{uint8(i), uint8(255 - i), uint8(i * 7), 255}
		}
		pm := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, gg, b := val(x, y, 0), val(x, y, 1), val(x, y, 2)
				g.SetGray(x, y, color.Gray{uint8(r >> 8)})
				g16.SetGray16(x, y, color.Gray16{r})
				rgba.SetRGBA(x, y, color.RGBA{uint8(r >> 8), uint8(gg >> 8), uint8(b >> 8), 255})
				nrgba.SetNRGBA(x, y, color.NRGBA{uint8(r >> 8), uint8(gg >> 8), uint8(b >> 8), uint8(x * 9)})
				rgba64.SetRGBA64(x, y, color.RGBA64{r, gg, b, 0xffff})
				pm.SetColorIndex(x, y, uint8(int(r)%len(pal)))
			}
		}
		imgs["gray"], imgs["gray16"], imgs["rgb"], imgs["rgba"], imgs["rgb48"], imgs["palette"] = g, g16, rgba, nrgba, rgba64, pm
		for kind, img := range imgs {
			for _, level := range []png.CompressionLevel{png.NoCompression, png.BestSpeed, png.DefaultCompression, png.BestCompression} {
				var buf bytes.Buffer
				if err := (&png.Encoder{CompressionLevel: level}).Encode(&buf, img); err != nil {
					t.Fatal(err)
				}
				out[fmt.Sprintf("%s-%dx%d-level%d", kind, w, h, -int(level))] = buf.Bytes()
			}
		}
	}
	return out
}

// TestPNGOwnDecoder: the package's own decoder (not image/png) decodes every image above and
// the bundled ones to exactly the RGB of image/png's result.
func TestPNGOwnDecoder(t *testing.T) {
	files := pngImages(t)
	for _, name := range []string{"rgb.png", "rgba.png", "gray.png", "gray-alpha.png", "gray16.png", "palette.png"} {
		files[name] = readTestdata(t, name)
	}
	var d Decoder
	for name, data := range files {
		img, err := d.DecodePNG(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		std, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(img.Pix, slowRGB(std)) {
			t.Errorf("%s: RGB differs from image/png's", name)
		}
	}
}

// withCRCs returns data with every chunk's CRC recomputed, so that a corruption reaches the
// decoder's inflate and unfilter code instead of its CRC check.
func withCRCs(data []byte) []byte {
	data = bytes.Clone(data)
	for pos := 8; pos+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[pos:]))
		if n < 0 || n > len(data)-pos-12 {
			break
		}
		binary.BigEndian.PutUint32(data[pos+8+n:], crc32.ChecksumIEEE(data[pos+4:pos+8+n]))
		pos += 12 + n
	}
	return data
}

// TestPNGCorrupt: corrupted image data (CRCs fixed up) and truncations give a FormatError or
// the same pixels as image/png, never a panic or other pixels.
func TestPNGCorrupt(t *testing.T) {
	seeds := [][]byte{readTestdata(t, "rgb.png"), readTestdata(t, "palette.png")}
	for _, data := range pngImages(t) {
		if len(data) < 20000 {
			seeds = append(seeds, data)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var d Decoder
	d.MaxPixels = 1 << 20
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		data := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for k := 1 + rng.IntN(4); k > 0; k-- {
			data[33+rng.IntN(len(data)-33)] ^= byte(1 + rng.IntN(255)) // past the IHDR
		}
		if rng.IntN(4) == 0 {
			data = data[:33+rng.IntN(len(data)-33)]
		}
		checkPNG(t, &d, withCRCs(data))
	}
}

func checkPNG(t *testing.T, d *Decoder, data []byte) {
	t.Helper()
	img, err := d.DecodePNG(data)
	std, serr := image.Image(nil), error(FormatError("not decoded"))
	if cfg, cerr := png.DecodeConfig(bytes.NewReader(data)); cerr == nil && cfg.Width*cfg.Height <= d.maxPixels() {
		std, serr = png.Decode(bytes.NewReader(data)) // image/png has no size limit of its own
	}
	if err != nil {
		var fe FormatError
		if !errors.As(err, &fe) && !strings.HasPrefix(err.Error(), "png: ") {
			t.Fatalf("error of type %T: %v", err, err)
		}
		// A PNG image/png decodes must decode here too; the one known difference: a chunk
		// type with a digit, which the PNG specification does not allow.
		if serr == nil && err.Error() != "png: invalid chunk type" {
			t.Fatalf("refused a PNG image/png decodes: %v", err)
		}
		return
	}
	if serr == nil && !bytes.Equal(img.Pix, slowRGB(std)) {
		t.Fatalf("decoded to other pixels than image/png's")
	}
}

func FuzzDecodePNG(f *testing.F) {
	for _, name := range []string{"rgb.png", "rgba.png", "gray.png", "gray-alpha.png", "gray16.png", "palette.png", "palette-trns.png"} {
		f.Add(readTestdata(f, name))
	}
	var d Decoder
	d.MaxPixels = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		checkPNG(t, &d, withCRCs(data))
	})
}

// storedRGB is the colour image/png stored for each pixel, alpha dropped: for the
// non-premultiplied types the stored samples (the high byte of 16-bit ones), for the others
// (opaque) the colour. It differs from slowRGB where a pixel is fully transparent: there
// color.NRGBAModel gives black.
func storedRGB(img image.Image) []byte {
	b := img.Bounds()
	var out []byte
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			switch m := img.(type) {
			case *image.NRGBA64:
				c := m.NRGBA64At(x, y)
				out = append(out, byte(c.R>>8), byte(c.G>>8), byte(c.B>>8))
			case *image.NRGBA:
				c := m.NRGBAAt(x, y)
				out = append(out, c.R, c.G, c.B)
			case *image.RGBA:
				c := m.RGBAAt(x, y)
				out = append(out, c.R, c.G, c.B)
			case *image.Paletted: // with tRNS, the entries are color.NRGBA: as stored
				c := color.NRGBAModel.Convert(m.Palette[m.ColorIndexAt(x, y)]).(color.NRGBA)
				out = append(out, c.R, c.G, c.B)
			default:
				if _, _, _, a := img.At(x, y).RGBA(); a != 0xffff {
					panic(fmt.Sprintf("%T has a pixel with alpha %d", img, a))
				}
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out = append(out, c.R, c.G, c.B)
			}
		}
	}
	return out
}

// TestPNGSuiteKeepsTransparentColour: every valid PngSuite image (the x* files are corrupt)
// decodes to the colours image/png stored, alpha dropped. Issue 24: the 16-bit images with
// alpha or a transparent colour (basn4a16, basn6a16, and in Go's copy of the suite
// ftbbn2c16, ftbgn2c16, ftbwn0g16) came out black wherever a pixel was fully transparent.
func TestPNGSuiteKeepsTransparentColour(t *testing.T) {
	dir := filepath.Join(runtime.GOROOT(), "src", "image", "png", "testdata", "pngsuite")
	files, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(files) == 0 {
		t.Skipf("PngSuite not found in %s (%v)", dir, err)
	}
	var d Decoder
	transparent := map[string]int{}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "x") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		std, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: image/png: %v", name, err)
		}
		got, err := d.DecodePNG(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if want := storedRGB(std); !bytes.Equal(got.Pix, want) {
			t.Errorf("%s (%T): RGB differs from the colours image/png stored", name, std)
		}
		b := std.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if _, _, _, a := std.At(x, y).RGBA(); a == 0 {
					transparent[name]++
				}
			}
		}
	}
	// The images of the report have fully transparent pixels whose colour is not black.
	for _, name := range []string{"basn4a16.png", "basn6a16.png", "ftbbn2c16.png"} {
		if transparent[name] == 0 {
			t.Errorf("%s: no fully transparent pixel: the test proves nothing for it", name)
		}
	}
}

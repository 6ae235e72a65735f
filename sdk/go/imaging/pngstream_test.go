package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// reference is what DecodePNG and DecodeResize must give for data: image/png's decode,
// packed by FromImage (colours as stored, alpha dropped, 16-bit samples by their high byte).
func reference(t testing.TB, data []byte) *RGB {
	t.Helper()
	std, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image/png: %v", err)
	}
	img := (&Decoder{}).FromImage(std)
	return &RGB{W: img.W, H: img.H, Pix: bytes.Clone(img.Pix)}
}

// tensors are the outputs checkPNGStream resizes into: down and up, 3 and 1 channels,
// every element type.
var tensorShapes = []struct {
	w, h, c int
	kind    string
}{{7, 5, 3, "u8"}, {224, 224, 3, "u8"}, {33, 17, 1, "i8"}, {64, 48, 3, "f32"}, {300, 3, 1, "f32"}}

// checkPNGStream: DecodePNG gives ref exactly, and DecodeResize writes exactly the tensors
// the Resizer writes from ref.
func checkPNGStream(t *testing.T, d *Decoder, name string, data []byte, ref *RGB) {
	t.Helper()
	got, err := d.DecodePNG(data)
	if err != nil {
		t.Errorf("%s: DecodePNG: %v", name, err)
		return
	}
	if got.W != ref.W || got.H != ref.H || !bytes.Equal(got.Pix, ref.Pix) {
		t.Errorf("%s: DecodePNG differs from image/png's pixels", name)
		return
	}
	var r, rr Resizer
	for _, s := range tensorShapes {
		n := s.w * s.h * s.c
		var want, have Tensor
		want = Tensor{W: s.w, H: s.h, C: s.c, Mean: [3]float32{127.5, 120, 110}, Std: [3]float32{127.5, 60, 70}}
		have = want
		switch s.kind {
		case "u8":
			want.Uint8, have.Uint8 = make([]byte, n), make([]byte, n)
		case "i8":
			want.Int8, have.Int8 = make([]byte, n), make([]byte, n)
		default:
			want.Float32, have.Float32 = make([]float32, n), make([]float32, n)
		}
		if err := rr.Resize(want, ref); err != nil {
			t.Fatal(err)
		}
		w, h, err := d.DecodeResize(data, &r, have)
		if err != nil || w != ref.W || h != ref.H {
			t.Errorf("%s: DecodeResize to %dx%dx%d: %dx%d, %v", name, s.w, s.h, s.c, w, h, err)
			continue
		}
		same := bytes.Equal(want.Uint8, have.Uint8) && bytes.Equal(want.Int8, have.Int8)
		for i := range want.Float32 {
			same = same && want.Float32[i] == have.Float32[i]
		}
		if !same {
			t.Errorf("%s: DecodeResize to %dx%dx%d %s differs from resizing image/png's pixels", name, s.w, s.h, s.c, s.kind)
		}
	}
}

// TestPNGSuiteStreams: every valid PngSuite image (all colour types and bit depths, Adam7
// and not, transparency of every kind) decodes to exactly image/png's pixels, whole and
// resized row by row.
func TestPNGSuiteStreams(t *testing.T) {
	dir := filepath.Join(runtime.GOROOT(), "src", "image", "png", "testdata", "pngsuite")
	files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(files) == 0 {
		t.Skipf("PngSuite not found in %s", dir)
	}
	var d Decoder
	n := 0
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "x") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkPNGStream(t, &d, name, data, reference(t, data))
		n++
	}
	t.Logf("%d PngSuite images", n)
}

// rechunk splits a PNG's image data into IDAT chunks of n bytes.
func rechunk(data []byte, n int) []byte {
	var idat, out []byte
	out = append(out, data[:8]...)
	chunk := func(typ string, body []byte) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
		start := len(out)
		out = append(append(out, typ...), body...)
		out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
	}
	for pos := 8; pos+12 <= len(data); {
		l := int(binary.BigEndian.Uint32(data[pos:]))
		typ, body := string(data[pos+4:pos+8]), data[pos+8:pos+8+l]
		pos += 12 + l
		switch typ {
		case "IDAT":
			idat = append(idat, body...)
			continue
		case "IEND":
			for len(idat) > 0 {
				k := min(n, len(idat))
				chunk("IDAT", idat[:k])
				idat = idat[k:]
			}
		}
		chunk(typ, body)
	}
	return out
}

// encodeAdam7 encodes the rows of an image (raw: h rows of rb bytes, bpp bytes a pixel, bits per
// pixel) as an interlaced PNG, the filter type of each row chosen at random: image/png
// writes no interlaced PNGs.
func encodeAdam7(w, h, depth, ctype int, raw []byte, plte []byte, rng *rand.Rand) []byte {
	bits := depth * [7]int{1, 0, 3, 1, 2, 0, 4}[ctype]
	bpp := max(1, bits/8)
	rb := (w*bits + 7) / 8
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	for _, a := range adam7 {
		pw := (w - a[0] + a[2] - 1) / a[2]
		if pw <= 0 {
			continue
		}
		prb := (pw*bits + 7) / 8
		var prev []byte
		for y := a[1]; y < h; y += a[3] {
			// The pass row: the pixels' bits packed.
			row := make([]byte, prb)
			for i := 0; i < pw; i++ {
				x := a[0] + i*a[2]
				for b := 0; b < bits; b++ {
					sb := x*bits + b
					if raw[y*rb+sb/8]>>(7-sb%8)&1 != 0 {
						db := i*bits + b
						row[db/8] |= 1 << (7 - db%8)
					}
				}
			}
			ft := byte(rng.IntN(5))
			out := []byte{ft}
			for i := range row {
				var a, b, c int
				if i >= bpp {
					a = int(row[i-bpp])
				}
				if prev != nil {
					b = int(prev[i])
					if i >= bpp {
						c = int(prev[i-bpp])
					}
				}
				var p int
				switch ft {
				case 1:
					p = a
				case 2:
					p = b
				case 3:
					p = (a + b) / 2
				case 4:
					p = paethPredict(a, b, c)
				}
				out = append(out, row[i]-byte(p))
			}
			zw.Write(out)
			prev = row
		}
	}
	zw.Close()
	var out bytes.Buffer
	out.Write(pngSignature)
	chunk := func(typ string, body []byte) {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(append(b, typ...), body...)
		b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
		out.Write(b)
	}
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9], ihdr[12] = byte(depth), byte(ctype), 1
	chunk("IHDR", ihdr[:])
	if plte != nil {
		chunk("PLTE", plte)
	}
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return out.Bytes()
}

// TestPNGBigStreams: images larger than the inflate window many times over, of every kind
// image/png writes (8- and 16-bit, with and without alpha, grey, palettes of 1, 2, 4 and 8
// bits), stored and compressed (stored blocks larger than the window included), with
// IDAT chunks of image/png's size and of 1 and 7 bytes, and Adam7 images of every colour
// type and depth with random filters: the same pixels as image/png, whole and resized.
func TestPNGBigStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w, h := 1201, 607
	if testing.Short() {
		w, h = 401, 203
	}
	val := func(x, y, c int) uint16 {
		switch (y / 50) % 3 {
		case 0:
			return uint16(rng.IntN(65536))
		case 1:
			return uint16((x*40 + y*13 + c*5000) * 7)
		}
		return uint16(c * 20000)
	}
	r := image.Rect(0, 0, w, h)
	nrgba64, nrgba, g16, g := image.NewNRGBA64(r), image.NewNRGBA(r), image.NewGray16(r), image.NewGray(r)
	pals := map[int]*image.Paletted{}
	for _, n := range []int{2, 4, 16, 200} {
		pal := make(color.Palette, n)
		for i := range pal {
			pal[i] = color.NRGBA{uint8(i * 37), uint8(255 - i), uint8(i * 7), uint8(i * 50)}
		}
		pals[n] = image.NewPaletted(r, pal)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := [4]uint16{val(x, y, 0), val(x, y, 1), val(x, y, 2), uint16(x*y) * 97}
			if x%5 == 0 {
				c[3] = 0 // fully transparent: the colour must stay
			}
			nrgba64.SetNRGBA64(x, y, color.NRGBA64{c[0], c[1], c[2], c[3]})
			nrgba.SetNRGBA(x, y, color.NRGBA{uint8(c[0] >> 8), uint8(c[1] >> 8), uint8(c[2] >> 8), uint8(c[3] >> 8)})
			g16.SetGray16(x, y, color.Gray16{c[0]})
			g.SetGray(x, y, color.Gray{uint8(c[1] >> 8)})
			for n, p := range pals {
				p.SetColorIndex(x, y, uint8(int(c[0])%n))
			}
		}
	}
	images := map[string]image.Image{"nrgba64": nrgba64, "nrgba": nrgba, "gray16": g16, "gray": g}
	for n, p := range pals {
		images[fmt.Sprintf("palette%d", n)] = p
	}
	var d Decoder
	for kind, img := range images {
		for _, level := range []png.CompressionLevel{png.NoCompression, png.BestSpeed, png.DefaultCompression} {
			if level == png.DefaultCompression && (testing.Short() || kind != "nrgba64" && kind != "palette200") {
				continue // the slowest to encode: two kinds are enough
			}
			var buf bytes.Buffer
			if err := (&png.Encoder{CompressionLevel: level}).Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			ref := reference(t, data)
			name := fmt.Sprintf("%s %dx%d level %d", kind, w, h, level)
			checkPNGStream(t, &d, name, data, ref)
			if level == png.BestSpeed {
				for _, n := range []int{1, 7} {
					if got, err := d.DecodePNG(rechunk(data, n)); err != nil || !bytes.Equal(got.Pix, ref.Pix) {
						t.Errorf("%s in IDAT chunks of %d bytes: %v", name, n, err)
					}
				}
			}
		}
	}
	// Adam7, from the raw rows of non-interlaced encodings.
	for _, c := range []struct {
		kind         string
		depth, ctype int
	}{{"nrgba64", 16, 6}, {"nrgba", 8, 6}, {"gray16", 16, 0}, {"gray", 8, 0}, {"palette2", 1, 3}, {"palette4", 2, 3}, {"palette16", 4, 3}, {"palette200", 8, 3}} {
		var buf bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, images[c.kind]); err != nil {
			t.Fatal(err)
		}
		raw, plte := rawRows(t, buf.Bytes())
		data := encodeAdam7(w, h, c.depth, c.ctype, raw, plte, rng)
		checkPNGStream(t, &d, fmt.Sprintf("Adam7 %s %dx%d", c.kind, w, h), data, reference(t, data))
	}
}

// rawRows returns the unfiltered rows (filter bytes removed) and the PLTE of a
// non-interlaced PNG, decoded by compress/zlib and this package's unfilter.
func rawRows(t *testing.T, data []byte) (raw, plte []byte) {
	var idat []byte
	var w, h, bits int
	for pos := 8; pos+12 <= len(data); {
		l := int(binary.BigEndian.Uint32(data[pos:]))
		typ, body := string(data[pos+4:pos+8]), data[pos+8:pos+8+l]
		pos += 12 + l
		switch typ {
		case "IHDR":
			w, h = int(binary.BigEndian.Uint32(body)), int(binary.BigEndian.Uint32(body[4:]))
			bits = int(body[8]) * [7]int{1, 0, 3, 1, 2, 0, 4}[body[9]]
		case "PLTE":
			plte = body
		case "IDAT":
			idat = append(idat, body...)
		}
	}
	zr, err := zlib.NewReader(bytes.NewReader(idat))
	if err != nil {
		t.Fatal(err)
	}
	rb := (w*bits + 7) / 8
	var prev []byte
	for y := 0; y < h; y++ {
		line := make([]byte, 1+rb)
		if _, err := io.ReadFull(zr, line); err != nil {
			t.Fatal(err)
		}
		if !unfilter(line[1:], prev, max(1, bits/8), line[0]) {
			t.Fatal("bad filter")
		}
		prev = line[1:]
		raw = append(raw, prev...)
	}
	return raw, plte
}

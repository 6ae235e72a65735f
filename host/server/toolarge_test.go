package server_test

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// zeroPNG is a w×h PNG (bit depth, colour type) of rows of zeros, rowBytes bytes each: a
// tiny body for an image of any size.
func zeroPNG(t testing.TB, w, h uint32, depth, ctype byte, rowBytes int) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	row := make([]byte, 1+rowBytes)
	for y := uint32(0); y < h; y++ {
		zw.Write(row)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return testplugins.PNGFile(w, h, depth, ctype, 0, z.Bytes(), 0)
}

// TestImageOverPluginMemory: an image whose decoding needs more than the pre plugin's
// memory budget is answered 413 too_large, naming the budget (the shipped classify
// pipeline's imagepre-c has 32 MiB), never 500; the same instance then classifies peacock.png.
// Issue 24: such images got 500 plugin_error "png: out of memory". (imagepre-c decodes PNG
// row by row, so only an image whose rows are huge is too large for it.)
func TestImageOverPluginMemory(t *testing.T) {
	url := shipped(t)
	cases := []struct {
		name string
		body []byte
	}{
		// One row of 8-bit RGBA is 32 MiB: no decoder fits it in 32 MiB.
		{"8388608x1 RGBA", zeroPNG(t, 8<<20, 1, 8, 6, 32<<20)},
		// Rows of 16 MB (16-bit RGBA): decoding row by row holds three of them.
		{"2000000x8 RGBA 16-bit", zeroPNG(t, 2000000, 8, 16, 6, 16000000)},
	}
	for _, c := range cases {
		code, _, b := post(t, url+"/v1/pipelines/classify", "image/png", c.body, nil)
		var e errResp
		if json.Unmarshal(b, &e) != nil || code != 413 || e.Class != "too_large" ||
			!strings.Contains(e.Error, "memory budget of 32 MiB") {
			t.Errorf("%s (%d bytes): got %d %s, want 413 too_large naming the 32 MiB budget", c.name, len(c.body), code, b)
		}
		if code, _, b := post(t, url+"/v1/pipelines/classify", "image/png", peacock(t), nil); code != 200 || top1(t, b) != "peacock" {
			t.Fatalf("after %s: %d %s", c.name, code, b)
		}
	}
}

// progressiveDCOnly is a valid w×h 3-component progressive JPEG holding only its first
// scan (the DC coefficients, all zero: a grey image): a tiny body for which image/jpeg
// allocates the whole image and every block's coefficients (a 4032×3024 one: about 180 MB).
func progressiveDCOnly(w, h int) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xd8})
	b.Write([]byte{0xff, 0xdb, 0x00, 0x43, 0x00}) // DQT: table 0, all ones
	b.Write(bytes.Repeat([]byte{1}, 64))
	b.Write([]byte{0xff, 0xc2, 0x00, 0x11, 0x08, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 0x03,
		0x01, 0x11, 0x00, 0x02, 0x11, 0x00, 0x03, 0x11, 0x00}) // SOF2, 4:4:4
	b.Write([]byte{0xff, 0xc4, 0x00, 0x14, 0x00, 0x01}) // DHT: DC table 0, one 1-bit code...
	b.Write(make([]byte, 15))
	b.WriteByte(0x00)                                                                                   // ...for category 0
	b.Write([]byte{0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00}) // SOS: DC first scan
	blocks := ((w + 7) / 8) * ((h + 7) / 8) * 3
	b.Write(make([]byte, (blocks+7)/8)) // one 0 bit per block: DC difference 0
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// noisyRGBAPNG is a w×h RGBA PNG of a gradient with a little noise (about as compressible as
// a photograph).
func noisyRGBAPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	im := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := uint32(7)
	for i := 0; i < len(im.Pix); i += 4 {
		r ^= r << 13
		r ^= r >> 17
		r ^= r << 5
		x, y, n := (i/4)%w, (i/4)/w, uint8(r&7)
		im.Pix[i], im.Pix[i+1], im.Pix[i+2], im.Pix[i+3] = uint8(x/16+y/9)+n, uint8(y/12)+n, uint8((x+y)/20)+n, 255
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, im); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGoPluginTooLargeAndUnsupported: the Go SDK's pre plugin (classify-go, default 64 MiB
// budget) classifies a 4032×3024 PNG and a 12 Mpx progressive JPEG (decoded row by row and
// at 1/8 scale: they once ran it out of memory); answers a PNG whose one row does not fit
// the budget with 413 too_large naming the budget (the guest runs out of memory and traps;
// the host reads the runtime's out-of-memory message), not 500 plugin_trap; and an
// arithmetic-coded JPEG with 415 naming the feature, not 400 "unknown marker". After each,
// the pipeline classifies peacock.png. Issue 24.
func TestGoPluginTooLargeAndUnsupported(t *testing.T) {
	url := shipped(t)
	jpg, err := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	arith := bytes.Clone(jpg)
	sof := bytes.Index(arith, []byte{0xff, 0xc0})
	if sof < 0 {
		t.Fatal("ssd_example.jpg: no SOF0")
	}
	arith[sof+1] = 0xc9 // SOF9: extended sequential, arithmetic coding
	cases := []struct {
		name, class, want string
		code              int
		body              []byte
	}{
		{"4032x3024 PNG", "", "", 200, noisyRGBAPNG(t, 4032, 3024)},
		{"4032x3024 progressive JPEG", "", "", 200, progressiveDCOnly(4032, 3024)},
		// One row of 8-bit RGBA is 32 MiB: decoding row by row holds it twice.
		{"8388608x1 RGBA PNG", "too_large", "memory budget of 64 MiB", 413, zeroPNG(t, 8<<20, 1, 8, 6, 32<<20)},
		{"arithmetic-coded JPEG", "unsupported", "arithmetic-coded JPEG", 415, arith},
	}
	for _, c := range cases {
		code, _, b := post(t, url+"/v1/pipelines/classify-go", "", c.body, nil)
		var e errResp
		if c.code == 200 {
			if code != 200 {
				t.Errorf("%s (%d bytes): got %d %.400s, want 200", c.name, len(c.body), code, b)
			}
		} else if json.Unmarshal(b, &e) != nil || code != c.code || e.Class != c.class || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s (%d bytes): got %d %.400s, want %d %s naming %q", c.name, len(c.body), code, b, c.code, c.class, c.want)
		}
		if code, _, b := post(t, url+"/v1/pipelines/classify-go", "image/png", peacock(t), nil); code != 200 || top1(t, b) != "peacock" {
			t.Fatalf("after %s: %d %s", c.name, code, b)
		}
	}
}

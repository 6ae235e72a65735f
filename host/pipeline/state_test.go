package pipeline_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
)

// noisyPNG is a w×h RGBA PNG of a gradient with noise in every sample: it compresses
// little, so its body is large (4032×3024: about 16 MB).
func noisyPNG(t testing.TB, w, h int) []byte { return gradientPNG(t, w, h, 15) }

// gradientPNG is a w×h RGBA PNG of a gradient with noise of up to noise in every sample.
func gradientPNG(t testing.TB, w, h int, noise uint32) []byte {
	t.Helper()
	im := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := uint32(1)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r ^= r << 13
			r ^= r >> 17
			r ^= r << 5
			n := uint8(r & noise)
			i := im.PixOffset(x, y)
			im.Pix[i], im.Pix[i+1], im.Pix[i+2], im.Pix[i+3] = uint8(x*7+y)+n, uint8(y*3)+n, uint8((x^y)*5)+n, 255
		}
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, im); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rawPNG is a PNG of the given header fields whose image data is rows of zeros (each with
// filter byte 0), compressed by compress/zlib at level.
func rawPNG(t testing.TB, w, h uint32, depth, ctype byte, rowBytes int, level int) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, level)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]byte, 1+rowBytes)
	for y := uint32(0); y < h; y++ {
		zw.Write(row)
	}
	zw.Close()
	return testplugins.PNGFile(w, h, depth, ctype, 0, z.Bytes(), 0)
}

// corruptIDAT returns png with one byte flipped in the image data of its IDAT chunk number
// k (counting from 0), the chunk's CRC recomputed: decoding fails where the inflater meets it.
func corruptIDAT(png []byte, k int) []byte {
	b := bytes.Clone(png)
	for pos, n := 8, 0; pos+12 <= len(b); {
		clen := int(binary.BigEndian.Uint32(b[pos:]))
		if string(b[pos+4:pos+8]) == "IDAT" {
			if n == k {
				b[pos+8+clen/2] ^= 0x5a
				binary.BigEndian.PutUint32(b[pos+8+clen:], crc32.ChecksumIEEE(b[pos+4:pos+8+clen]))
				return b
			}
			n++
		}
		pos += 12 + clen
	}
	return b
}

// answer is what a request got: the result, or the error's text. Of a trap's text, only what
// precedes the wasm error: its stack trace and the guest's last output depend on where the
// guest's runtime happened to run out.
func answer(p *pipeline.Pipeline, in []byte) (string, bool) {
	out, err := runErr(p, in)
	if err != nil {
		msg := err.Error()
		if k := strings.Index(msg, " trapped: "); k >= 0 {
			msg = msg[:k] + " trapped"
		}
		return "error: " + msg, false
	}
	return out, true
}

// stateInput is one request of the interleaving.
type stateInput struct {
	name string
	in   []byte
}

// checkNoState runs inputs on fresh instances of the pre plugin (at budget bytes), then twice
// in turn on ONE instance, and compares each answer with the fresh one.
func checkNoState(t *testing.T, pre string, budget uint64, inputs []stateInput) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	post := f.load(t, "classify-c", "post", map[string]any{"labels": labels(t, models+"mobilenet_labels.txt")})
	newPipe := func() *pipeline.Pipeline {
		t.Helper()
		m, err := f.rt.Load(context.Background(), plugin.Config{Path: wasm(t, pre), MemoryLimit: budget, WantKind: "pre", Timeout: workBudget})
		if err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(context.Background(), pipeline.Spec{Name: "state", Model: f.model, Workers: 1, Pre: m, Post: post}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(context.Background()) })
		return p
	}
	fresh := make([]string, len(inputs))
	var oks, fails int
	for i, in := range inputs {
		p := newPipe()
		var ok bool
		fresh[i], ok = answer(p, in.in)
		p.Close(context.Background())
		t.Logf("%s (%d bytes), fresh: %.200s", in.name, len(in.in), fresh[i])
		if ok {
			oks++
		} else {
			fails++
		}
	}
	if oks < 3 || fails < 3 {
		t.Fatalf("the inputs must mix successes and failures: %d succeed and %d fail on fresh instances", oks, fails)
	}
	one := newPipe()
	for round := 0; round < 2; round++ {
		for i, in := range inputs {
			got, _ := answer(one, in.in)
			if got != fresh[i] {
				t.Errorf("round %d, %s (%d bytes): on the used instance\n  %.300s\nfresh instance:\n  %.300s", round, in.name, len(in.in), got, fresh[i])
			}
		}
	}
	t.Logf("%s: %d inputs, %d succeed and %d fail on a fresh instance; the same on one instance, twice", pre, len(inputs), oks, fails)
}

// TestNoStateBetweenRequests: on ONE pre instance (one worker), requests that fail (too large
// for the memory budget, malformed after most of their decoding, unsupported) and requests
// that succeed, interleaved, each get exactly the answer a fresh instance gives them.
// Issue 24: after one PNG failed with out of memory in imagepre-c at the shipped 32 MiB
// budget, the next PNGs on that instance failed too, some of which a fresh instance decodes:
// the host kept the largest request body's buffer for the instance's life, and Zig's libc
// malloc kept freed blocks in per-size lists that later requests of other sizes could not use.
func TestNoStateBetweenRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a fresh pipeline per input")
	}
	peacock, err := os.ReadFile(models + "peacock.png")
	if err != nil {
		t.Fatal(err)
	}
	jpeg, err := os.ReadFile(models + "ssd_example.jpg")
	if err != nil {
		t.Fatal(err)
	}
	// A PNG whose one row (8-bit RGBA) is 32 MiB: over the budget however it is decoded.
	wide := rawPNG(t, 8<<20, 1, 8, 6, 32<<20, zlib.BestCompression)
	huge := noisyPNG(t, 4032, 3024) // an 18 MB body
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	// Progressive and YCCK JPEGs (imagepre-c's fixtures): their coefficients are held
	// between scans and freed after; a truncated one fails half-way through its scans.
	fixture := func(name string) []byte {
		b, err := os.ReadFile(root + "plugins/examples/imagepre-c/test/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	prog, progS, ycck := fixture("big-p.jpg"), fixture("s420-s.jpg"), fixture("ycck-p.jpg")
	t.Run("imagepre-c", func(t *testing.T) {
		checkNoState(t, "imagepre-c", 32<<20, []stateInput{
			{"1000x800", noisyPNG(t, 1000, 800)},
			{"4032x3024 (18 MB body)", huge},
			{"4032x3024, corrupt near its end", corruptIDAT(huge, 500)},
			{"peacock.png", peacock},
			{"1500x1000", noisyPNG(t, 1500, 1000)},
			{"truncated", huge[:len(huge)/3]},
			{"1700x1000", noisyPNG(t, 1700, 1000)},
			{"8388608x1", wide},
			{"2000000x8 RGBA 16-bit", rawPNG(t, 2000000, 8, 16, 6, 16000000, zlib.BestCompression)},
			{"2000x1500", noisyPNG(t, 2000, 1500)},
			{"GIF", gif},
			{"ssd_example.jpg", jpeg},
			{"progressive 400x264", prog},
			{"progressive, truncated", progS[:len(progS)*2/3]},
			{"progressive YCCK", ycck},
			{"1400x1000", noisyPNG(t, 1400, 1000)},
			{"progressive 171x115, custom scans", progS},
			{"2000x1250, smooth", gradientPNG(t, 2000, 1250, 0)},
			{"4032x3024 again", huge},
			{"2560x1440", noisyPNG(t, 2560, 1440)},
		})
	})
	// The Go SDK's plugin at its default 64 MiB: it kept its decoder's buffers, sized by the
	// largest image so far, for the instance's life; an image that does not fit (now only one
	// whose single row does not, since a PNG is decoded row by row) makes the guest run out
	// of memory and trap (the instance is replaced; 413 too_large).
	t.Run("imagepre-go", func(t *testing.T) {
		checkNoState(t, "imagepre-go", 64<<20, []stateInput{
			{"1500x1000", noisyPNG(t, 1500, 1000)},
			{"peacock.png", peacock},
			{"2000x1500", noisyPNG(t, 2000, 1500)},
			{"truncated", huge[:len(huge)/3]},
			{"4032x3024 (18 MB body)", huge},
			{"8388608x1 (out of memory)", wide},
			{"2300x1400", noisyPNG(t, 2300, 1400)},
			{"4032x3024, corrupt near its end", corruptIDAT(huge, 500)},
			{"GIF", gif},
			{"ssd_example.jpg", jpeg},
			{"progressive 400x264", prog},
			{"progressive, truncated", progS[:len(progS)*2/3]},
			{"2000x1250, smooth", gradientPNG(t, 2000, 1250, 0)},
			{"2300x1400 again", noisyPNG(t, 2300, 1400)},
		})
	})
}

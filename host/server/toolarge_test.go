package server_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"
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
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, body []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(body)))
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(body)
		b.WriteString(typ)
		b.Write(body)
		binary.Write(&b, binary.BigEndian, c.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = depth, ctype
	chunk("IHDR", ihdr)
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return b.Bytes()
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

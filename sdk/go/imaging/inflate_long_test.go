package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/adler32"
	"hash/crc32"
	"image/png"
	"io"
	"testing"
)

// deflateWriter writes a deflate stream bit by bit (RFC 1951), for streams no encoder at hand
// makes: chosen code lengths, long codes next to short ones.
type deflateWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *deflateWriter) bits(v uint64, n uint) { // LSB first
	for i := uint(0); i < n; i++ {
		w.acc |= (v >> i & 1) << w.nacc
		w.nacc++
		if w.nacc == 8 {
			w.out = append(w.out, byte(w.acc))
			w.acc, w.nacc = 0, 0
		}
	}
}

func (w *deflateWriter) flush() []byte {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc, w.nacc = 0, 0
	}
	return w.out
}

// canonical returns the codes of the code lengths lens (RFC 1951 §3.2.2).
func canonical(lens []uint8) []uint32 {
	var count [16]int
	for _, l := range lens {
		if l > 0 {
			count[l]++
		}
	}
	var next [16]uint32
	code := uint32(0)
	for l := 1; l < 16; l++ {
		code = (code + uint32(count[l-1])) << 1
		next[l] = code
	}
	codes := make([]uint32, len(lens))
	for s, l := range lens {
		if l > 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

func (w *deflateWriter) code(codes []uint32, lens []uint8, sym int) { // MSB of the code first
	c, l := codes[sym], uint(lens[sym])
	if l == 0 {
		panic("symbol without a code")
	}
	for i := int(l) - 1; i >= 0; i-- {
		w.bits(uint64(c>>uint(i)&1), 1)
	}
}

// longCodePNG is a valid 8-bit greyscale PNG (all black, w×h) whose one dynamic block uses
// 11-bit codes for literal 0 and 15-bit codes for length symbol 284 and distance symbol 29,
// and has, after two literals, a match of length symbol 284 (5 extra bits) at distance
// symbol 29 (13 extra bits): 2×11 + 15+5+15+13 = 70 bits between two refills of a 64-bit
// bit buffer.
func longCodePNG(t testing.TB, w, h int) []byte {
	total := h * (1 + w)
	if total < 30000 {
		t.Fatal("image too small for distance 24577")
	}
	lit := make([]uint8, 286)
	lit[285], lit[256] = 1, 2 // length 258; end of block
	for s, l := range []uint8{3, 4, 5, 6, 7, 8, 9, 10} {
		lit[1+s] = l
	}
	lit[0] = 11
	lit[9], lit[10], lit[11], lit[12] = 12, 13, 14, 15
	lit[284] = 15
	dist := make([]uint8, 30)
	dist[0] = 1
	for s := 1; s <= 13; s++ {
		dist[s] = uint8(s + 1)
	}
	dist[14], dist[29] = 15, 15
	lc, dc := canonical(lit), canonical(dist)

	var dw deflateWriter
	dw.bits(1, 1) // final block
	dw.bits(2, 2) // dynamic Huffman codes
	dw.bits(286-257, 5)
	dw.bits(30-1, 5)
	dw.bits(19-4, 4)
	// Code length code: symbols 0-15 four bits each, 16-18 unused.
	for _, s := range clenOrder {
		if s < 16 {
			dw.bits(4, 3)
		} else {
			dw.bits(0, 3)
		}
	}
	cl := make([]uint8, 19)
	for s := 0; s < 16; s++ {
		cl[s] = 4
	}
	cc := canonical(cl)
	for _, l := range append(append([]uint8(nil), lit...), dist...) {
		dw.code(cc, cl, int(l))
	}
	pos := 0
	literal := func() { dw.code(lc, lit, 0); pos++ }
	match258 := func() { dw.code(lc, lit, 285); dw.code(dc, dist, 0); pos += 258 }
	literal()
	for pos+258 <= 25200 {
		match258()
	}
	for n := 0; n < 200; n++ { // the two literals and the long pair, at every bit alignment
		literal()
		literal()
		dw.code(lc, lit, 284)
		dw.bits(0, 5) // length 227
		dw.code(dc, dist, 29)
		dw.bits(uint64(n), 13) // distance 24577+n
		pos += 227
		if n%3 == 0 {
			literal()
		}
	}
	for pos+258 <= total {
		match258()
	}
	for pos < total {
		literal()
	}
	dw.code(lc, lit, 256)
	stream := dw.flush()
	z := append([]byte{0x78, 0x01}, stream...)
	z = binary.BigEndian.AppendUint32(z, adler32.Checksum(make([]byte, total)))

	var out bytes.Buffer
	out.Write(pngSignature)
	chunk := func(typ string, body []byte) {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(append(b, typ...), body...)
		b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
		out.Write(b)
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	chunk("IHDR", append(ihdr, 8, 0, 0, 0, 0))
	chunk("IDAT", z)
	chunk("IEND", nil)

	// The stream is valid: compress/flate inflates it to the image's bytes.
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || len(got) != total {
		t.Fatalf("compress/zlib: %d bytes, %v", len(got), err)
	}
	return out.Bytes()
}

// TestInflateLongCodes: a valid stream with the longest codes and extra bits right after
// literals decodes like image/png decodes it.
func TestInflateLongCodes(t *testing.T) {
	data := longCodePNG(t, 1000, 100)
	std, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	img, err := d.DecodePNG(data)
	if err != nil {
		t.Fatalf("own decoder: %v (image/png decodes it)", err)
	}
	if !bytes.Equal(img.Pix, slowRGB(std)) {
		t.Fatal("RGB differs from image/png's")
	}
}

// TestLongCodesTestdata: testdata/longcodes.png (used by host/server's TestPNGLongCodes) is
// the image longCodePNG makes.
func TestLongCodesTestdata(t *testing.T) {
	if !bytes.Equal(readTestdata(t, "longcodes.png"), longCodePNG(t, 1000, 100)) {
		t.Fatal("testdata/longcodes.png is not longCodePNG(1000, 100)")
	}
}

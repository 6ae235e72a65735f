package testplugins

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// PNGFile assembles a PNG file from its header fields and zlib-compressed image data, split
// into IDAT chunks of at most idatChunk bytes (0: one chunk). Tests use it to make images
// no encoder writes (huge, 16-bit, Adam7) without holding their pixels.
func PNGFile(w, h uint32, depth, colorType, interlace byte, zdata []byte, idatChunk int) []byte {
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
	ihdr[8], ihdr[9], ihdr[12] = depth, colorType, interlace
	chunk("IHDR", ihdr)
	if idatChunk <= 0 {
		idatChunk = len(zdata)
	}
	for data := zdata; len(data) > 0; {
		k := min(len(data), idatChunk)
		chunk("IDAT", data[:k])
		data = data[k:]
	}
	chunk("IEND", nil)
	return b.Bytes()
}

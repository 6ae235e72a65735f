package imaging

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"testing"
)

// exifJPEG is a small JPEG with an APP1 EXIF segment whose IFD0 holds Orientation = o.
func exifJPEG(t *testing.T, o uint16, bo binary.ByteOrder) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	var tf bytes.Buffer
	if bo == binary.LittleEndian {
		tf.WriteString("II*\x00")
	} else {
		tf.WriteString("MM\x00*")
	}
	for _, v := range []any{uint32(8), uint16(1), uint16(0x0112), uint16(3), uint32(1), o, uint16(0), uint32(0)} {
		binary.Write(&tf, bo, v)
	}
	seg := append([]byte("Exif\x00\x00"), tf.Bytes()...)
	out := append([]byte{0xff, 0xd8, 0xff, 0xe1, byte((len(seg) + 2) >> 8), byte(len(seg) + 2)}, seg...)
	return append(out, b.Bytes()[2:]...)
}

// TestOrientation: the value is read in both byte orders; a JPEG without EXIF, a PNG and
// every truncation or single-byte corruption of the segment give a value in 1..8 (1 when
// unreadable), never a panic.
func TestOrientation(t *testing.T) {
	for o := uint16(1); o <= 8; o++ {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			if got := Orientation(exifJPEG(t, o, bo)); got != int(o) {
				t.Errorf("orientation %d (%v): read %d", o, bo, got)
			}
		}
	}
	if got := Orientation(readTestdata(t, "420.jpg")); got != 1 {
		t.Errorf("a JPEG without EXIF: %d", got)
	}
	if got := Orientation(readTestdata(t, "rgb.png")); got != 1 {
		t.Errorf("a PNG: %d", got)
	}
	data := exifJPEG(t, 6, binary.BigEndian)
	for n := 0; n <= 60; n++ {
		if got := Orientation(data[:n]); got < 1 || got > 8 {
			t.Errorf("truncated to %d bytes: %d", n, got)
		}
		for _, x := range []byte{0x01, 0x80, 0xff} {
			c := bytes.Clone(data)
			c[n] ^= x
			if got := Orientation(c); got < 1 || got > 8 {
				t.Errorf("byte %d ^ %#x: %d", n, x, got)
			}
		}
	}
}

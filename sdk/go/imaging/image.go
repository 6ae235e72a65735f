package imaging

import (
	"bytes"
	"errors"
)

// RGB is a packed 8-bit RGB image: the sample of channel c (0 R, 1 G, 2 B) at (x, y) is
// Pix[(y*W+x)*3+c].
type RGB struct {
	W, H int
	Pix  []byte
}

// FormatError reports invalid, corrupt or truncated image data.
type FormatError string

func (e FormatError) Error() string { return string(e) }

// UnsupportedError reports a valid image that uses a feature this package does not decode.
type UnsupportedError string

func (e UnsupportedError) Error() string { return string(e) }

// The UnsupportedErrors for JPEG features that the standard library's image/jpeg decodes: a
// caller may fall back to it for these (and only these: for the others, arithmetic coding,
// lossless, hierarchical, 12-bit samples, image/jpeg fails too).
const (
	ErrProgressive UnsupportedError = "jpeg: unsupported: progressive JPEG (only baseline JPEG is decoded)"
	ErrCMYK        UnsupportedError = "jpeg: unsupported: CMYK (4-component) JPEG"
)

// ErrFormat is returned by Decode for data that is neither JPEG nor PNG.
var ErrFormat = errors.New("imaging: not a JPEG or PNG image")

// DefaultMaxPixels is the largest image (width × height) a Decoder accepts when MaxPixels is 0.
const DefaultMaxPixels = 64 << 20

// Format names the kind of image data by its signature: "jpeg", "png", or "" for anything else.
func Format(data []byte) string {
	switch {
	case len(data) >= 2 && data[0] == 0xff && data[1] == 0xd8:
		return "jpeg"
	case bytes.HasPrefix(data, pngSignature):
		return "png"
	}
	return ""
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// A Decoder decodes images into buffers it keeps for the next call. The zero value is ready
// to use. The *RGB a call returns aliases the Decoder's memory and is valid until its next
// call; a Decoder must not be used by two goroutines at once.
type Decoder struct {
	// MaxPixels is the largest image, width × height at full size, that is decoded; larger
	// ones are refused with a FormatError before any image memory is allocated. 0 means
	// DefaultMaxPixels.
	MaxPixels int

	jpeg jpegDecoder
	png  pngDecoder
	out  RGB
	rgb  []byte
}

func (d *Decoder) maxPixels() int {
	if d.MaxPixels > 0 {
		return d.MaxPixels
	}
	return DefaultMaxPixels
}

// Decode decodes a JPEG or PNG image. A JPEG is decoded at the smallest of 1/1, 1/2, 1/4 and
// 1/8 of its size whose width and height are still at least minW and minH (0, 0: full size);
// a PNG always at full size. Data in another format yields ErrFormat.
func (d *Decoder) Decode(data []byte, minW, minH int) (*RGB, error) {
	switch Format(data) {
	case "jpeg":
		return d.DecodeJPEG(data, minW, minH)
	case "png":
		return d.DecodePNG(data)
	}
	return nil, ErrFormat
}

// rgbBuffer returns the Decoder's output buffer resized to n bytes.
func (d *Decoder) rgbBuffer(n int) []byte {
	d.rgb = grow(d.rgb, n)
	return d.rgb
}

// grow returns b with length n, reusing its memory when it is large enough.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n)
}

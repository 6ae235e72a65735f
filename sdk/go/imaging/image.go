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

// ErrCMYK is the UnsupportedError for a JPEG feature that the standard library's image/jpeg
// decodes (at full size): a caller may fall back to it for this one (and only this: for the
// others, arithmetic coding, lossless, hierarchical, 12-bit samples, image/jpeg fails too).
// ErrProgressive is no longer returned: progressive JPEG is decoded, at DCT scale.
const (
	ErrProgressive UnsupportedError = "jpeg: unsupported: progressive JPEG"
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

// DecodeResize decodes a JPEG or PNG image and resizes it into t, bilinearly, with the
// values Resizer's methods write: the tensor is the same to the bit as Decode(data, t.W,
// t.H) followed by the Resizer method t names. It returns the image's size as stored.
//
// What is held differs. A JPEG is decoded at the smallest DCT scale still at least t.W×t.H
// (a 12-megapixel frame into a 300×300 tensor: 504×378 pixels), then resized. A PNG is
// never held whole: its rows are unfiltered one at a time and each row the resize reads is
// packed and resized as it comes. Its image data is inflated whole (by the package's own
// inflate, the fastest) up to 8 MiB of it, and above that streamed through compress/zlib
// within its 32 KiB window; an interlaced (Adam7) PNG keeps only the rows the resize reads
// until its last pass is in. So a 12-megapixel PNG takes a few rows of memory besides the
// request, whatever its colour type.
func (d *Decoder) DecodeResize(data []byte, r *Resizer, t Tensor) (w, h int, err error) {
	tg, err := t.target()
	if err != nil {
		return 0, 0, err
	}
	switch Format(data) {
	case "jpeg":
		img, err := d.DecodeJPEG(data, t.W, t.H)
		if err != nil {
			return 0, 0, err
		}
		return d.jpeg.w, d.jpeg.h, r.resize(tg, img)
	case "png":
		hd, err := d.png.parse(d, data)
		if err != nil {
			return 0, 0, err
		}
		d.png.rgbrow = grow(d.png.rgbrow, 3*hd.w)
		rr := r.rows(tg, hd.w, hd.h)
		if err := d.png.rows(&hd, &resizeSink{rr: rr, buf: d.png.rgbrow}); err != nil {
			return 0, 0, err
		}
		if !rr.done() {
			return 0, 0, FormatError("png: internal error: rows missing")
		}
		return hd.w, hd.h, nil
	}
	return 0, 0, ErrFormat
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

// Command imagepre-go is an edgehost pre plugin: it decodes a JPEG or PNG request body,
// resizes it (bilinear) to the model's input height and width, and writes the NHWC input
// tensor in place: uint8 as raw pixels, int8 as pixel-128, float32 as (pixel-mean)/std.
//
// It uses the SDK's imaging package: a JPEG is decoded in the DCT domain at 1/2, 1/4 or 1/8
// of its size when the model input is that much smaller, and the resize writes straight into
// the tensor. Progressive and CMYK JPEGs, which that decoder refuses, are decoded at full
// size by the standard library's image/jpeg; other JPEG features neither decodes (arithmetic
// coding, lossless, hierarchical, 12-bit) are refused with unsupported (415), naming them.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/sdk/go/edgehost"
	"github.com/edgehost/edgehost/sdk/go/imaging"
)

type params struct {
	Mean float32 `json:"mean"`
	Std  float32 `json:"std"`
	// ExifOrientation: a JPEG is turned as its EXIF orientation says it is shown.
	ExifOrientation bool `json:"exif_orientation"`
}

var cfg = params{Mean: 127.5, Std: 127.5, ExifOrientation: true}

// The instance serves one request at a time and is reused. The decoder and resizer keep
// their buffers between requests while they are small (up to about keepBytes); after a
// larger image or a failed request they are dropped, so that they do not stay referenced
// for the instance's life and leave a later request less memory than a fresh instance has
// (issue 24).
var (
	dec = imaging.Decoder{MaxPixels: 64 << 20}
	rs  imaging.Resizer
)

const keepBytes = 4 << 20

func main() {}

func init() {
	edgehost.Register(edgehost.Plugin{Init: initParams, Pre: pre})
}

func initParams(b []byte) error {
	if err := json.Unmarshal(b, &cfg); err != nil {
		return edgehost.BadParams("params: %v", err)
	}
	if cfg.Std == 0 {
		return edgehost.BadParams("params: std must not be 0")
	}
	return nil
}

func pre(req *edgehost.PreRequest) (err error) {
	big := len(req.Input) > keepBytes
	defer func() {
		if err != nil || big {
			dec, rs = imaging.Decoder{MaxPixels: dec.MaxPixels}, imaging.Resizer{}
		}
	}()
	if len(req.Tensors) != 1 {
		return edgehost.Unsupported("model has %d inputs, this plugin fills exactly one image tensor", len(req.Tensors))
	}
	t := &req.Tensors[0]
	if len(t.Shape) != 4 || t.Shape[0] != 1 || (t.Shape[3] != 3 && t.Shape[3] != 1) {
		return edgehost.Unsupported("input tensor %s has shape %v, want [1,H,W,3] or [1,H,W,1]", t.Name, t.Shape)
	}
	if len(req.Input) == 0 {
		return edgehost.BadInput("empty request body: send a JPEG or PNG image")
	}
	h, w, c := t.Shape[1], t.Shape[2], t.Shape[3]
	if f := req.Frame; f != nil { // a raw frame (ABI 1.3): no decode, resize only
		return preFrame(req, t, f, h, w, c)
	}
	// A JPEG shown turned (EXIF orientation 2-8) is resized as stored, at the model's size
	// transposed for a quarter turn, then turned into the tensor.
	o := 1
	if cfg.ExifOrientation {
		o = imaging.Orientation(req.Input)
	}
	wr, hr := w, h
	if o >= 5 {
		wr, hr = h, w
	}
	out := *t // the tensor, or a scratch copy to turn into it
	if o != 1 {
		out.Data = make([]byte, len(t.Data))
	}
	tensor := imaging.Tensor{W: wr, H: hr, C: c}
	switch t.DType {
	case abi.UInt8:
		tensor.Uint8 = out.Data
	case abi.Int8:
		tensor.Int8 = out.Data
	default:
		m, s := cfg.Mean, cfg.Std
		tensor.Float32, tensor.Mean, tensor.Std = out.Float32(), [3]float32{m, m, m}, [3]float32{s, s, s}
	}
	// Decoded straight into the tensor: a JPEG at DCT scale, a PNG row by row.
	ow, oh, err := dec.DecodeResize(req.Input, &rs, tensor)
	if errors.Is(err, imaging.ErrCMYK) {
		// The standard library decodes it, at full size.
		m, jerr := jpeg.Decode(bytes.NewReader(req.Input))
		if jerr != nil {
			return edgehost.BadInput("cannot decode image: %v", jerr)
		}
		ow, oh = m.Bounds().Dx(), m.Bounds().Dy()
		err = rs.Resize(tensor, dec.FromImage(m))
	}
	var unsupported imaging.UnsupportedError
	var format imaging.FormatError
	switch {
	case err == imaging.ErrFormat:
		return edgehost.Unsupported("request body is not a JPEG or PNG image")
	case errors.As(err, &unsupported): // arithmetic coding, lossless, hierarchical, 12-bit: named
		return edgehost.Unsupported("%v", err)
	case errors.As(err, &format):
		return edgehost.BadInput("cannot decode image: %v", err)
	case err != nil:
		return edgehost.Unsupported("input tensor %s: %v", t.Name, err)
	}
	big = big || ow*oh*3 > keepBytes
	if o != 1 {
		imaging.Orient(t.Data, out.Data, h, w, len(t.Data)/(h*w), o)
	}
	// The request context (ABI.md §5.6): the original size (img may be DCT-scaled), so
	// that a post plugin reports positions in the caller's pixels.
	if !req.ContextSupported() {
		return nil // a host older than ABI 1.1
	}
	if o >= 5 { // the caller sees the image turned: its width is the stored height
		ow, oh = oh, ow
	}
	return req.SetContext(fmt.Appendf(nil, `{"width":%d,"height":%d,"input_width":%d,"input_height":%d}`, ow, oh, w, h))
}

// preFrame fills t from a raw rgb24 frame (ABI 1.3, §5.7; the host checked that stride ×
// height is the input's length): rows packed when the stride has padding, then the same
// resize and quantisation as a decoded image; the request context has the frame's size.
func preFrame(req *edgehost.PreRequest, t *edgehost.Tensor, f *edgehost.Frame, h, w, c int) error {
	if f.Format != abi.PixelRGB24 {
		return edgehost.Unsupported("raw frame pixel format %v is not supported (rgb24)", f.Format)
	}
	if f.Width <= 0 || f.Height <= 0 || f.Stride < 3*f.Width || f.Stride*f.Height != len(req.Input) {
		return edgehost.BadInput("raw frame %dx%d stride %d does not fit its %d bytes", f.Width, f.Height, f.Stride, len(req.Input))
	}
	img := &imaging.RGB{W: f.Width, H: f.Height, Pix: req.Input}
	if f.Stride != 3*f.Width {
		img.Pix = make([]byte, 3*f.Width*f.Height)
		for y := 0; y < f.Height; y++ {
			copy(img.Pix[3*f.Width*y:3*f.Width*(y+1)], req.Input[f.Stride*y:])
		}
	}
	var err error
	switch t.DType {
	case abi.UInt8:
		err = rs.Uint8(t.Data, w, h, c, img)
	case abi.Int8:
		err = rs.Int8(t.Data, w, h, c, img)
	default:
		m, s := cfg.Mean, cfg.Std
		err = rs.Float32(t.Float32(), w, h, c, img, [3]float32{m, m, m}, [3]float32{s, s, s})
	}
	if err != nil {
		return edgehost.Unsupported("input tensor %s: %v", t.Name, err)
	}
	if !req.ContextSupported() {
		return nil
	}
	return req.SetContext([]byte(fmt.Sprintf(`{"width":%d,"height":%d,"input_width":%d,"input_height":%d}`, f.Width, f.Height, w, h)))
}

// Package imaging decodes JPEG and PNG images into packed 8-bit RGB and resizes them straight
// into a model's input tensor, for edgehost pre plugins written in Go.
//
// It is pure Go (no cgo) and runs the same on GOOS=wasip1 GOARCH=wasm and natively, so a
// plugin's pre-processing can be tested and profiled with the ordinary go tool.
//
// What it is for: the standard library's image.Decode and image.Image.At work, but in a
// WebAssembly sandbox the full-resolution decode and the per-pixel interface calls dominate a
// request. This package instead
//
//   - decodes baseline JPEG in the DCT domain at 1/1, 1/2, 1/4 or 1/8 of its size (the
//     smallest scale still at least as large as the model input, as libjpeg's scaled decoding
//     and Pillow's draft() do), so a 12-megapixel camera frame never exists at full size;
//   - decodes non-interlaced PNG with 8-bit samples (and opaque 16-bit grey and truecolour)
//     with its own inflate and unfilter into buffers it keeps, straight to packed RGB (the
//     standard library's compress/flate reads through an io.ByteReader, an interface call
//     per byte, which in WebAssembly costs more than the decoding); other PNGs go through
//     image/png, whose result is packed by loops specialised per concrete type;
//   - resamples bilinearly from packed RGB into the tensor's bytes (uint8, int8 or float32,
//     one or three channels) with precomputed taps and no per-pixel dispatch;
//   - keeps its buffers in a Decoder and a Resizer that a plugin reuses across requests, so
//     steady-state calls do not grow the sandbox's memory.
//
// A typical pre plugin:
//
//	var dec imaging.Decoder
//	var rs imaging.Resizer
//
//	func pre(req *edgehost.PreRequest) error {
//		t := &req.Tensors[0]
//		h, w, c := t.Shape[1], t.Shape[2], t.Shape[3]
//		img, err := dec.Decode(req.Input, w, h) // JPEG: scaled to at least w×h
//		if err != nil {
//			return edgehost.BadInput("%v", err)
//		}
//		rs.Uint8(t.Data, w, h, c, img)
//		return nil
//	}
//
// JPEG support: baseline and extended sequential Huffman-coded DCT (SOF0, SOF1), 8-bit
// samples, one component (grey) or three (YCbCr, or RGB when an Adobe marker or the component
// ids say so), any sampling factors, restart intervals. Progressive, lossless, hierarchical,
// arithmetic-coded, 12-bit and CMYK JPEGs are refused with an UnsupportedError (the standard
// library's image/jpeg decodes progressive and CMYK ones at full size, if a plugin needs
// them). Corrupt or truncated data yields a FormatError; the decoder does not panic on any
// input. Colour conversion uses the same fixed-point formula as image/color.YCbCrToRGB and
// chroma is upsampled by replication, so a full-size decode differs from image/jpeg only by
// IDCT rounding.
//
// Orientation reads a JPEG's EXIF orientation and Orient turns a resized image (or tensor)
// accordingly: the caller resizes the stored image, transposed for a quarter turn, then
// turns it.
//
// PNG support: every colour type and bit depth, interlaced or not (the standard library's
// image/png for interlaced images, bit depths below 8 and 16-bit images with alpha). Colours
// are packed as stored: alpha dropped (a fully transparent pixel keeps its colour, as in the
// C plugin), 16-bit samples by their high byte, palette indices past the palette black:
// image/png's stored (non-premultiplied) colours. Chunk CRCs and the
// zlib checksum are verified; corrupt or truncated data yields a FormatError naming what is
// wrong ("png: CRC mismatch in IDAT chunk", "png: zlib: truncated data").
package imaging

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
//   - decodes baseline and progressive JPEG in the DCT domain at 1/1, 1/2, 1/4 or 1/8 of its
//     size (the smallest scale still at least as large as the model input, as libjpeg's
//     scaled decoding and Pillow's draft() do), so a 12-megapixel camera frame never exists
//     at full size; a progressive JPEG keeps, between its scans, only the N×N coefficients
//     of each block that the scale needs and a mask of the non-zero ones;
//   - decodes PNG (every colour type, bit depth and interlace method) with its own inflate
//     and unfilter a row at a time: the inflate works in a 32 KiB window (plus a few rows and
//     512 KiB of slack) over the IDAT chunks where they lie in the request (the standard
//     library's compress/flate reads through an io.ByteReader, an interface call per byte,
//     which in WebAssembly costs more than the decoding);
//   - resamples bilinearly from packed RGB into the tensor's bytes (uint8, int8 or float32,
//     one or three channels) with precomputed taps and no per-pixel dispatch; DecodeResize
//     does it as the rows are decoded, so a PNG is never held whole;
//   - keeps its buffers in a Decoder and a Resizer that a plugin reuses across requests, so
//     steady-state calls do not grow the sandbox's memory.
//
// What fits in which memory budget, through DecodeResize into a model input of a few hundred
// pixels a side (guest memory of imagepre-go, measured by host/plugin's
// TestImagePre12MpxMemory; the request body is in guest memory too):
//
//   - a PNG of any size: the body plus a few rows and the inflate window (4032×3024 8-bit
//     RGB: body + 0.8 MiB); an interlaced (Adam7) PNG also keeps the rows the resize reads
//     until its last pass (4032×3024 RGBA into 224×224: body + 7.2 MiB in all);
//   - a JPEG at scale N/8: its planes at that scale, and for a progressive JPEG 2·N² + 8
//     bytes for each 8×8 block (a 4032×3024 4:2:0 frame at 1/8: 2.9 MB); at full size (a
//     model input as large as the image) that is 136 bytes a block plus the image: a 12 Mpx
//     progressive JPEG at full size does not fit 64 MiB.
//
// So a 12-megapixel PNG or JPEG, baseline or progressive, fits imagepre-go's default budget
// of 64 MiB with room to spare (measured into inputs of a few hundred pixels a side; the
// progressive one 6.0 MiB in all). Time is the tighter budget: inflating costs about 15 ns
// a byte of image data in WebAssembly (a 12 Mpx 8-bit RGB PNG, 36 MB of it: 0.67 s CPU).
//
// A typical pre plugin:
//
//	var dec imaging.Decoder
//	var rs imaging.Resizer
//
//	func pre(req *edgehost.PreRequest) error {
//		t := &req.Tensors[0]
//		h, w, c := t.Shape[1], t.Shape[2], t.Shape[3]
//		_, _, err := dec.DecodeResize(req.Input, &rs, imaging.Tensor{W: w, H: h, C: c, Uint8: t.Data})
//		if err != nil {
//			return edgehost.BadInput("%v", err)
//		}
//		return nil
//	}
//
// JPEG support: baseline and extended sequential Huffman-coded DCT (SOF0, SOF1) and
// progressive Huffman-coded DCT (SOF2: spectral selection, successive approximation, EOB
// runs), 8-bit samples, one component (grey) or three (YCbCr, or RGB when an Adobe marker or
// the component ids say so), any sampling factors, restart intervals. Lossless,
// hierarchical, arithmetic-coded, 12-bit and CMYK JPEGs are refused with an
// UnsupportedError (the standard library's image/jpeg decodes CMYK ones at full size, if a
// plugin needs them). Corrupt or truncated data yields a FormatError; the decoder does not
// panic on any input. Colour conversion uses the same fixed-point formula as
// image/color.YCbCrToRGB and chroma is upsampled by replication, so a full-size decode
// differs from image/jpeg only by IDCT rounding, and a progressive JPEG decodes to exactly
// the pixels of the baseline JPEG with the same coefficients (jpegtran's lossless
// transcodes), at every scale.
//
// Orientation reads a JPEG's EXIF orientation and Orient turns a resized image (or tensor)
// accordingly: the caller resizes the stored image, transposed for a quarter turn, then
// turns it.
//
// PNG support: every colour type and bit depth, interlaced or not, by the package's own
// decoder. Colours are packed as stored: alpha dropped (a fully transparent pixel keeps its
// colour, as in the C plugin), 16-bit samples by their high byte, grey below 8 bits scaled
// to 0-255, palette indices past the palette black: what FromImage makes of image/png's
// result, to the bit (tested on PngSuite and on generated images of every kind). Chunk CRCs
// and the zlib checksum are verified; corrupt or truncated data yields a FormatError naming
// what is wrong ("png: CRC mismatch in IDAT chunk", "png: zlib: truncated data").
package imaging

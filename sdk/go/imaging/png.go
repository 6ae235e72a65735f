package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"strings"
)

// DecodePNG decodes a PNG image and packs it as RGB (colour channels as stored, alpha
// ignored, 16-bit samples by their high byte: the values FromImage gives for image/png's
// result). Non-interlaced images of 8-bit samples (every colour type) and opaque 16-bit
// greyscale and truecolour are decoded by this package's own decoder into the Decoder's
// buffers; interlaced images, bit depths below 8 and 16-bit images with alpha go through the
// standard library's image/png.
func (d *Decoder) DecodePNG(data []byte) (*RGB, error) {
	if img, err := d.png.decode(d, data); err != errPNGFallback {
		return img, err
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, pngError(err)
	}
	if cfg.Width*cfg.Height > d.maxPixels() {
		return nil, FormatError(fmt.Sprintf("png: image of %dx%d pixels is larger than the limit of %d pixels", cfg.Width, cfg.Height, d.maxPixels()))
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, pngError(err)
	}
	return d.FromImage(img), nil
}

// pngError makes image/png's errors FormatErrors that say "png:" (io.ErrUnexpectedEOF for a
// truncated file says neither).
func pngError(err error) error {
	if msg := err.Error(); !strings.HasPrefix(msg, "png: ") {
		return FormatError("png: " + msg)
	}
	return FormatError(err.Error())
}

// FromImage packs any image.Image as RGB into the Decoder's buffer. The types the standard
// decoders return (*image.NRGBA, *image.NRGBA64, *image.RGBA, *image.Gray, *image.Paletted,
// *image.YCbCr) are converted by specialised loops; any other type goes through
// color.NRGBAModel pixel by pixel. Colours are the NRGBA (non-premultiplied) values, alpha
// dropped; *image.RGBA's stored values are taken as they are; *image.NRGBA64 (image/png's
// result for 16-bit images with alpha or a transparent colour) gives the high byte of each
// stored colour sample, so a fully transparent pixel keeps its colour (through
// color.NRGBAModel, which goes by the premultiplied value, it came out black).
func (d *Decoder) FromImage(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	pix := d.rgbBuffer(w * h * 3)
	d.out = RGB{W: w, H: h, Pix: pix}
	if w <= 0 || h <= 0 {
		d.out = RGB{}
		return &d.out
	}
	switch m := img.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			from4(pix[y*w*3:(y+1)*w*3], m.Pix[y*m.Stride:][:w*4])
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			from4(pix[y*w*3:(y+1)*w*3], m.Pix[y*m.Stride:][:w*4])
		}
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			out := pix[y*w*3 : (y+1)*w*3]
			row := m.Pix[y*m.Stride:][:w*8]
			for x := 0; x < w; x++ {
				s := row[8*x : 8*x+5 : 8*x+5] // big-endian R, G, B, A: the high bytes at 0, 2, 4
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = s[0], s[2], s[4]
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			out := pix[y*w*3 : (y+1)*w*3]
			for x, v := range m.Pix[y*m.Stride:][:w] {
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = v, v, v
			}
		}
	case *image.Paletted:
		var lut [256][3]byte
		for i, c := range m.Palette {
			if i < 256 {
				n := color.NRGBAModel.Convert(c).(color.NRGBA)
				lut[i] = [3]byte{n.R, n.G, n.B}
			}
		}
		for y := 0; y < h; y++ {
			out := pix[y*w*3 : (y+1)*w*3]
			for x, v := range m.Pix[y*m.Stride:][:w] {
				o := out[3*x : 3*x+3 : 3*x+3]
				c := &lut[v]
				o[0], o[1], o[2] = c[0], c[1], c[2]
			}
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			out := pix[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = yccPixel(m.Y[yi], m.Cb[ci], m.Cr[ci])
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				pix[i], pix[i+1], pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return &d.out
}

// from4 drops every fourth byte (alpha) of src into dst.
func from4(dst, src []byte) {
	for x := 0; x < len(src)/4 && 3*x+3 <= len(dst); x++ {
		s := src[4*x : 4*x+3 : 4*x+3]
		o := dst[3*x : 3*x+3 : 3*x+3]
		o[0], o[1], o[2] = s[0], s[1], s[2]
	}
}

// pngDecoder is the own decoder's state, kept between calls.
type pngDecoder struct {
	z    inflater
	idat []byte // the IDAT payloads joined, when there is more than one
	raw  []byte // inflated, filtered rows: a filter-type byte, then the row's bytes
	lut  [256][3]byte
}

// errPNGFallback: the image uses a feature the own decoder leaves to image/png.
var errPNGFallback = errors.New("png: decoded by image/png")

// decode decodes a non-interlaced PNG with 8-bit samples, or opaque 16-bit grey or
// truecolour, into d's RGB buffer (PNG spec, ISO/IEC 15948). Chunk CRCs and the zlib
// Adler-32 are verified; ancillary chunks are skipped.
func (p *pngDecoder) decode(d *Decoder, data []byte) (*RGB, error) {
	if !bytes.HasPrefix(data, pngSignature) {
		return nil, FormatError("png: not a PNG file")
	}
	var (
		w, h, depth, ctype, interlace int
		idat                          []byte
		nidat                         int
		seenIHDR, seenPLTE, idatDone  bool
		trns                          bool
	)
	pos := len(pngSignature)
	for {
		if len(data)-pos < 12 {
			return nil, FormatError("png: truncated file (no IEND chunk)")
		}
		n := binary.BigEndian.Uint32(data[pos:])
		typ := string(data[pos+4 : pos+8])
		for i := 0; i < 4; i++ {
			if c := typ[i] &^ 0x20; c < 'A' || c > 'Z' {
				return nil, FormatError("png: invalid chunk type")
			}
		}
		if n > 0x7fffffff || int(n) > len(data)-pos-12 {
			return nil, FormatError(fmt.Sprintf("png: truncated %s chunk (%d bytes declared)", typ, n))
		}
		body := data[pos+8 : pos+8+int(n)]
		if crc32.ChecksumIEEE(data[pos+4:pos+8+int(n)]) != binary.BigEndian.Uint32(data[pos+8+int(n):]) {
			return nil, FormatError(fmt.Sprintf("png: CRC mismatch in %s chunk", typ))
		}
		pos += 12 + int(n)
		if nidat > 0 && typ != "IDAT" {
			idatDone = true
		}
		if !seenIHDR {
			if typ != "IHDR" || n != 13 {
				return nil, FormatError("png: first chunk is not a 13-byte IHDR")
			}
			seenIHDR = true
			w, h = int(binary.BigEndian.Uint32(body)), int(binary.BigEndian.Uint32(body[4:]))
			depth, ctype, interlace = int(body[8]), int(body[9]), int(body[12])
			if w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff {
				return nil, FormatError(fmt.Sprintf("png: invalid size %dx%d", w, h))
			}
			if body[10] != 0 || body[11] != 0 || interlace > 1 {
				return nil, FormatError("png: invalid compression, filter or interlace method")
			}
			if !pngDepthValid(ctype, depth) {
				return nil, FormatError(fmt.Sprintf("png: invalid bit depth %d for colour type %d", depth, ctype))
			}
			if w*h > d.maxPixels() {
				return nil, FormatError(fmt.Sprintf("png: image of %dx%d pixels is larger than the limit of %d pixels", w, h, d.maxPixels()))
			}
			if interlace != 0 || depth < 8 || depth == 16 && (ctype == 4 || ctype == 6) {
				return nil, errPNGFallback
			}
			continue
		}
		switch typ {
		case "IDAT":
			if idatDone {
				return nil, FormatError("png: IDAT chunks are not consecutive")
			}
			if ctype == 3 && !seenPLTE {
				return nil, FormatError("png: indexed image without PLTE before IDAT")
			}
			if trns && depth == 16 {
				return nil, errPNGFallback // transparent colour key: image/png's NRGBA64 result
			}
			switch nidat++; nidat {
			case 1:
				idat = body
			case 2:
				p.idat = append(append(p.idat[:0], idat...), body...)
				idat = p.idat
			default:
				p.idat = append(p.idat, body...)
				idat = p.idat
			}
		case "PLTE":
			if nidat > 0 || seenPLTE {
				return nil, FormatError("png: PLTE after IDAT or repeated")
			}
			if n == 0 || n%3 != 0 || n > 768 {
				return nil, FormatError(fmt.Sprintf("png: invalid PLTE length %d", n))
			}
			seenPLTE = true
			p.lut = [256][3]byte{} // indices past the palette are black, as in image/png
			for i := 0; i < int(n)/3; i++ {
				p.lut[i] = [3]byte{body[3*i], body[3*i+1], body[3*i+2]}
			}
		case "tRNS":
			trns = true
		case "IEND":
			if nidat == 0 {
				return nil, FormatError("png: no IDAT chunk")
			}
			return p.image(d, idat, w, h, depth, ctype)
		case "IHDR":
			return nil, FormatError("png: duplicate IHDR")
		default:
			if typ[0]&0x20 == 0 {
				return nil, errPNGFallback // an unknown critical chunk: image/png says what it is
			}
		}
	}
}

func pngDepthValid(ctype, depth int) bool {
	switch ctype {
	case 0:
		return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16
	case 3:
		return depth == 1 || depth == 2 || depth == 4 || depth == 8
	case 2, 4, 6:
		return depth == 8 || depth == 16
	}
	return false
}

// image inflates, unfilters and packs the image data.
func (p *pngDecoder) image(d *Decoder, idat []byte, w, h, depth, ctype int) (*RGB, error) {
	channels := [7]int{1, 0, 3, 1, 2, 0, 4}[ctype]
	bpp := channels * depth / 8
	rb := w * bpp
	p.raw = grow(p.raw, h*(1+rb))
	raw := p.raw
	if err := p.z.zlibDecode(idat, raw); err != nil {
		return nil, err
	}
	pix := d.rgbBuffer(w * h * 3)
	var prev []byte
	for y := 0; y < h; y++ {
		row := raw[y*(1+rb)+1 : (y+1)*(1+rb)]
		if !unfilter(row, prev, bpp, raw[y*(1+rb)]) {
			return nil, FormatError(fmt.Sprintf("png: invalid filter type %d", raw[y*(1+rb)]))
		}
		prev = row
		out := pix[y*w*3 : (y+1)*w*3]
		switch {
		case ctype == 2 && depth == 8:
			copy(out, row)
		case ctype == 6:
			from4(out, row)
		case ctype == 0 && depth == 8:
			for x, v := range row[:w] {
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = v, v, v
			}
		case ctype == 4:
			for x := range w {
				v := row[2*x]
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = v, v, v
			}
		case ctype == 3:
			for x, v := range row[:w] {
				c := &p.lut[v]
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = c[0], c[1], c[2]
			}
		case ctype == 0: // 16-bit grey: the high byte
			for x := range w {
				v := row[2*x]
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = v, v, v
			}
		default: // 16-bit truecolour
			for x := range w {
				s := row[6*x : 6*x+5 : 6*x+5]
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = s[0], s[2], s[4]
			}
		}
	}
	d.out = RGB{W: w, H: h, Pix: pix}
	return &d.out, nil
}

// unfilter undoes a row's filter in place (PNG spec §9); prev is the previous row, already
// unfiltered, or nil for the first. It reports false for an invalid filter type.
func unfilter(row, prev []byte, bpp int, ft byte) bool {
	n := len(row)
	switch ft {
	case 0:
	case 1:
		for i := bpp; i < n; i++ {
			row[i] += row[i-bpp]
		}
	case 2:
		if prev != nil {
			prev = prev[:n]
			for i := range row {
				row[i] += prev[i]
			}
		}
	case 3:
		if prev == nil {
			for i := bpp; i < n; i++ {
				row[i] += row[i-bpp] >> 1
			}
			break
		}
		prev = prev[:n]
		for i := 0; i < bpp && i < n; i++ {
			row[i] += prev[i] >> 1
		}
		for i := bpp; i < n; i++ {
			row[i] += byte((int(row[i-bpp]) + int(prev[i])) >> 1)
		}
	case 4:
		if prev == nil { // Paeth(a, 0, 0) = a
			for i := bpp; i < n; i++ {
				row[i] += row[i-bpp]
			}
			break
		}
		if bpp == 3 {
			paeth3(row, prev[:n])
		} else {
			paeth(row, prev[:n], bpp)
		}
	default:
		return false
	}
	return true
}

// paethPredict is the Paeth predictor with the tie-breaking of the PNG spec (a, then b, then c).
func paethPredict(a, b, c int) int {
	pa, pb := b-c, a-c
	pc := pa + pb
	pa = (pa ^ pa>>63) - pa>>63
	pb = (pb ^ pb>>63) - pb>>63
	pc = (pc ^ pc>>63) - pc>>63
	p := a
	if pb < pa {
		p, pa = b, pb
	}
	if pc < pa {
		p = c
	}
	return p
}

func paeth(row, prev []byte, bpp int) {
	for i := 0; i < bpp && i < len(row); i++ { // Paeth(0, b, 0) = b
		row[i] += prev[i]
	}
	for i := bpp; i < len(row) && i < len(prev); i++ {
		row[i] += byte(paethPredict(int(row[i-bpp]), int(prev[i]), int(prev[i-bpp])))
	}
}

// paeth3 is paeth for 3-byte pixels (8-bit truecolour), with the left and upper-left pixel
// kept in locals.
func paeth3(row, prev []byte) {
	if len(row) < 3 || len(prev) < len(row) {
		paeth(row, prev, 3)
		return
	}
	row[0] += prev[0]
	row[1] += prev[1]
	row[2] += prev[2]
	a0, a1, a2 := int(row[0]), int(row[1]), int(row[2])
	c0, c1, c2 := int(prev[0]), int(prev[1]), int(prev[2])
	for i := 3; i+3 <= len(row); i += 3 {
		r := row[i : i+3 : i+3]
		u := prev[i : i+3 : i+3]
		b0, b1, b2 := int(u[0]), int(u[1]), int(u[2])
		a0 = int(byte(int(r[0]) + paethPredict(a0, b0, c0)))
		a1 = int(byte(int(r[1]) + paethPredict(a1, b1, c1)))
		a2 = int(byte(int(r[2]) + paethPredict(a2, b2, c2)))
		r[0], r[1], r[2] = byte(a0), byte(a1), byte(a2)
		c0, c1, c2 = b0, b1, b2
	}
}

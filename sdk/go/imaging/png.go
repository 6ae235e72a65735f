package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
)

// DecodePNG decodes a PNG image and packs it as RGB (colour channels as stored, alpha
// ignored, 16-bit samples by their high byte, grey below 8 bits scaled to 0-255: the values
// FromImage gives for image/png's result). Every colour type, bit depth and interlace method
// is decoded by this package's own decoder, row by row, into the Decoder's buffers.
// DecodeResize decodes without building the whole image.
func (d *Decoder) DecodePNG(data []byte) (*RGB, error) {
	hd, err := d.png.parse(d, data)
	if err != nil {
		return nil, err
	}
	pix := d.rgbBuffer(hd.w * hd.h * 3)
	d.out = RGB{}
	if err := d.png.rows(&hd, &wholeSink{pix: pix, stride: 3 * hd.w}); err != nil {
		return nil, err
	}
	d.out = RGB{W: hd.w, H: hd.h, Pix: pix}
	return &d.out, nil
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
	z      inflater
	zs     zstream
	win    []byte    // zs's window
	chunks [][]byte  // the IDAT payloads, in the request's data
	rowbuf [2][]byte // the row being unfiltered and the one above it
	pass   []byte    // one pass row packed as RGB (Adam7)
	store  []byte    // Adam7: the rows a sink reads, until the last pass is in
	slot   []int32   // Adam7: each row's place in store, -1 for none
	lut    [256][3]byte
	rgbrow []byte // a row for a resizeSink
}

type pngHeader struct {
	w, h, depth, ctype int
	interlaced         bool
}

// channels per colour type; bitsPP: bits per pixel.
func (hd *pngHeader) bitsPP() int { return [7]int{1, 0, 3, 1, 2, 0, 4}[hd.ctype] * hd.depth }

// A pngSink receives the decoded rows, in order of y (Adam7: once the last pass is in).
type pngSink interface {
	needs(y int) bool    // whether row y is read at all
	row(y int) []byte    // where row y's packed RGB is written (only rows it needs)
	put(y int, b []byte) // row y is complete in b
	whole() bool         // rows from row stay valid until the end: Adam7 writes into them
}

// wholeSink is a whole packed RGB image.
type wholeSink struct {
	pix    []byte
	stride int
}

func (s *wholeSink) needs(int) bool   { return true }
func (s *wholeSink) row(y int) []byte { return s.pix[y*s.stride : (y+1)*s.stride] }
func (s *wholeSink) put(int, []byte)  {}
func (s *wholeSink) whole() bool      { return true }

// resizeSink resizes rows into a tensor as they come.
type resizeSink struct {
	rr  *rowResize
	buf []byte
}

func (s *resizeSink) needs(y int) bool    { return s.rr.needs(y) }
func (s *resizeSink) row(int) []byte      { return s.buf }
func (s *resizeSink) put(y int, b []byte) { s.rr.push(y, b) }
func (s *resizeSink) whole() bool         { return false }

// parse reads the chunks of a PNG (PNG spec, ISO/IEC 15948): the header, the palette and
// where the image data is. Chunk CRCs are verified; ancillary and unknown chunks are skipped
// (as image/png does).
func (p *pngDecoder) parse(d *Decoder, data []byte) (hd pngHeader, err error) {
	if !bytes.HasPrefix(data, pngSignature) {
		return hd, FormatError("png: not a PNG file")
	}
	var (
		nidat                        int
		seenIHDR, seenPLTE, idatDone bool
	)
	p.chunks = p.chunks[:0]
	pos := len(pngSignature)
	for {
		if len(data)-pos < 12 {
			return hd, FormatError("png: truncated file (no IEND chunk)")
		}
		n := binary.BigEndian.Uint32(data[pos:])
		typ := string(data[pos+4 : pos+8])
		for i := 0; i < 4; i++ {
			if c := typ[i] &^ 0x20; c < 'A' || c > 'Z' {
				return hd, FormatError("png: invalid chunk type")
			}
		}
		if n > 0x7fffffff || int(n) > len(data)-pos-12 {
			return hd, FormatError(fmt.Sprintf("png: truncated %s chunk (%d bytes declared)", typ, n))
		}
		body := data[pos+8 : pos+8+int(n)]
		if crc32.ChecksumIEEE(data[pos+4:pos+8+int(n)]) != binary.BigEndian.Uint32(data[pos+8+int(n):]) {
			return hd, FormatError(fmt.Sprintf("png: CRC mismatch in %s chunk", typ))
		}
		pos += 12 + int(n)
		if nidat > 0 && typ != "IDAT" {
			idatDone = true
		}
		if !seenIHDR {
			if typ != "IHDR" || n != 13 {
				return hd, FormatError("png: first chunk is not a 13-byte IHDR")
			}
			seenIHDR = true
			w, h := int(binary.BigEndian.Uint32(body)), int(binary.BigEndian.Uint32(body[4:]))
			hd = pngHeader{w: w, h: h, depth: int(body[8]), ctype: int(body[9]), interlaced: body[12] == 1}
			if w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff {
				return hd, FormatError(fmt.Sprintf("png: invalid size %dx%d", w, h))
			}
			if body[10] != 0 || body[11] != 0 || body[12] > 1 {
				return hd, FormatError("png: invalid compression, filter or interlace method")
			}
			if !pngDepthValid(hd.ctype, hd.depth) {
				return hd, FormatError(fmt.Sprintf("png: invalid bit depth %d for colour type %d", hd.depth, hd.ctype))
			}
			if w*h > d.maxPixels() {
				return hd, FormatError(fmt.Sprintf("png: image of %dx%d pixels is larger than the limit of %d pixels", w, h, d.maxPixels()))
			}
			continue
		}
		switch typ {
		case "IDAT":
			if idatDone {
				return hd, FormatError("png: IDAT chunks are not consecutive")
			}
			if hd.ctype == 3 && !seenPLTE {
				return hd, FormatError("png: indexed image without PLTE before IDAT")
			}
			nidat++
			p.chunks = append(p.chunks, body)
		case "PLTE":
			if nidat > 0 || seenPLTE {
				return hd, FormatError("png: PLTE after IDAT or repeated")
			}
			if n == 0 || n%3 != 0 || n > 768 {
				return hd, FormatError(fmt.Sprintf("png: invalid PLTE length %d", n))
			}
			seenPLTE = true
			p.lut = [256][3]byte{} // indices past the palette are black, as in image/png
			for i := 0; i < int(n)/3; i++ {
				p.lut[i] = [3]byte{body[3*i], body[3*i+1], body[3*i+2]}
			}
		case "IEND":
			if nidat == 0 {
				return hd, FormatError("png: no IDAT chunk")
			}
			return hd, nil
		case "IHDR":
			return hd, FormatError("png: duplicate IHDR")
		}
	}
}

// adam7 is each interlace pass's first column and row and their steps.
var adam7 = [7][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}

// passes returns the image's passes (one for a non-interlaced image): first column, row,
// steps, and size in pixels; a pass with no pixels has w or h 0.
func (hd *pngHeader) passes() [][6]int {
	if !hd.interlaced {
		return [][6]int{{0, 0, 1, 1, hd.w, hd.h}}
	}
	var ps [][6]int
	for _, a := range adam7 {
		ps = append(ps, [6]int{a[0], a[1], a[2], a[3], (hd.w - a[0] + a[2] - 1) / a[2], (hd.h - a[1] + a[3] - 1) / a[3]})
	}
	return ps
}

// rows inflates and unfilters the image data and hands the rows to sink, packed as RGB.
// The data is inflated a row at a time (the package's own inflate, in a window of 32 KiB and
// a few rows), so the memory held is a few rows whatever the image's size; the zlib Adler-32
// is checked, and that the data holds exactly the rows.
func (p *pngDecoder) rows(hd *pngHeader, sink pngSink) error {
	bits := hd.bitsPP()
	bpp := max(1, bits/8)
	passes := hd.passes()
	total, widest := 0, 0
	for _, ps := range passes {
		if ps[4] > 0 && ps[5] > 0 {
			total += ps[5] * (1 + (ps[4]*bits+7)/8)
			widest = max(widest, 1+(ps[4]*bits+7)/8)
		}
	}
	var err error
	if p.win, err = p.zs.begin(&p.z, p.chunks, p.win, total, widest); err != nil {
		return err
	}
	k := 0
	// Adam7 with a sink whose rows do not stay: the rows it needs are kept in p.store.
	keep := hd.interlaced && !sink.whole()
	if keep {
		p.slot = grow32(p.slot, hd.h)
		n := 0
		for y := range p.slot {
			p.slot[y] = -1
			if sink.needs(y) {
				p.slot[y] = int32(n)
				n++
			}
		}
		p.store = grow(p.store, n*3*hd.w)
	}
	for _, ps := range passes {
		x0, y0, dx, dy, pw, ph := ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]
		if pw == 0 || ph == 0 {
			continue
		}
		rb := (pw*bits + 7) / 8
		var prev []byte
		for j := 0; j < ph; j++ {
			k ^= 1
			line := grow(p.rowbuf[k], 1+rb)
			p.rowbuf[k] = line
			if err := p.zs.read(line); err != nil {
				return err
			}
			row := line[1:]
			if !unfilter(row, prev, bpp, line[0]) {
				return FormatError(fmt.Sprintf("png: invalid filter type %d", line[0]))
			}
			prev = row
			y := y0 + j*dy
			if !sink.needs(y) {
				continue
			}
			if !hd.interlaced {
				out := sink.row(y)
				p.pack(out, row, pw, hd)
				sink.put(y, out)
				continue
			}
			p.pass = grow(p.pass, 3*pw)
			p.pack(p.pass, row, pw, hd)
			var out []byte
			if keep {
				out = p.store[int(p.slot[y])*3*hd.w:][:3*hd.w]
			} else {
				out = sink.row(y)
			}
			for i := 0; i < pw; i++ {
				o := out[3*(x0+i*dx) : 3*(x0+i*dx)+3 : 3*(x0+i*dx)+3]
				s := p.pass[3*i : 3*i+3 : 3*i+3]
				o[0], o[1], o[2] = s[0], s[1], s[2]
			}
		}
	}
	if err := p.zs.end(); err != nil {
		return err
	}
	if keep {
		for y := 0; y < hd.h; y++ {
			if p.slot[y] >= 0 {
				sink.put(y, p.store[int(p.slot[y])*3*hd.w:][:3*hd.w])
			}
		}
	}
	return nil
}

// pack converts n pixels of an unfiltered row to packed RGB: colour as stored, alpha
// dropped, 16-bit samples by their high byte, grey below 8 bits scaled to 0-255, palette
// indices through the palette (past its end: black).
func (p *pngDecoder) pack(out, row []byte, n int, hd *pngHeader) {
	out = out[:3*n]
	switch d, ct := hd.depth, hd.ctype; {
	case d < 8:
		mask := byte(1<<d - 1)
		scale := byte(255 / int(mask))
		for x := 0; x < n; x++ {
			bit := x * d
			v := row[bit>>3] >> (8 - d - bit&7) & mask
			o := out[3*x : 3*x+3 : 3*x+3]
			if ct == 3 {
				c := &p.lut[v]
				o[0], o[1], o[2] = c[0], c[1], c[2]
			} else {
				v *= scale
				o[0], o[1], o[2] = v, v, v
			}
		}
	case ct == 2 && d == 8:
		copy(out, row)
	case ct == 6 && d == 8:
		from4(out, row)
	case ct == 3:
		for x, v := range row[:n] {
			c := &p.lut[v]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = c[0], c[1], c[2]
		}
	case ct == 0 || ct == 4: // grey, with alpha or not: every (d/8·channels)-th byte
		step := d / 8 * (1 + ct/4)
		for x := 0; x < n; x++ {
			v := row[step*x]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = v, v, v
		}
	case ct == 2: // 16-bit truecolour
		for x := 0; x < n; x++ {
			s := row[6*x : 6*x+5 : 6*x+5]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = s[0], s[2], s[4]
		}
	default: // 16-bit truecolour with alpha
		for x := 0; x < n; x++ {
			s := row[8*x : 8*x+5 : 8*x+5]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0], o[1], o[2] = s[0], s[2], s[4]
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

// unfilter undoes a row's filter in place (PNG spec §9); prev is the previous row, already
// unfiltered, or nil for the first. It reports false for an invalid filter type.
func unfilter(row, prev []byte, bpp int, ft byte) bool {
	n := len(row)
	switch ft {
	case 0:
	case 1:
		switch {
		case bpp == 3 && n >= 3: // the left pixel in locals
			a0, a1, a2 := row[0], row[1], row[2]
			for i := 3; i+3 <= n; i += 3 {
				r := row[i : i+3 : i+3]
				a0, a1, a2 = r[0]+a0, r[1]+a1, r[2]+a2
				r[0], r[1], r[2] = a0, a1, a2
			}
		case bpp == 4 && n >= 4:
			a0, a1, a2, a3 := row[0], row[1], row[2], row[3]
			for i := 4; i+4 <= n; i += 4 {
				r := row[i : i+4 : i+4]
				a0, a1, a2, a3 = r[0]+a0, r[1]+a1, r[2]+a2, r[3]+a3
				r[0], r[1], r[2], r[3] = a0, a1, a2, a3
			}
		default:
			for i := bpp; i < n; i++ {
				row[i] += row[i-bpp]
			}
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
		} else if bpp == 4 {
			paeth4(row, prev[:n])
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

// paeth4 is paeth for 4-byte pixels (8-bit truecolour with alpha), as paeth3.
func paeth4(row, prev []byte) {
	if len(row) < 4 || len(prev) < len(row) {
		paeth(row, prev, 4)
		return
	}
	row[0] += prev[0]
	row[1] += prev[1]
	row[2] += prev[2]
	row[3] += prev[3]
	a0, a1, a2, a3 := int(row[0]), int(row[1]), int(row[2]), int(row[3])
	c0, c1, c2, c3 := int(prev[0]), int(prev[1]), int(prev[2]), int(prev[3])
	for i := 4; i+4 <= len(row); i += 4 {
		r := row[i : i+4 : i+4]
		u := prev[i : i+4 : i+4]
		b0, b1, b2, b3 := int(u[0]), int(u[1]), int(u[2]), int(u[3])
		a0 = int(byte(int(r[0]) + paethPredict(a0, b0, c0)))
		a1 = int(byte(int(r[1]) + paethPredict(a1, b1, c1)))
		a2 = int(byte(int(r[2]) + paethPredict(a2, b2, c2)))
		a3 = int(byte(int(r[3]) + paethPredict(a3, b3, c3)))
		r[0], r[1], r[2], r[3] = byte(a0), byte(a1), byte(a2), byte(a3)
		c0, c1, c2, c3 = b0, b1, b2, b3
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

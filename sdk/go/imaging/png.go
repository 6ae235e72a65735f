package imaging

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
)

// DecodePNG decodes a PNG image with the standard library's image/png and packs it as RGB
// (colour channels as stored, alpha ignored: see FromImage).
func (d *Decoder) DecodePNG(data []byte) (*RGB, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if cfg.Width*cfg.Height > d.maxPixels() {
		return nil, FormatError(fmt.Sprintf("png: image of %dx%d pixels is larger than the limit of %d pixels", cfg.Width, cfg.Height, d.maxPixels()))
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return d.FromImage(img), nil
}

// FromImage packs any image.Image as RGB into the Decoder's buffer. The types the standard
// decoders return (*image.NRGBA, *image.RGBA, *image.Gray, *image.Paletted, *image.YCbCr)
// are converted by specialised loops; any other type goes through color.NRGBAModel pixel by
// pixel. Colours are the NRGBA (non-premultiplied) values, alpha dropped; *image.RGBA's
// stored values are taken as they are.
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

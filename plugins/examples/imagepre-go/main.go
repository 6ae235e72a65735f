// Command imagepre-go is an edgehost pre plugin: it decodes a JPEG or PNG request body,
// resizes it (bilinear) to the model's input height and width, and writes the NHWC input
// tensor in place: uint8 as raw pixels, int8 as pixel-128, float32 as (pixel-mean)/std.
package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/sdk/go/edgehost"
)

type params struct {
	Mean float32 `json:"mean"`
	Std  float32 `json:"std"`
}

var cfg = params{Mean: 127.5, Std: 127.5}

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

func pre(req *edgehost.PreRequest) error {
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
	img, format, err := image.Decode(bytes.NewReader(req.Input))
	if err != nil {
		if err == image.ErrFormat {
			return edgehost.Unsupported("request body is not a JPEG or PNG image")
		}
		return edgehost.BadInput("cannot decode image: %v", err)
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx()*b.Dy() > 64<<20 {
		return edgehost.BadInput("%s image of %dx%d pixels is empty or too large", format, b.Dx(), b.Dy())
	}
	rgb := toRGB(img)
	h, w, c := t.Shape[1], t.Shape[2], t.Shape[3]
	resize(rgb, b.Dx(), b.Dy(), w, h, c, t)
	return nil
}

// toRGB packs an image into 8-bit RGB, with fast paths for the decoders' own types.
func toRGB(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]byte, 0, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := m.YOffset(x, y), m.COffset(x, y)
				r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				out = append(out, r, g, bb)
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w*4]
			for x := 0; x < w; x++ {
				out = append(out, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w*4]
			for x := 0; x < w; x++ {
				out = append(out, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			for _, v := range m.Pix[y*m.Stride : y*m.Stride+w] {
				out = append(out, v, v, v)
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out = append(out, c.R, c.G, c.B)
			}
		}
	}
	return out
}

// resize samples src (sw×sh RGB) bilinearly at the centres of a dw×dh grid and stores each
// channel value into t, converted for its dtype.
func resize(src []byte, sw, sh, dw, dh, channels int, t *edgehost.Tensor) {
	sx := float32(sw) / float32(dw)
	sy := float32(sh) / float32(dh)
	i := 0
	for y := 0; y < dh; y++ {
		fy := (float32(y)+0.5)*sy - 0.5
		y0, wy := split(fy, sh)
		y1 := min(y0+1, sh-1)
		for x := 0; x < dw; x++ {
			fx := (float32(x)+0.5)*sx - 0.5
			x0, wx := split(fx, sw)
			x1 := min(x0+1, sw-1)
			var px [3]float32
			for c := 0; c < 3; c++ {
				a := float32(src[(y0*sw+x0)*3+c])*(1-wx) + float32(src[(y0*sw+x1)*3+c])*wx
				b := float32(src[(y1*sw+x0)*3+c])*(1-wx) + float32(src[(y1*sw+x1)*3+c])*wx
				px[c] = a*(1-wy) + b*wy
			}
			if channels == 1 {
				store(t, i, 0.299*px[0]+0.587*px[1]+0.114*px[2])
				i++
				continue
			}
			for c := 0; c < 3; c++ {
				store(t, i, px[c])
				i++
			}
		}
	}
}

func split(f float32, n int) (int, float32) {
	if f < 0 {
		return 0, 0
	}
	i := int(f)
	if i >= n-1 {
		return n - 1, 0
	}
	return i, f - float32(i)
}

func store(t *edgehost.Tensor, i int, pixel float32) {
	switch t.DType {
	case abi.UInt8:
		t.Data[i] = uint8(pixel + 0.5)
	case abi.Int8:
		t.Data[i] = byte(int8(int(pixel+0.5) - 128))
	default:
		t.SetFloat(i, (pixel-cfg.Mean)/cfg.Std)
	}
}

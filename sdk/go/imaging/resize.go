package imaging

import "fmt"

// A Resizer resamples packed RGB bilinearly, with half-pixel centres, into a model's NHWC
// input tensor (batch 1): dst holds h rows of w pixels of c channels, c = 3 (R, G, B) or
// c = 1 (BT.601 luma 0.299 R + 0.587 G + 0.114 B). It keeps its tap tables for the next call;
// the zero value is ready to use.
//
// Every kernel computes the same interpolated value, in float32, for a given output sample;
// they differ only in how it is stored.
type Resizer struct {
	xs    []tap
	hrows [2][]float32 // two source rows interpolated horizontally
	ys    [2]int       // which
}

// tap is one output column's source columns (byte offsets in a row) and weights.
type tap struct {
	a, b   int32   // byte offsets of the left and right source pixels
	wa, wb float32 // their weights, 1-f and f
}

// Check reports whether dst of n elements can hold a w×h×c tensor and src is usable.
func check(n, w, h, c int, src *RGB) error {
	if c != 1 && c != 3 {
		return fmt.Errorf("imaging: %d channels, want 1 or 3", c)
	}
	if w <= 0 || h <= 0 || n < w*h*c {
		return fmt.Errorf("imaging: tensor of %d elements cannot hold %dx%dx%d", n, w, h, c)
	}
	if src == nil || src.W <= 0 || src.H <= 0 || len(src.Pix) < src.W*src.H*3 {
		return fmt.Errorf("imaging: empty or inconsistent source image")
	}
	return nil
}

// split maps a source coordinate to its lower pixel and the weight of the next one, as
// clamped at the edges.
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

func (r *Resizer) taps(w int, src *RGB) []tap {
	if cap(r.xs) < w {
		r.xs = make([]tap, w)
	}
	xs := r.xs[:w]
	sx := float32(src.W) / float32(w)
	for x := range xs {
		x0, f := split((float32(x)+0.5)*sx-0.5, src.W)
		x1 := min(x0+1, src.W-1)
		xs[x] = tap{a: int32(3 * x0), b: int32(3 * x1), wa: 1 - f, wb: f}
	}
	return xs
}

// hinterp fills row (3 floats per output pixel) with source row src interpolated
// horizontally at the taps xs. All arithmetic is inline: no call per pixel.
func hinterp(row []float32, xs []tap, src []byte) {
	for x := range xs {
		t := &xs[x]
		a := src[t.a : t.a+3 : t.a+3]
		b := src[t.b : t.b+3 : t.b+3]
		o := row[3*x : 3*x+3 : 3*x+3]
		o[0] = float32(a[0])*t.wa + float32(b[0])*t.wb
		o[1] = float32(a[1])*t.wa + float32(b[1])*t.wb
		o[2] = float32(a[2])*t.wa + float32(b[2])*t.wb
	}
}

// hrow returns source row y interpolated horizontally, from one of two cached rows; the
// row other than keep is the one replaced. Output rows walk the source rows in order, so
// each source row is interpolated once.
func (r *Resizer) hrow(y, keep int, xs []tap, src *RGB) []float32 {
	for i := range r.ys {
		if r.ys[i] == y {
			return r.hrows[i]
		}
	}
	i := 0
	if r.ys[0] == keep {
		i = 1
	}
	r.ys[i] = y
	stride := src.W * 3
	hinterp(r.hrows[i], xs, src.Pix[y*stride:][:stride])
	return r.hrows[i]
}

// resample calls store for every output row y with the horizontally interpolated source
// rows above and below it and their weights: sample = top·wa + bot·wb.
func (r *Resizer) resample(w, h int, src *RGB, store func(y int, top, bot []float32, wa, wb float32)) {
	xs := r.taps(w, src)
	for i := range r.hrows {
		if cap(r.hrows[i]) < 3*w {
			r.hrows[i] = make([]float32, 3*w)
		}
		r.hrows[i] = r.hrows[i][:3*w]
	}
	r.ys = [2]int{-1, -1}
	sy := float32(src.H) / float32(h)
	for y := 0; y < h; y++ {
		y0, f := split((float32(y)+0.5)*sy-0.5, src.H)
		y1 := min(y0+1, src.H-1)
		top := r.hrow(y0, -1, xs, src)
		bot := r.hrow(y1, y0, xs, src)
		store(y, top, bot, 1-f, f)
	}
}

// Uint8 stores each sample rounded, 0..255 (a uint8 tensor's Data).
func (r *Resizer) Uint8(dst []byte, w, h, c int, src *RGB) error {
	return r.bytes(dst, w, h, c, src, 0)
}

// Int8 stores each sample rounded, minus 128: -128..127 (an int8 tensor's Data).
func (r *Resizer) Int8(dst []byte, w, h, c int, src *RGB) error {
	return r.bytes(dst, w, h, c, src, 128)
}

func (r *Resizer) bytes(dst []byte, w, h, c int, src *RGB, off int) error {
	if err := check(len(dst), w, h, c, src); err != nil {
		return err
	}
	r.resample(w, h, src, func(y int, top, bot []float32, wa, wb float32) {
		out := dst[y*w*c : (y+1)*w*c]
		if c == 1 {
			for x := range out {
				t, b := top[3*x:3*x+3:3*x+3], bot[3*x:3*x+3:3*x+3]
				p0, p1, p2 := t[0]*wa+b[0]*wb, t[1]*wa+b[1]*wb, t[2]*wa+b[2]*wb
				out[x] = byte(int(0.299*p0+0.587*p1+0.114*p2+0.5) - off)
			}
			return
		}
		top, bot = top[:len(out)], bot[:len(out)]
		for i := range out {
			out[i] = byte(int(top[i]*wa+bot[i]*wb+0.5) - off)
		}
	})
	return nil
}

// Float32 stores (sample - mean[ch]) / std[ch] per channel ch (for c = 1, mean[0] and
// std[0]) into a float32 tensor's elements (edgehost.Tensor.Float32()).
func (r *Resizer) Float32(dst []float32, w, h, c int, src *RGB, mean, std [3]float32) error {
	if err := check(len(dst), w, h, c, src); err != nil {
		return err
	}
	r.resample(w, h, src, func(y int, top, bot []float32, wa, wb float32) {
		out := dst[y*w*c : (y+1)*w*c]
		if c == 1 {
			for x := range out {
				t, b := top[3*x:3*x+3:3*x+3], bot[3*x:3*x+3:3*x+3]
				p0, p1, p2 := t[0]*wa+b[0]*wb, t[1]*wa+b[1]*wb, t[2]*wa+b[2]*wb
				out[x] = (0.299*p0 + 0.587*p1 + 0.114*p2 - mean[0]) / std[0]
			}
			return
		}
		for x := 0; x < w; x++ {
			t, b := top[3*x:3*x+3:3*x+3], bot[3*x:3*x+3:3*x+3]
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0] = (t[0]*wa + b[0]*wb - mean[0]) / std[0]
			o[1] = (t[1]*wa + b[1]*wb - mean[1]) / std[1]
			o[2] = (t[2]*wa + b[2]*wb - mean[2]) / std[2]
		}
	})
	return nil
}

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
	need  []bool       // rowResize: the source rows some output row reads
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

// target is where a resize writes: a uint8 or int8 tensor's bytes (off 0 or 128), or a
// float32 tensor's elements normalised by mean and std.
type target struct {
	w, h, c   int
	u8        []byte
	off       int
	f32       []float32
	mean, std [3]float32
}

// store writes output row y from the horizontally interpolated source rows above and below
// it and their weights: sample = top·wa + bot·wb.
func (t *target) store(y int, top, bot []float32, wa, wb float32) {
	w, c, off := t.w, t.c, t.off
	if t.f32 == nil {
		out := t.u8[y*w*c : (y+1)*w*c]
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
		return
	}
	out := t.f32[y*w*c : (y+1)*w*c]
	mean, std := t.mean, t.std
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
}

// prepare sizes the row buffers for an output w pixels wide.
func (r *Resizer) prepare(w int) {
	for i := range r.hrows {
		if cap(r.hrows[i]) < 3*w {
			r.hrows[i] = make([]float32, 3*w)
		}
		r.hrows[i] = r.hrows[i][:3*w]
	}
	r.ys = [2]int{-1, -1}
}

// resample writes every output row of t from src.
func (r *Resizer) resample(t *target, src *RGB) {
	w, h := t.w, t.h
	xs := r.taps(w, src)
	r.prepare(w)
	sy := float32(src.H) / float32(h)
	for y := 0; y < h; y++ {
		y0, f := split((float32(y)+0.5)*sy-0.5, src.H)
		y1 := min(y0+1, src.H-1)
		top := r.hrow(y0, -1, xs, src)
		bot := r.hrow(y1, y0, xs, src)
		t.store(y, top, bot, 1-f, f)
	}
}

// Uint8 stores each sample rounded, 0..255 (a uint8 tensor's Data).
func (r *Resizer) Uint8(dst []byte, w, h, c int, src *RGB) error {
	if err := check(len(dst), w, h, c, src); err != nil {
		return err
	}
	r.resample(&target{w: w, h: h, c: c, u8: dst}, src)
	return nil
}

// Int8 stores each sample rounded, minus 128: -128..127 (an int8 tensor's Data).
func (r *Resizer) Int8(dst []byte, w, h, c int, src *RGB) error {
	if err := check(len(dst), w, h, c, src); err != nil {
		return err
	}
	r.resample(&target{w: w, h: h, c: c, u8: dst, off: 128}, src)
	return nil
}

// Float32 stores (sample - mean[ch]) / std[ch] per channel ch (for c = 1, mean[0] and
// std[0]) into a float32 tensor's elements (edgehost.Tensor.Float32()).
func (r *Resizer) Float32(dst []float32, w, h, c int, src *RGB, mean, std [3]float32) error {
	if err := check(len(dst), w, h, c, src); err != nil {
		return err
	}
	r.resample(&target{w: w, h: h, c: c, f32: dst, mean: mean, std: std}, src)
	return nil
}

// ---- resizing rows as they are decoded ---------------------------------------------------

// A Tensor is a model input that DecodeResize writes: H rows of W pixels of C channels (3:
// R, G, B; 1: luma), NHWC, batch 1. Exactly one of Uint8, Int8 and Float32 is set: the
// tensor's data, written as Resizer's method of the same name writes it.
type Tensor struct {
	W, H, C   int
	Uint8     []byte
	Int8      []byte
	Float32   []float32
	Mean, Std [3]float32 // Float32 only: (sample - Mean[ch]) / Std[ch]
}

func (t *Tensor) target() (*target, error) {
	tg := &target{w: t.W, h: t.H, c: t.C, mean: t.Mean, std: t.Std}
	n, set := 0, 0
	if t.Uint8 != nil {
		tg.u8, n, set = t.Uint8, len(t.Uint8), set+1
	}
	if t.Int8 != nil {
		tg.u8, tg.off, n, set = t.Int8, 128, len(t.Int8), set+1
	}
	if t.Float32 != nil {
		tg.f32, n, set = t.Float32, len(t.Float32), set+1
	}
	if set != 1 {
		return nil, fmt.Errorf("imaging: %d of Tensor's Uint8, Int8 and Float32 set, want 1", set)
	}
	return tg, check(n, t.W, t.H, t.C, &RGB{W: 1, H: 1, Pix: make([]byte, 3)})
}

// Resize writes t from a whole image: the Uint8, Int8 or Float32 method, as t says.
func (r *Resizer) Resize(t Tensor, src *RGB) error {
	tg, err := t.target()
	if err != nil {
		return err
	}
	return r.resize(tg, src)
}

// resize writes t from a whole image.
func (r *Resizer) resize(t *target, src *RGB) error {
	if src == nil || src.W <= 0 || src.H <= 0 || len(src.Pix) < src.W*src.H*3 {
		return fmt.Errorf("imaging: empty or inconsistent source image")
	}
	r.resample(t, src)
	return nil
}

// rowResize resizes an image whose rows arrive one at a time, in order: each output row is
// written as soon as the source rows it needs are in, from the same taps, weights and
// arithmetic as resample, so the tensor is the same to the bit. Only the source rows some
// output row uses are interpolated (need says which); the others are not even converted.
type rowResize struct {
	r          *Resizer
	t          *target
	srcW, srcH int
	xs         []tap
	sy         float32
	next       int // the next output row to write
	last       int // the last source row pushed
}

func (r *Resizer) rows(t *target, srcW, srcH int) *rowResize {
	xs := r.taps(t.w, &RGB{W: srcW, H: srcH})
	r.prepare(t.w)
	// The source rows some output row reads.
	if cap(r.need) < srcH {
		r.need = make([]bool, srcH)
	}
	r.need = r.need[:srcH]
	clear(r.need)
	sy := float32(srcH) / float32(t.h)
	for y := 0; y < t.h; y++ {
		y0, _ := split((float32(y)+0.5)*sy-0.5, srcH)
		r.need[y0], r.need[min(y0+1, srcH-1)] = true, true
	}
	return &rowResize{r: r, t: t, srcW: srcW, srcH: srcH, xs: xs, sy: sy, last: -1}
}

// needs reports whether source row y is read by some output row.
func (s *rowResize) needs(y int) bool { return s.r.need[y] }

// push takes source row y (packed RGB, srcW pixels), which needs(y), and writes every output
// row it completes. Rows must come in increasing order.
func (s *rowResize) push(y int, row []byte) {
	r := s.r
	i := 0 // the slot not holding the last row pushed: an output row reads at most y-1 and y
	if r.ys[0] == s.last {
		i = 1
	}
	r.ys[i] = y
	hinterp(r.hrows[i], s.xs, row[:3*s.srcW])
	s.last = y
	slot := func(y int) []float32 {
		if r.ys[0] == y {
			return r.hrows[0]
		}
		return r.hrows[1]
	}
	for ; s.next < s.t.h; s.next++ {
		y0, f := split((float32(s.next)+0.5)*s.sy-0.5, s.srcH)
		y1 := min(y0+1, s.srcH-1)
		if y1 > y {
			break
		}
		s.t.store(s.next, slot(y0), slot(y1), 1-f, f)
	}
}

// done reports whether every output row has been written.
func (s *rowResize) done() bool { return s.next == s.t.h }

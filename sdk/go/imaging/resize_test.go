package imaging

import (
	"math"
	"math/rand"
	"runtime"
	"testing"
)

var exactFloat = runtime.GOARCH == "amd64" || runtime.GOARCH == "wasm"

// refResize is the resize imagepre-go 1.0 did, per pixel: the kernels must give exactly its
// values. store receives each output element's index and interpolated value.
func refResize(src *RGB, dw, dh, channels int, store func(i int, v float32)) {
	split := func(f float32, n int) (int, float32) {
		if f < 0 {
			return 0, 0
		}
		i := int(f)
		if i >= n-1 {
			return n - 1, 0
		}
		return i, f - float32(i)
	}
	sw, sh := src.W, src.H
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
				a := float32(src.Pix[(y0*sw+x0)*3+c])*(1-wx) + float32(src.Pix[(y0*sw+x1)*3+c])*wx
				b := float32(src.Pix[(y1*sw+x0)*3+c])*(1-wx) + float32(src.Pix[(y1*sw+x1)*3+c])*wx
				px[c] = a*(1-wy) + b*wy
			}
			if channels == 1 {
				store(i, 0.299*px[0]+0.587*px[1]+0.114*px[2])
				i++
				continue
			}
			for c := 0; c < 3; c++ {
				store(i, px[c])
				i++
			}
		}
	}
}

func randomRGB(w, h int, seed int64) *RGB {
	r := rand.New(rand.NewSource(seed))
	img := &RGB{W: w, H: h, Pix: make([]byte, w*h*3)}
	r.Read(img.Pix)
	return img
}

func TestResizeMatchesReference(t *testing.T) {
	var rs Resizer
	mean, std := [3]float32{127.5, 120, 110}, [3]float32{127.5, 60, 2}
	for _, sz := range []struct{ sw, sh, dw, dh int }{
		{133, 200, 224, 224}, {480, 320, 300, 300}, {504, 378, 257, 257}, {504, 378, 128, 128},
		{1, 1, 5, 3}, {7, 3, 1, 1}, {300, 300, 300, 300}, {2, 9, 17, 4},
	} {
		src := randomRGB(sz.sw, sz.sh, int64(sz.sw*1000+sz.sh))
		for _, c := range []int{3, 1} {
			n := sz.dw * sz.dh * c
			u8, i8, f32 := make([]byte, n), make([]byte, n), make([]float32, n)
			if err := rs.Uint8(u8, sz.dw, sz.dh, c, src); err != nil {
				t.Fatal(err)
			}
			if err := rs.Int8(i8, sz.dw, sz.dh, c, src); err != nil {
				t.Fatal(err)
			}
			if err := rs.Float32(f32, sz.dw, sz.dh, c, src, mean, std); err != nil {
				t.Fatal(err)
			}
			bad := 0
			refResize(src, sz.dw, sz.dh, c, func(i int, v float32) {
				ch := i % c
				// Exact where the compiler does not fuse multiply-adds (amd64, wasm); elsewhere
				// (arm64) a fused rounding may differ by one unit.
				want := (v - mean[ch]) / std[ch]
				if d := int(u8[i]) - int(uint8(v+0.5)); d < -1 || d > 1 || (exactFloat && d != 0) ||
					int(int8(i8[i]))-int(int8(int(v+0.5)-128)) != d ||
					math.Abs(float64(f32[i]-want)) > 1e-5*math.Max(1, math.Abs(float64(want))) || (exactFloat && f32[i] != want) {
					if bad++; bad < 5 {
						t.Errorf("%v c=%d element %d: got %d %d %g, want %d %d %g", sz, c, i, u8[i], int8(i8[i]), f32[i],
							uint8(v+0.5), int8(int(v+0.5)-128), (v-mean[ch])/std[ch])
					}
				}
			})
		}
	}
}

func TestResizeChecks(t *testing.T) {
	var rs Resizer
	src := randomRGB(4, 4, 1)
	if err := rs.Uint8(make([]byte, 10), 2, 2, 3, src); err == nil {
		t.Error("short tensor accepted")
	}
	if err := rs.Uint8(make([]byte, 16), 2, 2, 4, src); err == nil {
		t.Error("4 channels accepted")
	}
	if err := rs.Uint8(make([]byte, 12), 2, 2, 3, &RGB{W: 4, H: 4}); err == nil {
		t.Error("empty source accepted")
	}
	// Steady state: the taps and the row buffer are reused.
	f32, u8 := make([]float32, 3*3*3), make([]byte, 3*3)
	if n := testing.AllocsPerRun(10, func() {
		_ = rs.Float32(f32, 3, 3, 3, src, [3]float32{}, [3]float32{1, 1, 1})
		_ = rs.Uint8(u8, 3, 3, 1, src)
	}); n != 0 {
		t.Errorf("%v allocations per resize, want 0", n)
	}
}

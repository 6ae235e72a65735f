package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/draw"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// The progressive fixtures of imagepre-c's native tests (test/testdata/make.sh): baseline
// JPEGs and their lossless progressive transcodes by jpegtran.
var progressiveFixtures = filepath.Join(testplugins.Root, "plugins/examples/imagepre-c/test/testdata")

// preRunner runs imagepre-c's pre call on a fresh instance with an H×W×3 uint8 input tensor.
type preRunner struct {
	t      *testing.T
	ctx    context.Context
	m      *plugin.Module
	budget uint32
}

// run returns a copy of the tensor, or the call's error, and the guest memory's high-water
// mark above what the instance had after binding.
func (p preRunner) run(body []byte, H, W int) ([]byte, uint32, error) {
	t := p.t
	inst, err := p.m.NewInstance(p.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(p.ctx)
	if err := inst.Bind(p.ctx, []plugin.Tensor{{Name: "input", DType: abi.UInt8, Shape: []int{1, H, W, 3}, Bytes: H * W * 3}}); err != nil {
		t.Fatal(err)
	}
	before := inst.MemorySize()
	buf, err := inst.InputBuffer(p.ctx, uint32(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, body)
	if err := inst.Pre(p.ctx, uint32(len(body))); err != nil {
		return nil, inst.MemorySize() - before, err
	}
	tensor, _ := inst.TensorData(0)
	return bytes.Clone(tensor), inst.MemorySize() - before, nil
}

func loadImagePreC(t *testing.T, budget uint32) preRunner {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(t, "imagepre-c"), MemoryLimit: uint64(budget), WantKind: abi.KindPre})
	if err != nil {
		t.Fatal(err)
	}
	return preRunner{t: t, ctx: ctx, m: m, budget: budget}
}

// goReference decodes body with Go's image/jpeg (which decodes progressive JPEGs) and
// averages it over f×f boxes (what a 1/f DCT-domain decode approximates): ceil(w/f) ×
// ceil(h/f) RGB pixels, edge boxes averaging the pixels that exist.
func goReference(t *testing.T, body []byte, f int) (pix []float64, w, h int) {
	im, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b := im.Bounds()
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, im, b.Min, draw.Src)
	W, H := b.Dx(), b.Dy()
	w, h = (W+f-1)/f, (H+f-1)/f
	pix = make([]float64, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var sum [3]float64
			n := 0
			for dy := 0; dy < f && y*f+dy < H; dy++ {
				for dx := 0; dx < f && x*f+dx < W; dx++ {
					o := rgba.PixOffset(x*f+dx, y*f+dy)
					for c := 0; c < 3; c++ {
						sum[c] += float64(rgba.Pix[o+c])
					}
					n++
				}
			}
			for c := 0; c < 3; c++ {
				pix[(y*w+x)*3+c] = sum[c] / float64(n)
			}
		}
	}
	return pix, w, h
}

// madBound is the largest mean absolute difference per channel allowed between imagepre-c's
// decode at scale 1/f and Go's image/jpeg decode box-averaged by f. At full size only IDCT
// rounding differs (measured: at most 0.021). The N-point IDCT of the N×N lowest
// coefficients is not a box filter, and the fixtures are 171×115 crops of fine texture:
// measured up to 4.4 (1/2), 7.8 (1/4), 2.5 (1/8; edge blocks average padding), the C
// harness's PSNR against box filtering on them 33, 28, 35 dB. A decoder that loses its
// place in the scan data lands far above these; the exact check is the baseline twin's.
var madBound = map[int]float64{1: 1.0, 2: 5.0, 4: 9.0, 8: 3.0}

// TestImagePreProgressiveJPEG: imagepre-c decodes progressive JPEGs (issue 24; it answered
// 415 for every one). Through the real plugin, with the tensor at the image's size or at
// 1/2, 1/4, 1/8 of it (so the plugin decodes at that DCT scale and the bilinear resize is
// the identity), each channel's mean absolute difference from Go's image/jpeg decode
// (box-averaged to the scale) stays within madBound; and each progressive file gives
// exactly the tensor of its baseline twin. 4:4:4, 4:2:2, 4:2:0, 4:4:0, greyscale, restart
// intervals, libjpeg's default scan script and a custom one; and CMYK and YCCK (Adobe APP14
// transform 0 and 2, baseline and progressive), which it also answered 415 for, converted to
// RGB as Go's image/jpeg and color.CMYK do.
func TestImagePreProgressiveJPEG(t *testing.T) {
	p := loadImagePreC(t, 32<<20)
	for _, name := range []string{"s444", "s422", "s420", "s440", "gray", "rst", "big", "cmyk", "ycck"} {
		base, err := os.ReadFile(filepath.Join(progressiveFixtures, name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		progs, _ := filepath.Glob(filepath.Join(progressiveFixtures, name+"-[ps].jpg"))
		if len(progs) == 0 {
			t.Fatalf("no progressive fixtures for %s in %s", name, progressiveFixtures)
		}
		for _, path := range progs {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []int{1, 2, 4, 8} {
				// The reference decodes the baseline twin (the same coefficients): Go's
				// image/jpeg refuses progressive files with restart intervals (rst-*.jpg,
				// s420-s.jpg: "missing 0xff00 sequence"), as djpeg does not.
				ref, w, h := goReference(t, base, f)
				got, _, err := p.run(body, h, w)
				if err != nil {
					t.Errorf("%s at 1/%d: %v", filepath.Base(path), f, err)
					continue
				}
				var mad [3]float64
				for i, v := range got {
					d := float64(v) - ref[i]
					if d < 0 {
						d = -d
					}
					mad[i%3] += d
				}
				bound := madBound[f]
				for c := range mad {
					mad[c] /= float64(w * h)
					if mad[c] > bound {
						t.Errorf("%s at 1/%d (%dx%d): channel %d differs from Go's image/jpeg by %.3f on average, want <= %.1f",
							filepath.Base(path), f, w, h, c, mad[c], bound)
					}
				}
				t.Logf("%s at 1/%d (%dx%d): MAD against Go's image/jpeg R %.3f G %.3f B %.3f", filepath.Base(path), f, w, h, mad[0], mad[1], mad[2])
				want, _, err := p.run(base, h, w)
				if err != nil {
					t.Fatalf("%s.jpg at 1/%d: %v", name, f, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s at 1/%d: the tensor differs from its baseline twin %s.jpg's", filepath.Base(path), f, name)
				}
			}
		}
	}
	// Arithmetic coding stays refused (415), naming it, and so does a 4-component JPEG
	// without the Adobe marker that says CMYK or YCCK; a truncated progressive file is bad
	// input (400).
	arith, _ := os.ReadFile(filepath.Join(progressiveFixtures, "arith-p.jpg"))
	full, _ := os.ReadFile(filepath.Join(progressiveFixtures, "s420-s.jpg"))
	cmyk, _ := os.ReadFile(filepath.Join(progressiveFixtures, "cmyk.jpg"))
	i := bytes.Index(cmyk, []byte("\xff\xee\x00\x0eAdobe")) // APP14, length 14
	if i < 0 {
		t.Fatal("cmyk.jpg has no Adobe APP14 segment")
	}
	noAdobe := append(bytes.Clone(cmyk[:i]), cmyk[i+2+0x0e:]...)
	for _, c := range []struct {
		name   string
		body   []byte
		status abi.Status
		text   string
	}{
		{"arith-p.jpg", arith, abi.StatusUnsupported, "arithmetic-coded"},
		{"s420-s.jpg cut in half", full[:len(full)/2], abi.StatusBadInput, "truncated"},
		{"s420-s.jpg without its EOI", full[:len(full)-2], abi.StatusBadInput, "truncated"},
		{"cmyk.jpg without its Adobe APP14", noAdobe, abi.StatusUnsupported, "without an Adobe APP14"},
	} {
		_, _, err := p.run(c.body, 32, 32)
		var se *plugin.StatusError
		if !errors.As(err, &se) || se.Status != c.status || !strings.Contains(se.Msg, c.text) {
			t.Errorf("%s: %v, want status %d naming %q", c.name, err, c.status, c.text)
		}
	}
}

// upscaled is ssd_example.jpg stretched to w×h (nearest neighbour, then the photo's own
// detail is what the JPEG encodes), as a baseline 4:2:0 JPEG of quality 90.
func upscaled(t *testing.T, w, h int) []byte {
	src, err := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := jpeg.Decode(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	b := im.Bounds()
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, im, b.Min, draw.Src)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		sy := y * b.Dy() / h
		for x := 0; x < w; x++ {
			sx := x * b.Dx() / w
			copy(out.Pix[out.PixOffset(x, y):][:4], rgba.Pix[rgba.PixOffset(sx, sy):][:4])
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImagePreProgressive12Mpx: a 12-megapixel (4032×3024) progressive JPEG for the detect
// model's 300×300 input decodes within the shipped 32 MiB budget (it decodes at 1/8, keeping
// one coefficient and a non-zero mask per block), gives exactly the tensor of its baseline
// twin, and the same frame for an input that needs it at full size (2100×1600: 55 MiB of
// coefficients and samples) is refused with status 5 (too_large, 413) saying what did not
// fit, not 500. Needs jpegtran (Debian libjpeg-turbo-progs) to make the progressive file.
func TestImagePreProgressive12Mpx(t *testing.T) {
	jt, err := exec.LookPath("jpegtran")
	if err != nil { // make brokers fetches it into .deps without root
		jt, err = exec.LookPath(filepath.Join(testplugins.Root, ".deps/bin/jpegtran"))
	}
	if err != nil {
		t.Skip("jpegtran is not installed (Debian package libjpeg-turbo-progs): no 12 Mpx progressive JPEG to test with")
	}
	base := upscaled(t, 4032, 3024)
	cmd := exec.Command(jt, "-progressive")
	cmd.Stdin = bytes.NewReader(base)
	prog, err := cmd.Output()
	if err != nil {
		t.Fatalf("jpegtran -progressive: %v", err)
	}
	p := loadImagePreC(t, 32<<20)
	got, peak, err := p.run(prog, 300, 300)
	if err != nil {
		t.Fatalf("12 Mpx progressive JPEG (%.1f MB) for 300x300: %v", float64(len(prog))/1e6, err)
	}
	t.Logf("12 Mpx progressive JPEG, %.1f MB, for 300x300: guest memory grew %.1f MiB during the request (budget 32 MiB)",
		float64(len(prog))/1e6, float64(peak)/(1<<20))
	if limit := uint32(len(prog)) + 6<<20; peak > limit {
		t.Errorf("the request took %.1f MiB of guest memory, want at most the body + 6 MiB (%.1f MiB)",
			float64(peak)/(1<<20), float64(limit)/(1<<20))
	}
	want, bpeak, err := p.run(base, 300, 300)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("its baseline twin (%.1f MB): guest memory grew %.1f MiB", float64(len(base))/1e6, float64(bpeak)/(1<<20))
	if !bytes.Equal(got, want) {
		t.Errorf("the progressive frame's tensor differs from its baseline twin's")
	}
	_, _, err = p.run(prog, 1600, 2100)
	var se *plugin.StatusError
	if !errors.As(err, &se) || se.Status != abi.StatusTooLarge || !strings.Contains(err.Error(), "progressive") ||
		!strings.Contains(err.Error(), "memory budget of 32 MiB") {
		t.Errorf("12 Mpx progressive JPEG at full size: %v, want status 5 (too_large) naming the progressive coefficients and the budget", err)
	} else {
		t.Logf("at full size: %v", err)
	}
}

// BenchmarkProgressiveJPEG: the pre stage on the benchmark's 12 Mpx frame
// (.deps/models/frame_12mp.jpg, `make bench-data`) for the detect model's 300×300 input, as
// stored (baseline) and transcoded losslessly to progressive by jpegtran: the same
// coefficients, so the difference is the progressive path's cost (all scans' symbols decoded
// one at a time, the coefficients kept between scans). With -count N the two alternate.
func BenchmarkProgressiveJPEG(b *testing.B) {
	base, err := os.ReadFile(testplugins.Model("frame_12mp.jpg"))
	if err != nil {
		b.Skip("no .deps/models/frame_12mp.jpg: run `make bench-data`")
	}
	jt, err := exec.LookPath("jpegtran")
	if err != nil { // make brokers fetches it into .deps without root
		jt, err = exec.LookPath(filepath.Join(testplugins.Root, ".deps/bin/jpegtran"))
	}
	if err != nil {
		b.Skip("jpegtran is not installed (Debian libjpeg-turbo-progs)")
	}
	cmd := exec.Command(jt, "-progressive")
	cmd.Stdin = bytes.NewReader(base)
	prog, err := cmd.Output()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(b, "imagepre-c"), MemoryLimit: 32 << 20, WantKind: abi.KindPre})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
	}{{"baseline", base}, {"progressive", prog}} {
		b.Run(c.name, func(b *testing.B) {
			inst, err := m.NewInstance(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer inst.Close(ctx)
			if err := inst.Bind(ctx, []plugin.Tensor{{Name: "input", DType: abi.UInt8, Shape: []int{1, 300, 300, 3}, Bytes: 300 * 300 * 3}}); err != nil {
				b.Fatal(err)
			}
			buf, err := inst.InputBuffer(ctx, uint32(len(c.body)))
			if err != nil {
				b.Fatal(err)
			}
			copy(buf, c.body)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := inst.Pre(ctx, uint32(len(c.body))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
	"golang.org/x/sys/unix"
)

// sample is one measured stage: wall-clock and CPU time of the calling thread.
type sample struct{ wall, cpu time.Duration }

func (s sample) add(o sample) sample { return sample{s.wall + o.wall, s.cpu + o.cpu} }

// threadCPU is the CPU time of the calling OS thread (the caller holds LockOSThread).
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

type clock struct {
	w time.Time
	c time.Duration
}

func start() clock           { return clock{time.Now(), threadCPU()} }
func (k clock) stop() sample { return sample{time.Since(k.w), threadCPU() - k.c} }

// workload is one input image and model, with the plugins that serve it.
type workload struct {
	name, image, model string
	float              bool
	post               string // "classify", "ssd" or "" (no post plugin for this model)
	postC, postGo      string // post plugins used with imagepre-c and imagepre-go
	postParams         map[string]any
}

func workloads(root string) []workload {
	m := func(f string) string { return filepath.Join(root, ".deps/models", f) }
	frame := m("frame_12mp.jpg")
	ssdParams := func() map[string]any {
		return map[string]any{"threshold": 0.5, "label_offset": 1, "labels": lines(m("ssd_labelmap.txt"))}
	}
	return []workload{
		{name: "peacock.png 133×200 → mobilenet u8 224²", image: m("peacock.png"), model: m("mobilenet_quant_v1_224.tflite"),
			post: "classify", postC: "classify-c", postGo: "classify-go",
			postParams: map[string]any{"top_k": 5, "labels": lines(m("mobilenet_labels.txt"))}},
		{name: "ssd_example.jpg 1920×1280 → ssd u8 300²", image: m("ssd_example.jpg"), model: m("ssd_detect.tflite"),
			post: "ssd", postC: "ssd-c", postGo: "ssd-go", postParams: ssdParams()},
		{name: "frame_12mp.jpg 4032×3024 → ssd u8 300²", image: frame, model: m("ssd_detect.tflite"),
			post: "ssd", postC: "ssd-c", postGo: "ssd-go", postParams: ssdParams()},
		// The same pixels as a progressive JPEG: what `detect` gets from much of the web.
		{name: "frame_12mp_progressive.jpg 4032×3024 → ssd u8 300²", image: m("frame_12mp_progressive.jpg"), model: m("ssd_detect.tflite"),
			post: "ssd", postC: "ssd-c", postGo: "ssd-go", postParams: ssdParams()},
		{name: "frame_12mp.jpg → face_detection f32 128²", image: frame, model: m("face_detection_short_range.tflite"), float: true},
		{name: "frame_12mp.jpg → deeplabv3 f32 257²", image: frame, model: m("deeplabv3_257_mv_gpu.tflite"), float: true},
	}
}

func lines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		fatalf("%v", err)
	}
	return strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
}

// ehWorker is what host/pipeline's worker is: a pre instance, an interpreter and a post
// instance (if any), the interpreter's tensors bound in the instances' memory (zero copy)
// when the library allows it. Built from the same host/plugin and host/tflite calls.
type ehWorker struct {
	pre, post *plugin.Instance
	it        *tflite.Interpreter
	zeroCopy  bool
}

func toTensors(ts []tflite.TensorInfo) []plugin.Tensor {
	out := make([]plugin.Tensor, len(ts))
	for i, t := range ts {
		out[i] = plugin.Tensor{Name: t.Name, DType: t.Type, Shape: t.Shape, Scale: t.Scale, ZeroPoint: t.ZeroPoint, Bytes: t.Bytes}
	}
	return out
}

func newEHWorker(ctx context.Context, m *tflite.Model, pre, post *plugin.Module) (*ehWorker, error) {
	w := &ehWorker{zeroCopy: tflite.Probe().CustomAllocation}
	var err error
	if w.it, err = m.NewInterpreter(); err != nil {
		return nil, err
	}
	bind := func(mod *plugin.Module, ts []tflite.TensorInfo, b func(int, unsafe.Pointer, int) error) (*plugin.Instance, error) {
		inst, err := mod.NewInstance(ctx)
		if err != nil {
			return nil, err
		}
		if err := inst.Bind(ctx, toTensors(ts)); err != nil {
			inst.Close(ctx)
			return nil, err
		}
		if w.zeroCopy {
			for n := range ts {
				d, p := inst.TensorData(n)
				if err := b(n, p, len(d)); err != nil {
					inst.Close(ctx)
					return nil, err
				}
			}
			if err := w.it.AllocateTensors(); err != nil {
				inst.Close(ctx)
				return nil, err
			}
		}
		return inst, nil
	}
	if w.pre, err = bind(pre, m.Inputs, w.it.BindInput); err == nil && post != nil {
		w.post, err = bind(post, m.Outputs, w.it.BindOutput)
	}
	if err != nil {
		w.close(ctx)
		return nil, err
	}
	return w, nil
}

// request is one whole request as host/pipeline's worker runs it: the body copied into the
// pre instance, edgehost_pre, invoke (with the copies of one-copy mode), edgehost_post.
// pre times only the edgehost_pre call; total the whole request.
type request struct {
	pre, inv, post, total sample
	res                   []byte
}

func (w *ehWorker) run(ctx context.Context, img []byte) (r request, err error) {
	all := start()
	buf, err := w.pre.InputBuffer(ctx, uint32(len(img)))
	if err != nil {
		return r, err
	}
	copy(buf, img)
	k := start()
	if err = w.pre.Pre(ctx, uint32(len(img))); err != nil {
		return r, err
	}
	r.pre = k.stop()
	k = start()
	if !w.zeroCopy {
		for n := range w.it.InputCount() {
			b, _ := w.pre.TensorData(n)
			copy(w.it.Input(n), b)
		}
	}
	if err = w.it.Invoke(); err != nil {
		return r, err
	}
	if !w.zeroCopy && w.post != nil {
		for n := range w.it.OutputCount() {
			b, _ := w.post.TensorData(n)
			copy(b, w.it.Output(n))
		}
	}
	r.inv = k.stop()
	if w.post != nil {
		k = start()
		var reqCtx []byte
		if w.pre != nil {
			reqCtx = w.pre.Context()
		}
		r.res, err = w.post.Post(ctx, reqCtx)
		r.post = k.stop()
	}
	r.total = all.stop()
	return r, err
}

// tensor runs edgehost_pre alone and returns a copy of the input tensor it wrote.
func (w *ehWorker) tensor(ctx context.Context, img []byte) ([]byte, error) {
	buf, err := w.pre.InputBuffer(ctx, uint32(len(img)))
	if err != nil {
		return nil, err
	}
	copy(buf, img)
	if err := w.pre.Pre(ctx, uint32(len(img))); err != nil {
		return nil, err
	}
	b, _ := w.pre.TensorData(0)
	return append([]byte(nil), b...), nil
}

func (w *ehWorker) close(ctx context.Context) {
	if w.it != nil {
		w.it.Close()
	}
	if w.pre != nil {
		w.pre.Close(ctx)
	}
	if w.post != nil {
		w.post.Close(ctx)
	}
}

// checkAgainstPipeline runs the request once through host/pipeline itself with the same
// modules and model, and checks that its result is what the bench's worker returned.
func checkAgainstPipeline(ctx context.Context, m *tflite.Model, pre, post *plugin.Module, img, want []byte) error {
	p, err := pipeline.New(ctx, pipeline.Spec{Name: "bench", Model: m, Pre: pre, Post: post, Workers: 1, QueueTimeout: time.Minute}, nil)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	var got []byte
	if _, err := p.Run(ctx, bytes.NewReader(img), len(img), func(b []byte, _ string) error {
		got = append(got, b...)
		return nil
	}); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("host/pipeline returned %.200q, the bench's worker %.200q", got, want)
	}
	return nil
}

// ---- native Go: what a Go programmer would write without a sandbox ----------------------

// nativePre decodes with image.Decode, resizes bilinearly (half-pixel centres, as the
// plugins do) and writes uint8 pixels or (x-127.5)/127.5 float32 into dst (NHWC).
func nativePre(data []byte, W, H int, float bool, dst []byte) error {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return err
	}
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	at := pixelFunc(img)
	type tap struct {
		i0, i1 int
		f      float32
	}
	taps := func(dst, src int) []tap {
		t := make([]tap, dst)
		scale := float32(src) / float32(dst)
		for i := range t {
			s := max((float32(i)+0.5)*scale-0.5, 0)
			i0 := min(int(s), src-1)
			t[i] = tap{i0, min(i0+1, src-1), min(s-float32(i0), 1)}
		}
		return t
	}
	tx, ty := taps(W, sw), taps(H, sh)
	f32 := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)/4)
	k := 0
	for y := range H {
		y0, y1, fy := ty[y].i0+b.Min.Y, ty[y].i1+b.Min.Y, ty[y].f
		for x := range W {
			x0, x1, fx := tx[x].i0+b.Min.X, tx[x].i1+b.Min.X, tx[x].f
			a, bb, c, d := at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1)
			for ch := range 3 {
				top := a[ch] + (bb[ch]-a[ch])*fx
				bot := c[ch] + (d[ch]-c[ch])*fx
				v := top + (bot-top)*fy
				if float {
					f32[k] = (v - 127.5) / 127.5
				} else {
					dst[k] = uint8(min(max(v+0.5, 0), 255))
				}
				k++
			}
		}
	}
	return nil
}

// pixelFunc returns an RGB accessor specialised to the decoder's image type.
func pixelFunc(img image.Image) func(x, y int) [3]float32 {
	switch m := img.(type) {
	case *image.YCbCr:
		return func(x, y int) [3]float32 {
			yi, ci := m.YOffset(x, y), m.COffset(x, y)
			r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			return [3]float32{float32(r), float32(g), float32(b)}
		}
	case *image.NRGBA:
		return func(x, y int) [3]float32 {
			p := m.Pix[m.PixOffset(x, y):]
			return [3]float32{float32(p[0]), float32(p[1]), float32(p[2])}
		}
	case *image.RGBA:
		return func(x, y int) [3]float32 {
			p := m.Pix[m.PixOffset(x, y):]
			return [3]float32{float32(p[0]), float32(p[1]), float32(p[2])}
		}
	case *image.Gray:
		return func(x, y int) [3]float32 {
			v := float32(m.Pix[m.PixOffset(x, y)])
			return [3]float32{v, v, v}
		}
	default:
		return func(x, y int) [3]float32 {
			r, g, b, _ := img.At(x, y).RGBA()
			return [3]float32{float32(r >> 8), float32(g >> 8), float32(b >> 8)}
		}
	}
}

// ---- the Python worker (Pillow + ai-edge-litert) -----------------------------------------

type pyWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

type pyResult struct {
	PreNS    int64  `json:"pre_ns"`
	PreCPUNS int64  `json:"pre_cpu_ns"`
	InvNS    int64  `json:"inv_ns"`
	InvCPUNS int64  `json:"inv_cpu_ns"`
	Error    string `json:"error"`
}

func startPyWorker(python, root string, ws []workload, ins [][]tflite.TensorInfo) (*pyWorker, error) {
	cmd := exec.Command(python, filepath.Join(root, "bench/pillow_worker.py"))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd)
	p := &pyWorker{cmd: cmd, in: in, out: bufio.NewReader(out)}
	type c struct {
		Image string `json:"image"`
		Model string `json:"model"`
		W     int    `json:"w"`
		H     int    `json:"h"`
		Float bool   `json:"float"`
		Post  string `json:"post"`
	}
	var setup struct {
		Cases []c `json:"cases"`
	}
	for i, w := range ws {
		s := ins[i][0].Shape
		setup.Cases = append(setup.Cases, c{w.image, w.model, s[2], s[1], w.float, w.post})
	}
	var ok struct{ OK bool }
	if err := p.call(setup, &ok); err != nil || !ok.OK {
		return nil, fmt.Errorf("python worker setup: %v", err)
	}
	return p, nil
}

func (p *pyWorker) call(req, resp any) error {
	b, _ := json.Marshal(req)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("python worker: %w", err)
	}
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("python worker exited: %w", err)
	}
	return json.Unmarshal(line, resp)
}

func (p *pyWorker) run(i int, invoke bool) (pre, inv sample, err error) {
	var r pyResult
	if err = p.call(map[string]any{"op": "run", "case": i, "invoke": invoke}, &r); err != nil {
		return
	}
	if r.Error != "" {
		return pre, inv, errors.New(r.Error)
	}
	return sample{time.Duration(r.PreNS), time.Duration(r.PreCPUNS)}, sample{time.Duration(r.InvNS), time.Duration(r.InvCPUNS)}, nil
}

func (p *pyWorker) dump(i int, path string) ([]byte, error) {
	var r struct{ OK bool }
	if err := p.call(map[string]any{"op": "dump", "case": i, "path": path}, &r); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func (p *pyWorker) close() {
	_ = p.call(map[string]any{"op": "quit"}, &struct{}{})
	_ = p.in.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
	}
	untrack(p.cmd)
}

// mad is the mean absolute difference of two tensors in pixel units (0..255).
func mad(a, b []byte, dt abi.DType) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return math.NaN()
	}
	sum := 0.0
	if dt == abi.Float32 {
		fa := unsafe.Slice((*float32)(unsafe.Pointer(&a[0])), len(a)/4)
		fb := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
		for i := range fa {
			sum += math.Abs(float64(fa[i]-fb[i])) * 127.5
		}
		return sum / float64(len(fa))
	}
	for i := range a {
		sum += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return sum / float64(len(a))
}

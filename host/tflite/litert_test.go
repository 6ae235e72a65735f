package tflite_test

import (
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/tflite"
)

// litertDir is where make deps-litert unpacks LiteRT 2.3.0.
const litertDir = "../../.deps/litert/2.3.0/ai_edge_litert"

func needLiteRT(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(litertDir + "/libLiteRt.so"); err != nil {
		t.Skipf("LiteRT is not fetched (%v): run make deps-litert", err)
	}
	if !tflite.Probe().CustomAllocation {
		t.Skipf("%v: a LiteRT model needs custom allocation for its CPU fallback (TestLiteRTNeedsCustomAllocation)", tflite.Probe())
	}
}

// TestLiteRTNeedsCustomAllocation: with a TFLite library that cannot bind tensors to caller
// memory (2.9), a LiteRT model is served by the classic backend, which says why.
func TestLiteRTNeedsCustomAllocation(t *testing.T) {
	if tflite.Probe().CustomAllocation {
		t.Skipf("%v has custom allocation", tflite.Probe())
	}
	got, b := run(t, models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1,
		LiteRT: &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: litertDir}})
	if b.Active != tflite.BackendClassic || !strings.Contains(b.Reason, "no custom tensor allocation") || len(got[0]) != 1001 {
		t.Fatalf("backend %+v, want tflite/cpu with the reason", b)
	}
}

// fill writes deterministic inputs: an image for 224×224 RGB models, noise otherwise.
func fill(t testing.TB, m *tflite.Model, it *tflite.Interpreter) {
	t.Helper()
	r := rand.New(rand.NewSource(1))
	for n, in := range m.Inputs {
		b := it.Input(n)
		switch {
		case in.Type == abi.UInt8 && len(in.Shape) == 4 && in.Shape[1] == 224:
			copy(b, rgbResize(t, models+"peacock.png", 224, 224))
		case in.Type == abi.Float32:
			for k := 0; k+4 <= len(b); k += 4 {
				binary.LittleEndian.PutUint32(b[k:], math.Float32bits(r.Float32()*2-1))
			}
		default:
			r.Read(b)
		}
	}
}

// run loads path with opts, fills the inputs, invokes once and returns the outputs and
// the model's backend.
func run(t testing.TB, path string, opts tflite.Options) ([][]byte, tflite.BackendInfo) {
	t.Helper()
	m, err := tflite.LoadModel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	it, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	fill(t, m, it)
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	var outs [][]byte
	for n := range m.Outputs {
		outs = append(outs, append([]byte(nil), it.Output(n)...))
	}
	return outs, m.Backend()
}

// maxDiff compares outputs as float32 (float models) or bytes; it returns the largest
// absolute difference.
func maxDiff(t testing.TB, infos []tflite.TensorInfo, a, b [][]byte) float64 {
	t.Helper()
	d := 0.0
	for n := range a {
		if len(a[n]) != len(b[n]) {
			t.Fatalf("output %d: %d bytes vs %d", n, len(a[n]), len(b[n]))
		}
		for k := 0; k < len(a[n]); {
			var x, y float64
			if infos[n].Type == abi.Float32 {
				x = float64(math.Float32frombits(binary.LittleEndian.Uint32(a[n][k:])))
				y = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[n][k:])))
				k += 4
			} else {
				x, y = float64(a[n][k]), float64(b[n][k])
				k++
			}
			d = math.Max(d, math.Abs(x-y))
		}
	}
	return d
}

func outputsOf(t testing.TB, path string) []tflite.TensorInfo {
	m, err := tflite.LoadModel(path, tflite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return m.Outputs
}

// TestLiteRTCPU: LiteRT's CompiledModel on the CPU gives the classic API's results on
// every bundled model (uint8 models bit-identical, float models within 1e-5), and the
// model says it runs on litert/cpu.
func TestLiteRTCPU(t *testing.T) {
	needLiteRT(t)
	for _, name := range []string{"mobilenet_quant_v1_224", "ssd_detect", "deeplabv3_257_mv_gpu", "face_detection_short_range"} {
		path := models + name + ".tflite"
		classic, cb := run(t, path, tflite.Options{Threads: 1, XNNPACK: true})
		lrt, lb := run(t, path, tflite.Options{Threads: 1, XNNPACK: true,
			LiteRT: &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: litertDir}})
		if cb.Active != tflite.BackendClassic || lb.Active != "litert/cpu" {
			t.Fatalf("%s: backends %v and %v, want tflite/cpu and litert/cpu", name, cb, lb)
		}
		d := maxDiff(t, outputsOf(t, path), classic, lrt)
		tol := 1e-5
		if strings.Contains(name, "quant") || name == "ssd_detect" {
			tol = 0
		}
		if d > tol {
			t.Errorf("%s: LiteRT CPU differs from the classic API by %g (tolerance %g)", name, d, tol)
		}
		t.Logf("%s: %s, max difference to the classic API %g", name, lb, d)
	}
}

// TestLiteRTZeroCopy: tensors bound to caller memory (an anonymous mapping, as guest memory
// is) are read and written there by LiteRT itself: the host buffer LiteRT reports is the
// bound address, and the result appears in the bound output memory. A buffer that is not
// 64-byte aligned is refused with a message saying so.
func TestLiteRTZeroCopy(t *testing.T) {
	needLiteRT(t)
	path := models + "mobilenet_quant_v1_224.tflite"
	want, _ := run(t, path, tflite.Options{Threads: 1, XNNPACK: true})
	m, err := tflite.LoadModel(path, tflite.Options{Threads: 1, LiteRT: &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: litertDir}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if b := m.Backend(); b.Active != "litert/cpu" {
		t.Fatalf("backend %v, want litert/cpu", b)
	}
	it, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	mem, err := syscall.Mmap(-1, 0, 1<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	in, out := mem[:m.Inputs[0].Bytes], mem[512<<10:512<<10+m.Outputs[0].Bytes]
	if err := it.BindInput(0, unsafe.Pointer(&mem[8]), m.Inputs[0].Bytes); err == nil || !strings.Contains(err.Error(), "64-byte aligned") {
		t.Fatalf("binding a misaligned buffer: %v, want a 64-byte alignment error", err)
	}
	if err := it.BindInput(0, unsafe.Pointer(&in[0]), len(in)); err != nil {
		t.Fatal(err)
	}
	if err := it.BindOutput(0, unsafe.Pointer(&out[0]), len(out)); err != nil {
		t.Fatal(err)
	}
	if err := it.AllocateTensors(); err != nil {
		t.Fatal(err)
	}
	copy(in, rgbResize(t, models+"peacock.png", 224, 224))
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n      int
		output bool
		at     *byte
	}{{0, false, &in[0]}, {0, true, &out[0]}} {
		got, bound, ok := it.HostMemory(c.n, c.output)
		if !ok || got != bound || bound != unsafe.Pointer(c.at) {
			t.Errorf("tensor %d (output %v): LiteRT uses %p, bound to %p, caller memory at %p", c.n, c.output, got, bound, c.at)
		}
	}
	if string(out) != string(want[0]) {
		t.Error("the bound output memory does not hold the classic API's result")
	}
	if &it.Output(0)[0] != &out[0] {
		t.Error("Output(0) does not alias the bound memory")
	}
}

// TestLiteRTFallback: an accelerator that cannot be used leaves the model on the classic
// CPU backend, with the reason in Backend, a warning, and correct results.
func TestLiteRTFallback(t *testing.T) {
	needLiteRT(t)
	path := models + "mobilenet_quant_v1_224.tflite"
	want, _ := run(t, path, tflite.Options{Threads: 1, XNNPACK: true})
	for _, c := range []struct {
		name   string
		opts   tflite.LiteRTOptions
		reason string
	}{
		{"missing library", tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: t.TempDir()}, "LiteRT runtime not found"},
		{"unknown vendor", tflite.LiteRTOptions{Accelerator: tflite.AcceleratorNPU, Dir: litertDir, Vendor: "nosuch"}, "no dispatch library for vendor"},
		{"bad accelerator", tflite.LiteRTOptions{Accelerator: "tpu", Dir: litertDir}, "unknown accelerator"},
		// GPU without a Vulkan adapter LiteRT accepts: without a Vulkan loader (this machine;
		// reason "no Vulkan loader"), or, under make test-gpu, with the loader but with
		// VK_ICD_FILENAMES pointing nowhere, hiding every driver (Dawn: "No adapters found").
		{"no Vulkan adapter", tflite.LiteRTOptions{Accelerator: tflite.AcceleratorGPU, Dir: litertDir}, "litert/gpu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Accelerator == tflite.AcceleratorGPU {
				t.Setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json")
			}
			var warned []string
			opts := tflite.Options{Threads: 1, XNNPACK: true, LiteRT: &c.opts,
				Warn: func(msg string, kv ...any) { warned = append(warned, msg) }}
			got, b := run(t, path, opts)
			if b.Active != tflite.BackendClassic || !strings.Contains(b.Reason, c.reason) {
				t.Fatalf("backend %+v, want tflite/cpu with a reason containing %q", b, c.reason)
			}
			if len(warned) == 0 || !strings.Contains(warned[0], "serving the model on the CPU") {
				t.Errorf("warnings %q, want one about the CPU fallback", warned)
			}
			if string(got[0]) != string(want[0]) {
				t.Error("the fallback's result differs from the classic API's")
			}
			t.Logf("%s", b)
		})
	}
}

// TestLiteRTRunFallback: when a LiteRT run fails after load (here LiteRT's own cancellation
// check fails every run), the request is served by a classic interpreter bound to the same
// memory: Invoke succeeds with the classic result, the interpreter says "fallback", the model
// counts it, a warning says why, and later requests keep working.
func TestLiteRTRunFallback(t *testing.T) {
	needLiteRT(t)
	path := models + "mobilenet_quant_v1_224.tflite"
	want, _ := run(t, path, tflite.Options{Threads: 1, XNNPACK: true})
	var warned []string
	m, err := tflite.LoadModel(path, tflite.Options{Threads: 1, XNNPACK: true,
		LiteRT: &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: litertDir},
		Warn:   func(msg string, kv ...any) { warned = append(warned, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	it, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	fill(t, m, it)
	if err := tflite.CancelLiteRTRuns(it); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if err := it.Invoke(); err != nil {
			t.Fatalf("round %d: the request was lost: %v", round, err)
		}
		if string(it.Output(0)) != string(want[0]) {
			t.Fatalf("round %d: the fallback's result differs from the classic API's", round)
		}
	}
	d := strings.Join(it.Delegates(), ",")
	if !strings.Contains(d, "litert:cpu,fallback") {
		t.Errorf("delegates %q, want litert:cpu,fallback,...", d)
	}
	if b := m.Backend(); b.RunFallbacks != 1 {
		t.Errorf("backend %+v, want 1 run fallback", b)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "LiteRT run failed") {
		t.Errorf("warnings %q, want one about the failed run", warned)
	}
	t.Logf("delegates %s, %+v", d, m.Backend())
}

package tflite

/*
#cgo LDFLAGS: -ldl -lpthread
#include <stdlib.h>
#include <string.h>
#include "litert.h"
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
)

// Accelerators a model can ask LiteRT for (config.toml `accelerator`).
const (
	AcceleratorCPU = "cpu" // LiteRT's CPU path (XNNPACK inside the CompiledModel API)
	AcceleratorGPU = "gpu" // LiteRT's GPU accelerator (WebGPU/Dawn over Vulkan on Linux)
	AcceleratorNPU = "npu" // a vendor NPU through its LiteRT dispatch library
)

// Backend names: where a model's interpreters actually run.
const (
	BackendClassic = "tflite/cpu" // the classic TFLite C API (go-tflite), XNNPACK on the CPU
)

// LiteRTOptions select LiteRT's CompiledModel API for a model, on one accelerator.
type LiteRTOptions struct {
	Accelerator string // AcceleratorCPU, AcceleratorGPU or AcceleratorNPU
	// Dir is the LiteRT runtime directory: libLiteRt.so and the accelerator libraries
	// beside it (libLiteRtWebGpuAccelerator.so), vendors/ below it.
	Dir string
	// Vendor names the NPU dispatch under Dir/vendors (e.g. "intel_openvino"); "npu" only.
	Vendor string
	// CacheDir keeps compiled GPU programs and NPU blobs across restarts; "" for none.
	CacheDir string
	// Options are LiteRT's opaque per-accelerator options: identifier ("xnnpack",
	// "gpu_options", "intel_openvino") -> TOML. Without "xnnpack", Threads threads.
	Options map[string]string
}

// ErrAccelerator is wrapped by the reasons a model does not run on the accelerator it
// asked for (it then runs on the classic CPU backend).
var ErrAccelerator = errors.New("accelerator unavailable")

// BackendInfo says where a model runs: what was asked for, what runs, and why not.
type BackendInfo struct {
	Requested string // "" (classic), or "litert/cpu", "litert/gpu", "litert/npu"
	Active    string // BackendClassic or the requested LiteRT backend
	Reason    string // why Active differs from Requested (set at load), "" otherwise
	// RunFallbacks counts interpreters that switched to the classic backend after a
	// LiteRT run failed (each failing request was then served by the classic backend).
	RunFallbacks int64
	// TransferBytes counts the tensor bytes moved between host memory and the GPU: edgehost
	// binds host buffers (0 bytes copied by edgehost), so on litert/gpu LiteRT uploads every
	// input and downloads every output on each run; this adds their sizes per run. 0 on
	// the CPU and NPU paths, whose kernels read the host buffers in place.
	TransferBytes int64
}

// litertModel is the LiteRT side of a Model: one environment and one LiteRT model over
// the Model's private copy of the file; interpreters compile their own CompiledModel.
type litertModel struct {
	opts    LiteRTOptions
	accel   C.int
	env     unsafe.Pointer
	model   unsafe.Pointer
	inPerm  []int // classic input n is LiteRT input inPerm[n]
	outPerm []int
	ids     []string
	tomls   []string
}

// litertLibrary is the libLiteRt.so file in dir.
func litertLibrary(dir string) string { return filepath.Join(dir, "libLiteRt.so") }

// initLiteRT loads LiteRT, builds the environment and model, compiles once for the
// accelerator (the first-run compilation, cached in CacheDir) and runs once on zeroed
// inputs. Any failure is returned wrapped in ErrAccelerator; m is then unchanged.
func (m *Model) initLiteRT(o *LiteRTOptions) (err error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: litert/%s: %s", ErrAccelerator, o.Accelerator, fmt.Sprintf(format, a...))
	}
	var accel C.int
	switch o.Accelerator {
	case AcceleratorCPU:
		accel = C.EH_LRT_CPU
	case AcceleratorGPU:
		accel = C.EH_LRT_GPU
	case AcceleratorNPU:
		accel = C.EH_LRT_NPU | C.EH_LRT_CPU // ops the NPU does not take stay on the CPU
	default:
		return fail("unknown accelerator %q (cpu, gpu or npu)", o.Accelerator)
	}
	if abs, err := filepath.Abs(o.Dir); err == nil {
		c := *o
		c.Dir = abs // LiteRT finds its accelerator libraries by absolute directory
		o = &c
	}
	if !Probe().CustomAllocation {
		return fail("the TFLite %s library has no custom tensor allocation, which the CPU fallback of a LiteRT model needs", Probe().Version)
	}
	lib := litertLibrary(o.Dir)
	if _, err := os.Stat(lib); err != nil {
		return fail("LiteRT runtime not found: %v (make deps-litert fetches it into .deps/litert)", err)
	}
	cpath := C.CString(lib)
	defer C.free(unsafe.Pointer(cpath))
	var errb [1024]C.char
	if C.eh_lrt_open(cpath, &errb[0], C.size_t(len(errb))) != 0 {
		return fail("%s", C.GoString(&errb[0]))
	}
	lm := &litertModel{opts: *o, accel: accel}
	defer func() {
		if err != nil {
			lm.close()
		}
	}()
	var dispatch, compiler string
	if o.Accelerator == AcceleratorNPU {
		if o.Vendor == "" {
			return fail("accelerator = \"npu\" needs a vendor (the dispatch under %s/vendors)", o.Dir)
		}
		dispatch = filepath.Join(o.Dir, "vendors", o.Vendor, "dispatch")
		compiler = filepath.Join(o.Dir, "vendors", o.Vendor, "compiler")
		if _, err := os.Stat(dispatch); err != nil {
			return fail("no dispatch library for vendor %q: %v", o.Vendor, err)
		}
	}
	if o.Accelerator == AcceleratorGPU {
		var verr [512]C.char
		if C.eh_lrt_vulkan_loader(&verr[0], C.size_t(len(verr))) != 0 {
			return fail("no Vulkan loader, which the GPU path (WebGPU/Dawn over Vulkan) needs: %s", C.GoString(&verr[0]))
		}
	}
	if o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
			return fail("cache dir: %v", err)
		}
	}
	cs := func(s string) *C.char {
		if s == "" {
			return nil
		}
		return C.CString(s)
	}
	crt, cdisp, ccomp, ccache := cs(o.Dir), cs(dispatch), cs(compiler), cs(o.CacheDir)
	defer func() {
		for _, p := range []*C.char{crt, cdisp, ccomp, ccache} {
			C.free(unsafe.Pointer(p))
		}
	}()
	if st := C.eh_lrt_env_create(crt, cdisp, ccomp, ccache, accel|C.EH_LRT_CPU, &lm.env); st != 0 {
		return fail("create environment: %s", C.GoString(C.eh_lrt_status(st)))
	}
	if st := C.eh_lrt_model_create(lm.env, unsafe.Pointer(&m.buf[0]), C.size_t(len(m.buf)), &lm.model); st != 0 {
		return fail("create model: %s", C.GoString(C.eh_lrt_status(st)))
	}
	if lm.inPerm, err = lm.permutation(0, m.Inputs); err != nil {
		return fail("%v", err)
	}
	if lm.outPerm, err = lm.permutation(1, m.Outputs); err != nil {
		return fail("%v", err)
	}
	keys := make([]string, 0, len(o.Options))
	for k := range o.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lm.ids, lm.tomls = append(lm.ids, k), append(lm.tomls, o.Options[k])
	}
	if _, ok := o.Options["xnnpack"]; !ok {
		threads := m.opts.Threads
		if threads <= 0 {
			threads = 1
		}
		lm.ids, lm.tomls = append(lm.ids, "xnnpack"), append(lm.tomls, fmt.Sprintf("num_threads = %d\n", threads))
	}
	// The first compilation (GPU shaders, NPU JIT) happens here, at load or reload, off the
	// request path; a trial run on zeroed inputs catches failures that only running shows.
	it, err := m.newLiteRTInterpreter(lm)
	if err != nil {
		if o.Accelerator == AcceleratorGPU {
			return fail("%v (no Vulkan adapter LiteRT accepts, or an op it cannot run: its log lines above say which)", err)
		}
		return fail("%v", err)
	}
	defer it.Close()
	if err := it.lrt.run(); err != nil {
		return fail("trial run: %v", err)
	}
	m.lrt = lm
	return nil
}

// permutation maps the classic API's tensor order to LiteRT's signature order by name.
func (lm *litertModel) permutation(output int, classic []TensorInfo) ([]int, error) {
	var nin, nout C.size_t
	if st := C.eh_lrt_model_io(lm.model, &nin, &nout); st != 0 {
		return nil, fmt.Errorf("signature: %s", C.GoString(C.eh_lrt_status(st)))
	}
	n, what := int(nin), "inputs"
	if output == 1 {
		n, what = int(nout), "outputs"
	}
	if n != len(classic) {
		return nil, fmt.Errorf("LiteRT sees %d %s, the classic API %d", n, what, len(classic))
	}
	byName := map[string]int{}
	for j := 0; j < n; j++ {
		var name *C.char
		if st := C.eh_lrt_model_io_name(lm.model, C.int(output), C.size_t(j), &name); st != 0 {
			return nil, fmt.Errorf("%s name %d: %s", what, j, C.GoString(C.eh_lrt_status(st)))
		}
		byName[C.GoString(name)] = j
	}
	perm := make([]int, n)
	for i, t := range classic {
		j, ok := byName[t.Name]
		if !ok {
			return nil, fmt.Errorf("LiteRT's signature has no %s tensor %q", what, t.Name)
		}
		perm[i] = j
	}
	return perm, nil
}

func (lm *litertModel) close() {
	C.eh_lrt_model_destroy(lm.model)
	C.eh_lrt_env_destroy(lm.env)
	lm.model, lm.env = nil, nil
}

// litertInterp is one CompiledModel with its tensor buffers. Each tensor reads and writes
// host memory: C memory of its own (64-byte aligned) until Bind* points it at the caller's
// memory (a plugin's guest memory: zero copy).
type litertInterp struct {
	lm       *litertModel
	compiled unsafe.Pointer
	in, out  []lrtTensor     // classic order
	args     *unsafe.Pointer // C array: inputs then outputs, LiteRT order
	nin      int
}

type lrtTensor struct {
	buf  unsafe.Pointer // LiteRtTensorBuffer
	mem  unsafe.Pointer // host memory it wraps
	size int
	own  unsafe.Pointer // C memory owned by the interpreter, nil once bound elsewhere
}

func (m *Model) newLiteRTInterpreter(lm *litertModel) (*Interpreter, error) {
	li := &litertInterp{lm: lm, nin: len(m.Inputs)}
	n := len(m.Inputs) + len(m.Outputs)
	li.args = (*unsafe.Pointer)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof(uintptr(0)))))
	i := &Interpreter{model: m, lrt: li, delegates: []string{"litert:" + lm.opts.Accelerator}}
	m.mu.Lock()
	ids := make([]*C.char, len(lm.ids)+1)
	tomls := make([]*C.char, len(lm.tomls)+1)
	for k := range lm.ids {
		ids[k], tomls[k] = C.CString(lm.ids[k]), C.CString(lm.tomls[k])
	}
	cids := (**C.char)(C.calloc(C.size_t(len(ids)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	ctomls := (**C.char)(C.calloc(C.size_t(len(ids)), C.size_t(unsafe.Sizeof(uintptr(0)))))
	copy(unsafe.Slice(cids, len(ids)), ids)
	copy(unsafe.Slice(ctomls, len(ids)), tomls)
	st := C.eh_lrt_compile(lm.env, lm.model, lm.accel, cids, ctomls, C.size_t(len(lm.ids)), &li.compiled)
	for k := range lm.ids {
		C.free(unsafe.Pointer(ids[k]))
		C.free(unsafe.Pointer(tomls[k]))
	}
	C.free(unsafe.Pointer(cids))
	C.free(unsafe.Pointer(ctomls))
	m.refs++ // the LiteRT model reads the private copy for as long as i lives
	m.mu.Unlock()
	i.held = true
	if st != 0 {
		i.Close()
		return nil, fmt.Errorf("compile: %s", C.GoString(C.eh_lrt_status(st)))
	}
	if lm.opts.Accelerator != AcceleratorCPU && C.eh_lrt_non_cpu_fully_accelerated(li.compiled) == 0 {
		i.delegates = append(i.delegates, "partly-cpu")
	}
	li.in, li.out = make([]lrtTensor, len(m.Inputs)), make([]lrtTensor, len(m.Outputs))
	for n, t := range m.Inputs {
		if err := li.bindOwn(0, n, t.Bytes); err != nil {
			i.Close()
			return nil, err
		}
	}
	for n, t := range m.Outputs {
		if err := li.bindOwn(1, n, t.Bytes); err != nil {
			i.Close()
			return nil, err
		}
	}
	return i, nil
}

func (li *litertInterp) tensor(output, n int) *lrtTensor {
	if output == 1 {
		return &li.out[n]
	}
	return &li.in[n]
}

// bindOwn backs tensor n with fresh zeroed C memory of the interpreter's own.
func (li *litertInterp) bindOwn(output, n, size int) error {
	var p unsafe.Pointer
	alloc := size
	if alloc == 0 {
		alloc = abi.TensorAlign
	}
	if C.posix_memalign(&p, abi.TensorAlign, C.size_t(alloc)) != 0 {
		return fmt.Errorf("litert: no memory for a %d-byte tensor", size)
	}
	C.memset(p, 0, C.size_t(alloc))
	if err := li.bind(output, n, p, size); err != nil {
		C.free(p)
		return err
	}
	li.tensor(output, n).own = p
	return nil
}

// bind points tensor n at size bytes at p (64-byte aligned, caller-owned).
func (li *litertInterp) bind(output, n int, p unsafe.Pointer, size int) error {
	what, perm := "input", li.lm.inPerm
	if output == 1 {
		what, perm = "output", li.lm.outPerm
	}
	if uintptr(p)%abi.TensorAlign != 0 {
		return fmt.Errorf("litert: %s tensor %d: buffer %p is not %d-byte aligned", what, n, p, abi.TensorAlign)
	}
	var buf unsafe.Pointer
	if st := C.eh_lrt_host_buffer(li.lm.model, C.int(output), C.size_t(perm[n]), p, C.size_t(size), &buf); st != 0 {
		return fmt.Errorf("litert: %s tensor %d: host buffer over %d bytes at %p: %s", what, n, size, p, C.GoString(C.eh_lrt_status(st)))
	}
	t := li.tensor(output, n)
	C.eh_lrt_buffer_destroy(t.buf)
	if t.own != nil {
		C.free(t.own)
		t.own = nil
	}
	t.buf, t.mem, t.size = buf, p, size
	slot := perm[n]
	if output == 1 {
		slot += li.nin
	}
	unsafe.Slice(li.args, len(li.in)+len(li.out))[slot] = buf
	return nil
}

func (li *litertInterp) run() error {
	nout := len(li.out)
	outs := unsafe.Add(unsafe.Pointer(li.args), li.nin*int(unsafe.Sizeof(uintptr(0))))
	if st := C.eh_lrt_run(li.compiled, (*unsafe.Pointer)(li.args), C.size_t(li.nin), (*unsafe.Pointer)(outs), C.size_t(nout)); st != 0 {
		return fmt.Errorf("litert: run: %s", C.GoString(C.eh_lrt_status(st)))
	}
	return nil
}

func (li *litertInterp) close() {
	for _, ts := range [][]lrtTensor{li.in, li.out} {
		for k := range ts {
			C.eh_lrt_buffer_destroy(ts[k].buf)
			if ts[k].own != nil {
				C.free(ts[k].own)
			}
			ts[k] = lrtTensor{}
		}
	}
	C.eh_lrt_compiled_destroy(li.compiled)
	li.compiled = nil
	C.free(unsafe.Pointer(li.args))
	li.args = nil
}

// HostMemory returns the host address LiteRT reads or writes for tensor n (output when
// output is true) and the address edgehost bound it to: equal when the tensor is zero-copy.
// ok is false for a classic interpreter.
func (i *Interpreter) HostMemory(n int, output bool) (litert, bound unsafe.Pointer, ok bool) {
	if i.lrt == nil || i.fellBack != nil {
		return nil, nil, false
	}
	o := 0
	if output {
		o = 1
	}
	t := i.lrt.tensor(o, n)
	var p unsafe.Pointer
	if C.eh_lrt_buffer_host(t.buf, &p) != 0 {
		return nil, t.mem, true
	}
	return p, t.mem, true
}

// fallBack replaces a LiteRT interpreter whose run failed by a classic one bound to the
// same memory, so the request that failed and every later one are served on the CPU.
func (i *Interpreter) fallBack(cause error) error {
	m := i.model
	opts := m.opts
	opts.LiteRT = nil
	c, err := m.newInterpreter(opts)
	if err != nil {
		return fmt.Errorf("%v; the CPU fallback failed too: %w", cause, err)
	}
	for n := range i.lrt.in {
		t := &i.lrt.in[n]
		if err := c.bind(C.eh_input_tensor_index(c.raw, C.int(n)), t.mem, t.size, "input", n); err != nil {
			c.Close()
			return fmt.Errorf("%v; binding the CPU fallback: %w", cause, err)
		}
	}
	for n := range i.lrt.out {
		t := &i.lrt.out[n]
		if err := c.bind(C.eh_output_tensor_index(c.raw, C.int(n)), t.mem, t.size, "output", n); err != nil {
			c.Close()
			return fmt.Errorf("%v; binding the CPU fallback: %w", cause, err)
		}
	}
	if err := c.AllocateTensors(); err != nil {
		c.Close()
		return fmt.Errorf("%v; the CPU fallback: %w", cause, err)
	}
	i.fellBack = c
	atomic.AddInt64(&m.runFallbacks, 1)
	if w := m.opts.Warn; w != nil {
		w("LiteRT run failed; this interpreter now runs on the CPU (classic TFLite)", "accelerator", m.lrt.opts.Accelerator, "error", cause.Error())
	}
	return nil
}

// Backend says where the model's interpreters run (see BackendInfo).
func (m *Model) Backend() BackendInfo {
	b := BackendInfo{Active: BackendClassic, Reason: m.lrtReason, RunFallbacks: atomic.LoadInt64(&m.runFallbacks),
		TransferBytes: atomic.LoadInt64(&m.transferred)}
	if m.opts.LiteRT != nil {
		b.Requested = "litert/" + m.opts.LiteRT.Accelerator
	}
	if m.lrt != nil {
		b.Active = "litert/" + m.lrt.opts.Accelerator
	}
	return b
}

// String is "litert/npu", or "tflite/cpu (asked litert/gpu: REASON)".
func (b BackendInfo) String() string {
	if b.Requested == "" || b.Requested == b.Active {
		return b.Active
	}
	return fmt.Sprintf("%s (asked %s: %s)", b.Active, b.Requested, strings.TrimPrefix(b.Reason, ErrAccelerator.Error()+": "))
}

func (li *litertInterp) bytes(output, n int) []byte {
	ts := li.in
	if output == 1 {
		ts = li.out
	}
	if n < 0 || n >= len(ts) || ts[n].mem == nil {
		return nil
	}
	return unsafe.Slice((*byte)(ts[n].mem), ts[n].size)
}

// lrtBind binds tensor n of a LiteRT interpreter (and of its classic fallback, if any).
func (i *Interpreter) lrtBind(output, n int, p unsafe.Pointer, size int) error {
	ts, what := i.lrt.in, "input"
	if output == 1 {
		ts, what = i.lrt.out, "output"
	}
	if n < 0 || n >= len(ts) {
		return fmt.Errorf("litert: no %s tensor %d", what, n)
	}
	if err := i.lrt.bind(output, n, p, size); err != nil {
		return err
	}
	if c := i.fellBack; c != nil {
		idx := C.int(0)
		if output == 1 {
			idx = C.eh_output_tensor_index(c.raw, C.int(n))
		} else {
			idx = C.eh_input_tensor_index(c.raw, C.int(n))
		}
		return c.bind(idx, p, size, what, n)
	}
	return nil
}

// cancelLiteRTRuns makes every later LiteRT run of i fail (LiteRT's cancellation function),
// for the run-time fallback test.
func (i *Interpreter) cancelLiteRTRuns() error {
	if i.lrt == nil {
		return errors.New("not a LiteRT interpreter")
	}
	if st := C.eh_lrt_cancel_runs(i.lrt.compiled); st != 0 {
		return fmt.Errorf("litert: set cancellation function: %s", C.GoString(C.eh_lrt_status(st)))
	}
	return nil
}

// count adds, after a successful run on the GPU, the tensor bytes LiteRT moved between the
// host buffers and GPU memory (every input up, every output down).
func (li *litertInterp) count(m *Model) {
	if li.lm.accel&C.EH_LRT_GPU == 0 {
		return
	}
	n := 0
	for _, ts := range [][]lrtTensor{li.in, li.out} {
		for k := range ts {
			n += ts[k].size
		}
	}
	atomic.AddInt64(&m.transferred, int64(n))
}

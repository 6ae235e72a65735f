package tflite

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	gotflite "github.com/mattn/go-tflite"
)

// ErrNoCustomAllocation is returned by Bind* when the loaded library lacks custom allocation.
var ErrNoCustomAllocation = errors.New("the loaded TFLite library has no custom tensor allocation")

// Interpreter runs one model. It is not safe for concurrent use: take it from a Pool.
// Slices returned by Input and Output alias TFLite's memory and stay valid until the next
// AllocateTensors, Bind* or Close.
type Interpreter struct {
	model     *Model
	it        *gotflite.Interpreter
	raw       *C.TfLiteInterpreter
	errbuf    *C.eh_errbuf
	xnn       *C.TfLiteDelegate
	ext       *C.eh_external
	delegates []string
	held      bool // holds a reference on the model's private copy

	lrt      *litertInterp // non-nil: a LiteRT CompiledModel (litert.go)
	fellBack *Interpreter  // a LiteRT interpreter whose run failed: the classic one now serving
}

func (m *Model) newInterpreter(opts Options) (*Interpreter, error) {
	warn := opts.Warn
	if warn == nil {
		warn = func(string, ...any) {}
	}
	var ext *C.eh_external
	if opts.Delegate != nil {
		var err error
		ext, err = loadExternal(opts.Delegate)
		if err != nil {
			warn("vendor delegate could not be loaded; running on CPU", "delegate", opts.Delegate.Path, "error", err)
		}
	}
	xnn := xnnOff
	if opts.XNNPACK {
		xnn = xnnQuantized
	}
	it, err := m.build(opts, ext, xnn)
	if err != nil && ext != nil {
		warn("vendor delegate could not be applied; running on CPU", "delegate", opts.Delegate.Path, "error", err)
		C.eh_external_unload(ext)
		C.free(unsafe.Pointer(ext))
		ext = nil
		it, err = m.build(opts, nil, xnn)
	}
	// Older XNNPACK builds cannot prepare some quantized graphs with the quantized kernels
	// forced on; then try the library's default flags, then no XNNPACK.
	for _, fallback := range []xnnMode{xnnDefault, xnnOff} {
		if err == nil || xnn == xnnOff {
			break
		}
		warn("XNNPACK could not prepare the model; retrying", "mode", fallback.String(), "error", err)
		xnn = fallback
		it, err = m.build(opts, ext, xnn)
	}
	return it, err
}

type xnnMode int

const (
	xnnOff       xnnMode = iota
	xnnDefault           // the library's default XNNPACK flags
	xnnQuantized         // QS8 and QU8 kernels forced on
)

func (x xnnMode) String() string { return [...]string{"off", "default", "quantized"}[x] }

func (m *Model) build(opts Options, ext *C.eh_external, xnn xnnMode) (*Interpreter, error) {
	threads := opts.Threads
	if threads <= 0 {
		threads = 1
	}
	o := gotflite.NewInterpreterOptions()
	defer o.Delete()
	o.SetNumThread(threads)
	i := &Interpreter{model: m, errbuf: (*C.eh_errbuf)(C.calloc(1, C.sizeof_eh_errbuf))}
	C.eh_set_reporter(rawOptions(o), i.errbuf)
	if ext != nil {
		i.ext = ext
		o.AddDelegate(cDelegate{ext.delegate})
		i.delegates = append(i.delegates, "external:"+opts.Delegate.Path)
	}
	if xnn != xnnOff {
		force := C.int(0)
		if xnn == xnnQuantized {
			force = 1
		}
		if i.xnn = C.eh_xnnpack_create(C.int(threads), force); i.xnn != nil {
			o.AddDelegate(cDelegate{i.xnn})
			i.delegates = append(i.delegates, "xnnpack")
		} else if opts.Warn != nil {
			opts.Warn("XNNPACK requested but the TFLite library does not provide it; running without")
		}
	}
	i.it = gotflite.NewInterpreter(m.m, o)
	if i.it == nil {
		msg := i.lastError()
		i.ext = nil // the caller owns ext on failure
		i.Close()
		return nil, fmt.Errorf("%w: %s: cannot create interpreter: %s", ErrBadModel, m.Path, msg)
	}
	i.raw = rawInterpreter(i.it)
	m.retain() // TFLite reads weights from the model's buffer for as long as i lives
	i.held = true
	if err := i.AllocateTensors(); err != nil {
		i.Close()
		return nil, err
	}
	return i, nil
}

// lastError returns and clears what TFLite reported for this interpreter.
func (i *Interpreter) lastError() string {
	if i.errbuf == nil || i.errbuf.len == 0 {
		return "no detail reported by TFLite"
	}
	s := C.GoStringN(&i.errbuf.msg[0], C.int(i.errbuf.len))
	i.errbuf.len = 0
	i.errbuf.msg[0] = 0
	return strings.TrimSpace(s)
}

// Delegates names the delegates applied to this interpreter ("xnnpack", "external:PATH").
// A LiteRT interpreter names "litert:ACCELERATOR" (then "partly-cpu" when some ops stay on
// the CPU); one that fell back after a failed run adds "fallback" and the classic ones.
func (i *Interpreter) Delegates() []string {
	if i.fellBack != nil {
		return append(append([]string{}, i.delegates...), append([]string{"fallback"}, i.fellBack.delegates...)...)
	}
	return i.delegates
}

// AllocateTensors (re)plans tensor memory; needed after binding custom allocations.
func (i *Interpreter) AllocateTensors() error {
	if i.lrt != nil {
		if i.fellBack != nil {
			return i.fellBack.AllocateTensors()
		}
		return nil
	}
	if st := i.it.AllocateTensors(); st != gotflite.OK {
		return fmt.Errorf("tflite: allocate tensors: %s", i.lastError())
	}
	return nil
}

// Invoke runs the model once on the current inputs.
// A LiteRT run that fails moves the interpreter to the classic backend, which then
// serves this call and every later one: the request is not lost.
func (i *Interpreter) Invoke() error {
	if i.lrt != nil {
		if i.fellBack == nil {
			err := i.lrt.run()
			if err == nil {
				i.lrt.count(i.model)
				return nil
			}
			if ferr := i.fallBack(err); ferr != nil {
				return ferr
			}
		}
		return i.fellBack.Invoke()
	}
	if st := i.it.Invoke(); st != gotflite.OK {
		return fmt.Errorf("tflite: invoke: %s", i.lastError())
	}
	return nil
}

// Input returns input tensor n's data, aliasing TFLite's (or the bound) memory.
func (i *Interpreter) Input(n int) []byte {
	if i.lrt != nil {
		return i.lrt.bytes(0, n)
	}
	return tensorBytes(i.it.GetInputTensor(n))
}

// Output returns output tensor n's data, aliasing TFLite's (or the bound) memory.
func (i *Interpreter) Output(n int) []byte {
	if i.lrt != nil {
		return i.lrt.bytes(1, n)
	}
	return tensorBytes(i.it.GetOutputTensor(n))
}

func tensorBytes(t *gotflite.Tensor) []byte {
	if t == nil || t.Data() == nil {
		return nil
	}
	return unsafe.Slice((*byte)(t.Data()), int(t.ByteSize()))
}

// BindInput makes input tensor n read from size bytes at p, memory the caller keeps
// valid, unmoved and 64-byte aligned until the interpreter is closed or rebound. Call
// AllocateTensors after binding. p must not be Go-heap memory.
func (i *Interpreter) BindInput(n int, p unsafe.Pointer, size int) error {
	if i.lrt != nil {
		return i.lrtBind(0, n, p, size)
	}
	return i.bind(C.eh_input_tensor_index(i.raw, C.int(n)), p, size, "input", n)
}

// BindOutput is BindInput for output tensor n.
func (i *Interpreter) BindOutput(n int, p unsafe.Pointer, size int) error {
	if i.lrt != nil {
		return i.lrtBind(1, n, p, size)
	}
	return i.bind(C.eh_output_tensor_index(i.raw, C.int(n)), p, size, "output", n)
}

func (i *Interpreter) bind(idx C.int, p unsafe.Pointer, size int, what string, n int) error {
	if !Probe().CustomAllocation {
		return ErrNoCustomAllocation
	}
	if idx < 0 {
		return fmt.Errorf("tflite: no %s tensor %d", what, n)
	}
	if uintptr(p)%abi.TensorAlign != 0 {
		return fmt.Errorf("tflite: %s tensor %d: buffer %p is not %d-byte aligned", what, n, p, abi.TensorAlign)
	}
	if C.eh_set_custom_allocation(i.raw, idx, p, C.size_t(size)) != C.kTfLiteOk {
		return fmt.Errorf("tflite: bind %s tensor %d: %s", what, n, i.lastError())
	}
	return nil
}

func (i *Interpreter) describe() (in, out []TensorInfo) {
	for n := 0; n < i.it.GetInputTensorCount(); n++ {
		in = append(in, info(i.it.GetInputTensor(n)))
	}
	for n := 0; n < i.it.GetOutputTensorCount(); n++ {
		out = append(out, info(i.it.GetOutputTensor(n)))
	}
	return in, out
}

func info(t *gotflite.Tensor) TensorInfo {
	ti := TensorInfo{Name: t.Name(), Type: abi.DType(t.Type()), Bytes: int(t.ByteSize())}
	for d := 0; d < t.NumDims(); d++ {
		ti.Shape = append(ti.Shape, t.Dim(d))
	}
	q := t.QuantizationParams()
	ti.Scale, ti.ZeroPoint = float32(q.Scale), int32(q.ZeroPoint)
	return ti
}

// Close releases the interpreter and its delegates.
func (i *Interpreter) Close() {
	if i.fellBack != nil {
		i.fellBack.Close()
		i.fellBack = nil
	}
	if i.lrt != nil {
		i.lrt.close()
		i.lrt = nil
	}
	if i.it != nil {
		i.it.Delete()
		i.it = nil
	}
	if i.held {
		i.held = false
		defer i.model.release() // after the delegates, which may hold packed weights
	}
	if i.xnn != nil {
		C.eh_xnnpack_delete(i.xnn)
		i.xnn = nil
	}
	if i.ext != nil {
		C.eh_external_unload(i.ext)
		C.free(unsafe.Pointer(i.ext))
		i.ext = nil
	}
	if i.errbuf != nil {
		C.free(unsafe.Pointer(i.errbuf))
		i.errbuf = nil
	}
}

// InputCount is the number of input tensors.
func (i *Interpreter) InputCount() int { return len(i.model.Inputs) }

// OutputCount is the number of output tensors.
func (i *Interpreter) OutputCount() int { return len(i.model.Outputs) }

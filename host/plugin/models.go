package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/tetratelabs/wazero/api"
)

// Model calls (ABI 1.3, abi/ABI.md §5.9): a plugin runs a model the config grants it
// (Grants.Models), on tensor buffers in its own memory. This package checks the grant, the
// request's call budget and the buffers; a ModelRunner (host/pipeline.Models, fed by the
// engine) owns the models and their interpreters, so this package never imports tflite.

// TensorBuffer is one tensor of a model call: a buffer in the calling instance's guest
// memory (host address and size), valid for the duration of the call.
type TensorBuffer struct {
	Data  unsafe.Pointer
	Bytes int
}

// ModelRun describes one model call.
type ModelRun struct {
	Copied int           // bytes copied between guest memory and the interpreter (0 when bound)
	Wait   time.Duration // waiting for a free interpreter of the model
	Invoke time.Duration
}

// ModelRunner runs the models plugins may call. Implementations are safe for concurrent use.
type ModelRunner interface {
	// ModelTensors describes model name's inputs and outputs; ok is false when no such
	// model is loaded.
	ModelTensors(name string) (in, out []Tensor, ok bool)
	// RunModel runs model name once with its inputs read from, and its outputs written to,
	// bufs (the inputs then the outputs, sizes already checked against ModelTensors). It
	// waits for an interpreter of the model's own pool until waitUntil at most, and returns
	// ErrModelBusy when none came free.
	RunModel(ctx context.Context, name string, bufs []TensorBuffer, waitUntil time.Time) (ModelRun, error)
}

// ErrModelBusy is a model call that found no free interpreter of the model in time.
var ErrModelBusy = errors.New("no interpreter of the model came free in time")

// ModelCalls is one request's budget and record of model calls. The pipeline puts one in
// the context of the request's plugin calls (WithModelCalls); a request runs on one
// goroutine, so it needs no lock.
type ModelCalls struct {
	// Runner runs the calls: the model versions of the pipeline version serving the
	// request (nil: the runtime's, SetModelRunner).
	Runner       ModelRunner
	Max          int           // calls allowed in the request (max_model_calls)
	QueueTimeout time.Duration // most a call waits for a free interpreter (the pipeline's queue_timeout)
	N            int           // calls made
	Copied       int           // bytes copied by them
	Time         time.Duration // their total time, waits included
}

type modelCallsKey struct{}

// WithModelCalls returns ctx carrying the request's model-call budget.
func WithModelCalls(ctx context.Context, mc *ModelCalls) context.Context {
	return context.WithValue(ctx, modelCallsKey{}, mc)
}

func modelCallsFrom(ctx context.Context) *ModelCalls {
	mc, _ := ctx.Value(modelCallsKey{}).(*ModelCalls)
	return mc
}

// SetModelRunner sets the runtime-wide runner behind the model-call imports, used where
// neither the request (ModelCalls.Runner) nor the instantiation (WithModelRunner) names one;
// with none, every model call fails as not granted.
func (r *Runtime) SetModelRunner(mr ModelRunner) { r.models.Store(&mr) }

type modelRunnerKey struct{}

// WithModelRunner returns ctx naming the runner for the model calls of calls made with it
// outside a request (edgehost_init's model_tensors, when a pipeline version builds its
// instances).
func WithModelRunner(ctx context.Context, mr ModelRunner) context.Context {
	return context.WithValue(ctx, modelRunnerKey{}, mr)
}

func (r *Runtime) modelRunner(ctx context.Context) ModelRunner {
	if mc := modelCallsFrom(ctx); mc != nil && mc.Runner != nil {
		return mc.Runner
	}
	if mr, ok := ctx.Value(modelRunnerKey{}).(ModelRunner); ok && mr != nil {
		return mr
	}
	if p := r.models.Load(); p != nil {
		return *p
	}
	return nil
}

// ModelCallError is a failed model call. The plugin call that made it fails with this
// error, whatever status the plugin then returns.
type ModelCallError struct {
	Plugin string
	Model  string
	Status int32 // abi.ModelCall*
	Msg    string
	Err    error // the cause: context.DeadlineExceeded, ErrModelBusy, an inference error, or nil
}

func (e *ModelCallError) Error() string {
	return fmt.Sprintf("plugin %s: model call %q: %s", e.Plugin, e.Model, e.Msg)
}

func (e *ModelCallError) Unwrap() error { return e.Err }

// maxModelName bounds a model name passed to the imports.
const maxModelName = 256

func (r *Runtime) modelName(mod api.Module, ptr, n uint32) string {
	if n > maxModelName {
		n = maxModelName
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(&boundsError{what: "model name", ptr: ptr, n: n, size: mod.Memory().Size()})
	}
	return Sanitize(string(b))
}

// modelFail records the first failed model call of the running plugin call and returns
// its status for the guest.
func (i *Instance) modelFail(model string, status int32, err error, format string, a ...any) uint64 {
	if i.modelErr == nil {
		i.modelErr = &ModelCallError{Plugin: i.m.Name(), Model: model, Status: status, Msg: fmt.Sprintf(format, a...), Err: err}
	}
	return uint64(uint32(status))
}

// granted checks the grant and returns the model's tensors.
func (r *Runtime) granted(ctx context.Context, i *Instance, name string) (in, out []Tensor, status int32, msg string) {
	if !slices.Contains(i.m.cfg.Grants.Models, name) {
		return nil, nil, abi.ModelCallNotGranted, fmt.Sprintf("the model is not granted to this plugin (grants.models = %q): add it to the plugin's grants in config.toml", i.m.cfg.Grants.Models)
	}
	mr := r.modelRunner(ctx)
	if mr == nil {
		return nil, nil, abi.ModelCallNotGranted, "this host runs no models for plugins"
	}
	in, out, ok := mr.ModelTensors(name)
	if !ok {
		return nil, nil, abi.ModelCallNotGranted, "no such model is loaded"
	}
	return in, out, abi.ModelCallOK, ""
}

// hostModelTensors is model_tensors(name_ptr, name_len, descs_ptr, cap) -> i32.
func (r *Runtime) hostModelTensors(ctx context.Context, mod api.Module, stack []uint64) {
	name := r.modelName(mod, uint32(stack[0]), uint32(stack[1]))
	descs, capacity := uint32(stack[2]), uint32(stack[3])
	i := r.caller(mod)
	if i == nil {
		stack[0] = statusWord(abi.ModelCallFailed)
		return
	}
	in, out, st, msg := r.granted(ctx, i, name)
	if st != abi.ModelCallOK {
		stack[0] = i.modelFail(name, st, nil, "%s", msg)
		return
	}
	all := append(append([]Tensor(nil), in...), out...)
	n := min(uint32(len(all)), capacity)
	tb, ok := mod.Memory().Read(descs, n*abi.TensorDescSize)
	if !ok {
		stack[0] = i.modelFail(name, abi.ModelCallBadBuffers, nil, "descriptor buffer [%d, +%d) lies outside guest memory (%d bytes)", descs, n*abi.TensorDescSize, mod.Memory().Size())
		return
	}
	le := binary.LittleEndian
	for k := range n {
		t := all[k]
		d := tb[k*abi.TensorDescSize : (k+1)*abi.TensorDescSize]
		clear(d)
		le.PutUint32(d[abi.TensorOffDType:], uint32(t.DType))
		le.PutUint32(d[abi.TensorOffNDims:], uint32(min(len(t.Shape), abi.MaxDims)))
		for j, v := range t.Shape[:min(len(t.Shape), abi.MaxDims)] {
			le.PutUint32(d[abi.TensorOffDims+4*j:], uint32(int32(v)))
		}
		le.PutUint32(d[abi.TensorOffScale:], math.Float32bits(t.Scale))
		le.PutUint32(d[abi.TensorOffZeroPoint:], uint32(t.ZeroPoint))
		le.PutUint32(d[abi.TensorOffBytes:], uint32(t.Bytes))
	}
	stack[0] = uint64(uint32(len(in))<<16 | uint32(len(out)))
}

// hostRunModel is run_model(name_ptr, name_len, bufs_ptr, n) -> i32.
func (r *Runtime) hostRunModel(ctx context.Context, mod api.Module, stack []uint64) {
	name := r.modelName(mod, uint32(stack[0]), uint32(stack[1]))
	bufs, n := uint32(stack[2]), uint32(stack[3])
	i := r.caller(mod)
	if i == nil {
		stack[0] = statusWord(abi.ModelCallFailed)
		return
	}
	in, out, st, msg := r.granted(ctx, i, name)
	if st != abi.ModelCallOK {
		stack[0] = i.modelFail(name, st, nil, "%s", msg)
		return
	}
	mc := modelCallsFrom(ctx)
	if mc == nil {
		stack[0] = i.modelFail(name, abi.ModelCallFailed, nil, "models run only during a request's pre or post call, not in %s", i.calling)
		return
	}
	if mc.N >= mc.Max {
		stack[0] = i.modelFail(name, abi.ModelCallLimit, nil, "the request's %d model calls (max_model_calls) are spent: a fan-out this wide needs a higher limit in config.toml", mc.Max)
		return
	}
	if err := ctx.Err(); err != nil {
		stack[0] = i.modelFail(name, abi.ModelCallDeadline, err, "the request's deadline has passed (%v): no model runs after it", err)
		return
	}
	if i.spent() {
		stack[0] = i.modelFail(name, abi.ModelCallDeadline, context.DeadlineExceeded, "the plugin's time budget of %v for %s is spent: no model runs after it", i.m.cfg.Timeout, i.calling)
		return
	}
	if int(n) != len(in)+len(out) {
		stack[0] = i.modelFail(name, abi.ModelCallBadBuffers, nil, "%d buffers passed; the model has %d inputs and %d outputs", n, len(in), len(out))
		return
	}
	raw, ok := mod.Memory().Read(bufs, n*abi.ModelBufSize)
	if !ok {
		stack[0] = i.modelFail(name, abi.ModelCallBadBuffers, nil, "buffer table [%d, +%d) lies outside guest memory (%d bytes)", bufs, n*abi.ModelBufSize, mod.Memory().Size())
		return
	}
	tb := make([]TensorBuffer, n)
	le := binary.LittleEndian
	size := uint64(mod.Memory().Size())
	for k := range n {
		p, b := le.Uint32(raw[k*abi.ModelBufSize:]), le.Uint32(raw[k*abi.ModelBufSize+4:])
		var t Tensor
		what := "input"
		if int(k) < len(in) {
			t = in[k]
		} else {
			t, what = out[int(k)-len(in)], "output"
		}
		switch {
		case int(b) != t.Bytes:
			stack[0] = i.modelFail(name, abi.ModelCallBadBuffers, nil, "%s %s: buffer of %d bytes, the tensor has %d", what, t.Name, b, t.Bytes)
			return
		case p%abi.TensorAlign != 0:
			stack[0] = i.modelFail(name, abi.ModelCallBadBuffers, nil, "%s %s: buffer at %d is not %d-byte aligned", what, t.Name, p, abi.TensorAlign)
			return
		case p == 0 || uint64(p)+uint64(b) > size:
			stack[0] = i.modelFail(name, abi.ModelCallBadBuffers, nil, "%s %s: buffer [%d, +%d) lies outside guest memory (%d bytes)", what, t.Name, p, b, size)
			return
		}
		tb[k] = TensorBuffer{Data: i.Pointer(p), Bytes: int(b)}
	}
	waitUntil := time.Now().Add(mc.QueueTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(waitUntil) {
		waitUntil = dl
	}
	// The call's time is the request's, not the guest's: the plugin's own budget is moved
	// on by it (the request deadline in ctx keeps counting).
	t0, cpu0 := time.Now(), threadCPU()
	run, err := r.modelRunner(ctx).RunModel(ctx, name, tb, waitUntil)
	el := time.Since(t0)
	if !i.deadline.IsZero() {
		i.deadline = i.deadline.Add(el)
		if i.m.cfg.BudgetClock == BudgetCPU {
			i.cpuStart += threadCPU() - cpu0
		}
	}
	mc.N++
	mc.Copied += run.Copied
	mc.Time += el
	if err != nil {
		status := int32(abi.ModelCallFailed)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			status = abi.ModelCallDeadline
		}
		stack[0] = i.modelFail(name, status, err, "%v", err)
		return
	}
	stack[0] = abi.ModelCallOK
}

// statusWord is a model-call status as the i32 result on the stack.
func statusWord(s int32) uint64 { return uint64(uint32(s)) }

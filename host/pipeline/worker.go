package pipeline

import (
	"context"
	"fmt"
	"io"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// worker is one pre instance, one interpreter and one post instance, bound together: the
// interpreter's inputs live in the pre instance's memory and its outputs in the post's.
type worker struct {
	pre, post *plugin.Instance
	it        *tflite.Interpreter
	seqFlags  uint32 // abi.FlagSequence… of the running request; 0 outside sequences
}

func tensors(ts []tflite.TensorInfo) []plugin.Tensor {
	out := make([]plugin.Tensor, len(ts))
	for i, t := range ts {
		out[i] = plugin.Tensor{Name: t.Name, DType: t.Type, Shape: t.Shape, Scale: t.Scale, ZeroPoint: t.ZeroPoint, Bytes: t.Bytes}
	}
	return out
}

func newWorker(ctx context.Context, spec Spec, zeroCopy bool) (*worker, error) {
	w := &worker{}
	var err error
	if w.it, err = spec.Model.NewInterpreter(); err != nil {
		return nil, err
	}
	if spec.SharedInstance {
		if err = w.replaceShared(ctx, spec, zeroCopy); err != nil {
			w.close(ctx)
			return nil, err
		}
		return w, nil
	}
	if err = w.replacePre(ctx, spec, zeroCopy); err == nil {
		err = w.replacePost(ctx, spec, zeroCopy)
	}
	if err != nil {
		w.close(ctx)
		return nil, err
	}
	return w, nil
}

// replacePre makes a fresh pre instance, binds the model inputs in it and, in zero-copy
// mode, points the interpreter at them before closing the old instance.
func (w *worker) replacePre(ctx context.Context, spec Spec, zeroCopy bool) error {
	inst, err := w.fresh(ctx, spec, spec.Pre, spec.Model.Inputs, zeroCopy, w.it.BindInput)
	if err == nil {
		if w.pre != nil {
			w.pre.Close(ctx)
		}
		w.pre = inst
	}
	return err
}

// replaceShared makes the one instance of a shared-instance worker: the model's inputs and
// outputs are both bound in its memory.
func (w *worker) replaceShared(ctx context.Context, spec Spec, zeroCopy bool) error {
	inst, err := w.fresh(ctx, spec, spec.Pre, spec.Model.Inputs, zeroCopy, w.it.BindInput)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		// The interpreter may point into inst already: rebind it to the old instance
		// before closing inst (or, with none, it is never invoked before the next repair).
		if w.pre != nil {
			_ = w.bindShared(w.pre, zeroCopy)
		}
		inst.Close(ctx)
		return err
	}
	if err := inst.BindPost(ctx, tensors(spec.Model.Outputs)); err != nil {
		return fail(err)
	}
	if err := w.bindShared(inst, zeroCopy); err != nil {
		return fail(err)
	}
	if w.pre != nil {
		w.pre.Close(ctx)
	}
	w.pre, w.post = inst, inst
	return nil
}

func (w *worker) bindShared(inst *plugin.Instance, zeroCopy bool) error {
	if !zeroCopy {
		return nil
	}
	for n := range w.it.InputCount() {
		b, p := inst.TensorData(n)
		if err := w.it.BindInput(n, p, len(b)); err != nil {
			return err
		}
	}
	for n := range w.it.OutputCount() {
		b, p := inst.PostTensorData(n)
		if err := w.it.BindOutput(n, p, len(b)); err != nil {
			return err
		}
	}
	return w.it.AllocateTensors()
}

// replacePost is replacePre for the post instance and the model outputs.
func (w *worker) replacePost(ctx context.Context, spec Spec, zeroCopy bool) error {
	inst, err := w.fresh(ctx, spec, spec.Post, spec.Model.Outputs, zeroCopy, w.it.BindOutput)
	if err == nil {
		if w.post != nil {
			w.post.Close(ctx)
		}
		w.post = inst
	}
	return err
}

// fresh instantiates m, binds ts in its memory and, in zero-copy mode, binds the
// interpreter's tensors to those buffers.
func (w *worker) fresh(ctx context.Context, spec Spec, m *plugin.Module, ts []tflite.TensorInfo, zeroCopy bool,
	bind func(n int, p unsafe.Pointer, size int) error) (*plugin.Instance, error) {
	ictx := ctx
	if spec.Calls != nil { // init may describe the models this version calls
		ictx = plugin.WithModelRunner(ctx, spec.Calls)
	}
	inst, err := m.NewInstance(ictx)
	if err != nil {
		return nil, err
	}
	if err := inst.Bind(ctx, tensors(ts)); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	if zeroCopy {
		for n := range ts {
			b, p := inst.TensorData(n)
			if err := bind(n, p, len(b)); err != nil {
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

// repair replaces an instance that trapped on an earlier request.
func (w *worker) repair(ctx context.Context, spec Spec, zeroCopy bool) error {
	if spec.SharedInstance {
		if w.pre == nil || w.pre.Broken() != nil {
			if err := w.replaceShared(ctx, spec, zeroCopy); err != nil {
				return fmt.Errorf("replacing trapped instance: %w", err)
			}
		}
		return nil
	}
	if w.pre == nil || w.pre.Broken() != nil {
		if err := w.replacePre(ctx, spec, zeroCopy); err != nil {
			return fmt.Errorf("replacing trapped pre instance: %w", err)
		}
	}
	if w.post == nil || w.post.Broken() != nil {
		if err := w.replacePost(ctx, spec, zeroCopy); err != nil {
			return fmt.Errorf("replacing trapped post instance: %w", err)
		}
	}
	return nil
}

// BadRequestError is a request the host itself rejects before any plugin runs.
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

func (w *worker) run(ctx context.Context, req Request, fn Result, spec Spec, zeroCopy bool) (st Stats, _ error) {
	body, size := req.Body, req.Size
	if size < 0 || size > 1<<30 {
		return st, &BadRequestError{Msg: fmt.Sprintf("request size %d is invalid", size)}
	}
	// The request's bytes leave guest memory when it ends, whatever happened (ReleaseInput).
	defer w.pre.ReleaseInput(ctx)
	buf, err := w.pre.InputBuffer(ctx, uint32(size))
	if err != nil {
		return st, err
	}
	if _, err := io.ReadFull(body, buf); err != nil {
		return st, &BadRequestError{Msg: fmt.Sprintf("reading request body: %v", err)}
	}
	// The request's model-call budget travels in the context of both plugin calls.
	calls := &plugin.ModelCalls{Max: spec.MaxModelCalls, QueueTimeout: spec.QueueTimeout}
	if spec.Calls != nil {
		calls.Runner = spec.Calls
	}
	ctx = plugin.WithModelCalls(ctx, calls)
	defer func() {
		st.ModelCalls, st.ModelTime = calls.N, calls.Time
		st.CopiedBytes += calls.Copied
	}()
	t0 := time.Now()
	w.pre.SetSequenceFlags(w.seqFlags)
	if err := w.pre.PreFrame(ctx, uint32(size), req.Frame); err != nil {
		return st, err
	}
	t1 := time.Now()
	st.Pre = t1.Sub(t0)
	postFlags := w.seqFlags
	if w.pre.SkipModel() {
		// The pre plugin gave the model no new input (ABI.md §5.8): no inference; the post
		// plugin is told, and its output tensors keep the last run's values.
		postFlags |= abi.FlagSkipModel
	} else if err := w.infer(spec, zeroCopy, &st); err != nil {
		return st, err
	}
	w.post.SetSequenceFlags(postFlags)
	t2 := time.Now()
	st.Infer = t2.Sub(t1)
	res, err := w.post.Post(ctx, w.pre.Context())
	st.Post = time.Since(t2)
	if err != nil {
		return st, err
	}
	return st, fn(res, w.post.Module().Manifest.ResultType())
}

// infer runs the model on the pre instance's tensors into the post instance's. A request
// that runs alone in the process (and is not part of a sequence, whose state lives in this
// worker's interpreter) runs on the model's idle interpreter instead, whose threads take the
// cores no other request is using (RATIONALE.md, "Adaptive parallelism"); that interpreter
// is shared, so its tensors are copied in and out.
func (w *worker) infer(spec Spec, zeroCopy bool, st *Stats) error {
	it, copyIO := w.it, !zeroCopy
	st.Threads = max(1, spec.Model.Options().Threads)
	if w.seqFlags == 0 {
		if idle := spec.Model.IdleInterpreter(); idle != nil {
			defer spec.Model.PutIdle(idle)
			it, copyIO, st.Threads = idle, true, spec.Model.IdleThreads()
		}
	}
	if copyIO {
		for n := range it.InputCount() {
			b, _ := w.pre.TensorData(n)
			st.CopiedBytes += copy(it.Input(n), b)
		}
	}
	if err := it.Invoke(); err != nil {
		return err
	}
	if copyIO {
		for n := range it.OutputCount() {
			data := w.post.TensorData
			if spec.SharedInstance { // its TensorData are the inputs
				data = w.post.PostTensorData
			}
			b, _ := data(n)
			st.CopiedBytes += copy(b, it.Output(n))
		}
	}
	return nil
}

func (w *worker) close(ctx context.Context) {
	// The interpreter points into both instances' memory: close it first.
	if w.it != nil {
		w.it.Close()
		w.it = nil
	}
	if w.post != nil && w.post != w.pre { // a shared instance is closed once, as pre
		w.post.Close(ctx)
	}
	w.post = nil
	if w.pre != nil {
		w.pre.Close(ctx)
		w.pre = nil
	}
}

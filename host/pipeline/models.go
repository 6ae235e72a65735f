package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// Models is the set of models plugins may call (plugin.ModelRunner, ABI §5.9). Each model
// has its own pool of interpreters for these calls, apart from the pipelines' workers and
// from the bare-model pool, so a nested call never waits on the worker that makes it and a
// bare KServe request never finds its tensors pointing into a plugin's memory. Set installs
// a new version of a model atomically: calls in flight finish on the version they took (its
// interpreters are closed as they come back), new calls take the new one. Safe for
// concurrent use.
type Models struct {
	mu    sync.RWMutex
	m     map[string]*callModel
	stats map[string]*ModelStats // by name, kept across versions
	// OneCopy copies tensors instead of binding them (for comparison and tests).
	OneCopy bool
}

// ModelStats counts the model calls of one model, across its versions.
type ModelStats struct {
	Calls, Errors   atomic.Int64
	Nanos, WaitNano atomic.Int64 // invoke time; time waiting for an interpreter
	Copied          atomic.Int64 // bytes copied between guest memory and the interpreter
}

type callModel struct {
	model *tflite.Model
	pool  *tflite.Pool
	bound sync.Map // *tflite.Interpreter -> true once its tensors were bound and allocated
}

// NewModels returns an empty set.
func NewModels() *Models {
	return &Models{m: map[string]*callModel{}, stats: map[string]*ModelStats{}}
}

// Set makes m the version of model name that calls use, with a pool of at most size
// interpreters (built when first needed). The previous version's pool is closed: its
// interpreters in use finish their call and are closed when put back.
func (ms *Models) Set(name string, m *tflite.Model, size int) error {
	pool, err := tflite.NewPool(m, size, 0)
	if err != nil {
		return err
	}
	ms.mu.Lock()
	old := ms.m[name]
	ms.m[name] = &callModel{model: m, pool: pool}
	if ms.stats[name] == nil {
		ms.stats[name] = &ModelStats{}
	}
	ms.mu.Unlock()
	if old != nil {
		old.pool.Close()
	}
	return nil
}

// Remove stops calls to model name (calls in flight finish).
func (ms *Models) Remove(name string) {
	ms.mu.Lock()
	old := ms.m[name]
	delete(ms.m, name)
	ms.mu.Unlock()
	if old != nil {
		old.pool.Close()
	}
}

// Close closes every pool.
func (ms *Models) Close() {
	ms.mu.Lock()
	all := ms.m
	ms.m = map[string]*callModel{}
	ms.mu.Unlock()
	for _, cm := range all {
		cm.pool.Close()
	}
}

// Stats returns the call statistics of model name (nil if it was never set).
func (ms *Models) Stats(name string) *ModelStats {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.stats[name]
}

// Names returns the models calls can reach, sorted.
func (ms *Models) Names() []string {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	out := make([]string, 0, len(ms.m))
	for n := range ms.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (ms *Models) get(name string) (*callModel, *ModelStats) {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.m[name], ms.stats[name]
}

// ModelTensors implements plugin.ModelRunner.
func (ms *Models) ModelTensors(name string) (in, out []plugin.Tensor, ok bool) {
	cm, _ := ms.get(name)
	if cm == nil {
		return nil, nil, false
	}
	return tensors(cm.model.Inputs), tensors(cm.model.Outputs), true
}

// RunModel implements plugin.ModelRunner: an interpreter from the model's own pool, its
// tensors bound to bufs (zero copy; rebinding is a pointer store per tensor, and XNNPACK
// sets itself up again only when a pointer changed) or, with a library that cannot bind,
// each input copied in and each output copied out.
func (ms *Models) RunModel(ctx context.Context, name string, bufs []plugin.TensorBuffer, waitUntil time.Time) (plugin.ModelRun, error) {
	var run plugin.ModelRun
	t0 := time.Now()
	for try := 0; ; try++ {
		cm, st := ms.get(name)
		if cm == nil {
			return run, fmt.Errorf("model %s is not loaded", name)
		}
		wctx, cancel := context.WithDeadline(ctx, waitUntil)
		it, err := cm.pool.Get(wctx)
		cancel()
		if errors.Is(err, tflite.ErrPoolClosed) && try < 3 {
			continue // replaced between the lookup and the Get: take the new version
		}
		if err != nil {
			st.Errors.Add(1)
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			if wctx.Err() != nil {
				return run, fmt.Errorf("%w (waited %v)", plugin.ErrModelBusy, time.Since(t0).Round(time.Millisecond))
			}
			return run, err
		}
		run.Wait = time.Since(t0)
		run, err = ms.invoke(cm, it, bufs, run)
		cm.pool.Put(it)
		st.Calls.Add(1)
		st.WaitNano.Add(int64(run.Wait))
		st.Nanos.Add(int64(run.Invoke))
		st.Copied.Add(int64(run.Copied))
		if err != nil {
			st.Errors.Add(1)
		}
		return run, err
	}
}

func (ms *Models) invoke(cm *callModel, it *tflite.Interpreter, bufs []plugin.TensorBuffer, run plugin.ModelRun) (plugin.ModelRun, error) {
	nin, nout := len(cm.model.Inputs), len(cm.model.Outputs)
	if len(bufs) != nin+nout {
		return run, fmt.Errorf("%d buffers for a model with %d inputs and %d outputs (the model was replaced during the call?)", len(bufs), nin, nout)
	}
	for k, b := range bufs {
		t := cm.model.Inputs
		n := k
		if k >= nin {
			t, n = cm.model.Outputs, k-nin
		}
		if t[n].Bytes != b.Bytes {
			return run, fmt.Errorf("tensor %s: buffer of %d bytes, the tensor has %d (the model was replaced during the call?)", t[n].Name, b.Bytes, t[n].Bytes)
		}
	}
	zeroCopy := !ms.OneCopy && tflite.Probe().CustomAllocation
	t0 := time.Now()
	if zeroCopy {
		for k, b := range bufs {
			var err error
			if k < nin {
				err = it.BindInput(k, b.Data, b.Bytes)
			} else {
				err = it.BindOutput(k-nin, b.Data, b.Bytes)
			}
			if err != nil {
				return run, err
			}
		}
		// The first binding plans the tensors once (sizes checked); later ones only move
		// pointers, which Invoke follows.
		if _, done := cm.bound.Load(it); !done {
			if err := it.AllocateTensors(); err != nil {
				return run, err
			}
			cm.bound.Store(it, true)
		}
	} else {
		for k := range nin {
			run.Copied += copy(it.Input(k), unsafe.Slice((*byte)(bufs[k].Data), bufs[k].Bytes))
		}
	}
	if err := it.Invoke(); err != nil {
		return run, err
	}
	if !zeroCopy {
		for k := range nout {
			b := bufs[nin+k]
			run.Copied += copy(unsafe.Slice((*byte)(b.Data), b.Bytes), it.Output(k))
		}
	}
	run.Invoke = time.Since(t0)
	return run, nil
}

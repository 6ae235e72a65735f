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
	pool  *callPool
}

// callPool holds up to size interpreters of one model version for model calls. Get prefers
// the free interpreter last bound to the caller's buffers: rebinding is a pointer store,
// but XNNPACK sets its runtime up again when a pointer moved (mobilenet: about 12 ms of a
// 21 ms call, TestModelCallRebind), so a plugin instance that keeps calling a model keeps
// its interpreter while there are enough of them.
type callPool struct {
	model  *tflite.Model
	size   int
	mu     sync.Mutex
	free   []*callSlot
	n      int           // interpreters that exist
	wake   chan struct{} // closed and replaced when an interpreter is put back or the pool closes
	closed bool
}

type callSlot struct {
	it    *tflite.Interpreter
	key   unsafe.Pointer // the first buffer it was last bound to (nil: never bound)
	bound bool           // tensors allocated after the first binding
}

func newCallPool(m *tflite.Model, size int) *callPool {
	return &callPool{model: m, size: max(1, size), wake: make(chan struct{})}
}

// get returns a free interpreter (preferring the one last bound at key), builds one while
// fewer than size exist, or waits for one, for ctx or for Close (tflite.ErrPoolClosed).
func (p *callPool) get(ctx context.Context, key unsafe.Pointer) (*callSlot, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, tflite.ErrPoolClosed
		}
		if len(p.free) > 0 {
			k := len(p.free) - 1
			for i, s := range p.free {
				if s.key == key {
					k = i
					break
				}
			}
			s := p.free[k]
			p.free = append(p.free[:k], p.free[k+1:]...)
			p.mu.Unlock()
			return s, nil
		}
		if p.n < p.size {
			p.n++
			p.mu.Unlock()
			it, err := p.model.NewInterpreter()
			if err != nil {
				p.mu.Lock()
				p.n--
				p.mu.Unlock()
				return nil, err
			}
			return &callSlot{it: it}, nil
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *callPool) put(s *callSlot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		s.it.Close()
		p.n--
		return
	}
	p.free = append(p.free, s)
	close(p.wake)
	p.wake = make(chan struct{})
}

// close closes the free interpreters now and the others as they are put back.
func (p *callPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, s := range p.free {
		s.it.Close()
		p.n--
	}
	p.free = nil
	close(p.wake)
}

// NewModels returns an empty set.
func NewModels() *Models {
	return &Models{m: map[string]*callModel{}, stats: map[string]*ModelStats{}}
}

// Set makes m the version of model name that calls use, with a pool of at most size
// interpreters (built when first needed). The previous version's pool is closed: its
// interpreters in use finish their call and are closed when put back.
func (ms *Models) Set(name string, m *tflite.Model, size int) error {
	pool := newCallPool(m, size)
	ms.mu.Lock()
	old := ms.m[name]
	ms.m[name] = &callModel{model: m, pool: pool}
	if ms.stats[name] == nil {
		ms.stats[name] = &ModelStats{}
	}
	ms.mu.Unlock()
	if old != nil {
		old.pool.close()
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
		old.pool.close()
	}
}

// Close closes every pool.
func (ms *Models) Close() {
	ms.mu.Lock()
	all := ms.m
	ms.m = map[string]*callModel{}
	ms.mu.Unlock()
	for _, cm := range all {
		cm.pool.close()
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
		var key unsafe.Pointer
		if len(bufs) > 0 {
			key = bufs[0].Data
		}
		wctx, cancel := context.WithDeadline(ctx, waitUntil)
		slot, err := cm.pool.get(wctx, key)
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
		run, err = ms.invoke(slot, cm.model, bufs, run)
		cm.pool.put(slot)
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

func (ms *Models) invoke(slot *callSlot, model *tflite.Model, bufs []plugin.TensorBuffer, run plugin.ModelRun) (plugin.ModelRun, error) {
	it := slot.it
	nin, nout := len(model.Inputs), len(model.Outputs)
	if len(bufs) != nin+nout {
		return run, fmt.Errorf("%d buffers for a model with %d inputs and %d outputs (the model was replaced during the call?)", len(bufs), nin, nout)
	}
	for k, b := range bufs {
		t := model.Inputs
		n := k
		if k >= nin {
			t, n = model.Outputs, k-nin
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
		slot.key = nil
		if !slot.bound {
			if err := it.AllocateTensors(); err != nil {
				return run, err
			}
			slot.bound = true
		}
		if len(bufs) > 0 {
			slot.key = bufs[0].Data
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

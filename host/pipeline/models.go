package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// Models is the set of models plugins may call (ABI §5.9), one current version per name.
// Each version has its own pool of interpreters for these calls, apart from the pipelines'
// workers and from the bare-model pool, so a nested call never waits on the worker that makes
// it and a bare KServe request never finds its tensors pointing into a plugin's memory.
//
// A pipeline version does not call "the current version": it holds a CallSet (Acquire), the
// versions current when it was built, for its whole life. A model reload therefore goes
// through the pipeline's own atomic swap: the engine sets the new version, prepares a new
// pipeline version on it (golden check), and commits it; requests in flight finish on the
// versions they took, and a version's pool closes when the last pipeline version holding it
// closes (drain). Safe for concurrent use.
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

// callModel is one version of a callable model: reference-counted by the registry (while
// current) and by every CallSet holding it; its pool closes with the last reference.
type callModel struct {
	model *tflite.Model
	pool  *callPool
	stats *ModelStats
	refs  atomic.Int32
}

func (cm *callModel) release() {
	if cm.refs.Add(-1) == 0 {
		cm.pool.close()
	}
}

// NewModels returns an empty set.
func NewModels() *Models {
	return &Models{m: map[string]*callModel{}, stats: map[string]*ModelStats{}}
}

// Set makes m the current version of model name, with a pool of at most size interpreters
// (built when first needed). Pipeline versions built before keep the version they hold.
func (ms *Models) Set(name string, m *tflite.Model, size int) error {
	ms.mu.Lock()
	if ms.stats[name] == nil {
		ms.stats[name] = &ModelStats{}
	}
	cm := &callModel{model: m, pool: newCallPool(m, size), stats: ms.stats[name]}
	cm.refs.Store(1)
	old := ms.m[name]
	ms.m[name] = cm
	ms.mu.Unlock()
	if old != nil {
		old.release()
	}
	return nil
}

// Remove stops new pipeline versions from calling model name.
func (ms *Models) Remove(name string) {
	ms.mu.Lock()
	old := ms.m[name]
	delete(ms.m, name)
	ms.mu.Unlock()
	if old != nil {
		old.release()
	}
}

// Close drops the registry's references (pools close as their pipeline versions close).
func (ms *Models) Close() {
	ms.mu.Lock()
	all := ms.m
	ms.m = map[string]*callModel{}
	ms.mu.Unlock()
	for _, cm := range all {
		cm.release()
	}
}

// Stats returns the call statistics of model name (nil if it was never set).
func (ms *Models) Stats(name string) *ModelStats {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.stats[name]
}

// Current returns the current version of model name (nil if none).
func (ms *Models) Current(name string) *tflite.Model {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if cm := ms.m[name]; cm != nil {
		return cm.model
	}
	return nil
}

// acquire returns the current version of name with a reference the caller releases.
func (ms *Models) acquire(name string) *callModel {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	cm := ms.m[name]
	if cm != nil {
		cm.refs.Add(1)
	}
	return cm
}

// Acquire returns the current versions of the named models (names not loaded are left out:
// a call to them fails as not loaded), held until CallSet.Release.
func (ms *Models) Acquire(names []string) *CallSet {
	cs := &CallSet{m: map[string]*callModel{}, oneCopy: ms.OneCopy}
	for _, n := range names {
		if _, dup := cs.m[n]; dup {
			continue
		}
		if cm := ms.acquire(n); cm != nil {
			cs.m[n] = cm
		}
	}
	return cs
}

// CallSet is the model versions one pipeline version's plugins may call: a
// plugin.ModelRunner fixed for that version's life. Release it once (the pipeline version
// does when it closes).
type CallSet struct {
	m        map[string]*callModel
	oneCopy  bool // Models.OneCopy when acquired
	released atomic.Bool
}

// Release drops the set's references.
func (cs *CallSet) Release() {
	if cs == nil || cs.released.Swap(true) {
		return
	}
	for _, cm := range cs.m {
		cm.release()
	}
}

// Uses reports whether the set holds a version on model m.
func (cs *CallSet) Uses(m *tflite.Model) bool {
	if cs == nil {
		return false
	}
	for _, cm := range cs.m {
		if cm.model == m {
			return true
		}
	}
	return false
}

// Model returns the version of name the set holds (nil if none).
func (cs *CallSet) Model(name string) *tflite.Model {
	if cs == nil || cs.m[name] == nil {
		return nil
	}
	return cs.m[name].model
}

// ModelTensors implements plugin.ModelRunner.
func (cs *CallSet) ModelTensors(name string) (in, out []plugin.Tensor, ok bool) {
	cm := cs.m[name]
	if cm == nil {
		return nil, nil, false
	}
	return tensors(cm.model.Inputs), tensors(cm.model.Outputs), true
}

// RunModel implements plugin.ModelRunner (see Models.RunModel).
func (cs *CallSet) RunModel(ctx context.Context, name string, bufs []plugin.TensorBuffer, waitUntil time.Time) (plugin.ModelRun, error) {
	cm := cs.m[name]
	if cm == nil {
		return plugin.ModelRun{}, fmt.Errorf("model %s is not loaded", name)
	}
	return run(ctx, cm, bufs, waitUntil, cs.oneCopy)
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

// ModelTensors implements plugin.ModelRunner on the current versions (the runtime-wide
// fallback for calls outside a pipeline version).
func (ms *Models) ModelTensors(name string) (in, out []plugin.Tensor, ok bool) {
	cm := ms.acquire(name)
	if cm == nil {
		return nil, nil, false
	}
	defer cm.release()
	return tensors(cm.model.Inputs), tensors(cm.model.Outputs), true
}

// RunModel implements plugin.ModelRunner on the current version: an interpreter from the
// model's own pool, its tensors bound to bufs (zero copy; rebinding is a pointer store per
// tensor) or, with a library that cannot bind, each input copied in and each output copied
// out.
func (ms *Models) RunModel(ctx context.Context, name string, bufs []plugin.TensorBuffer, waitUntil time.Time) (plugin.ModelRun, error) {
	cm := ms.acquire(name)
	if cm == nil {
		return plugin.ModelRun{}, fmt.Errorf("model %s is not loaded", name)
	}
	defer cm.release()
	return run(ctx, cm, bufs, waitUntil, ms.OneCopy)
}

func run(ctx context.Context, cm *callModel, bufs []plugin.TensorBuffer, waitUntil time.Time, oneCopy bool) (plugin.ModelRun, error) {
	var run plugin.ModelRun
	t0 := time.Now()
	var key unsafe.Pointer
	if len(bufs) > 0 {
		key = bufs[0].Data
	}
	wctx, cancel := context.WithDeadline(ctx, waitUntil)
	slot, err := cm.pool.get(wctx, key)
	cancel()
	st := cm.stats
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
	run, err = invoke(slot, cm.model, bufs, run, oneCopy)
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

func invoke(slot *callSlot, model *tflite.Model, bufs []plugin.TensorBuffer, run plugin.ModelRun, oneCopy bool) (plugin.ModelRun, error) {
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
	zeroCopy := !oneCopy && tflite.Probe().CustomAllocation
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

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/hashicorp/go-hclog"
)

// Spec is everything one version of a pipeline is built from.
type Spec struct {
	Name    string
	Model   *tflite.Model
	Pre     *plugin.Module
	Post    *plugin.Module
	Workers int // concurrent requests; each worker owns a pre instance, an interpreter and a post instance
	// OneCopy forces the one-copy data path even when the library supports custom
	// allocation (for comparison and tests).
	OneCopy bool
	// QueueTimeout bounds how long a request waits for a free worker; 0 means 5s.
	QueueTimeout time.Duration
	// Probation, when Requests > 0, keeps the previous version ready after a swap: if more
	// than MaxFailShare of the new version's first Requests requests fail, the pipeline
	// rolls back to it by itself (see Failed for what counts).
	Probation Probation
	// Sequences bounds the live sequences and their idle time (see Sequence).
	Sequences SequenceLimits
	// MaxModelCalls bounds the model calls (ABI §5.9) one request's plugins may make; 0
	// allows none.
	MaxModelCalls int
	// Calls are the model versions this version's plugins may call (Models.Acquire; nil:
	// the runtime's, plugin.Runtime.SetModelRunner). The version owns the set: it releases
	// it when it closes, or at once if it cannot be built.
	Calls *CallSet
	// SharedInstance runs pre and post on one instance of Pre (a kind "both" plugin), so
	// that post reads what pre kept in its memory (the decoded image a cascade crops from)
	// with no copy. Post must be the same module.
	SharedInstance bool
}

// Probation configures automatic rollback after a swap.
type Probation struct {
	Requests     int
	MaxFailShare float64
}

// Failed reports whether a request's error counts against the version that ran it, during
// probation: a trap, an exceeded time budget, any non-zero plugin status (bad_input
// included: a version that refuses every input is broken too), an inference error. Not
// counted: no free worker (overload), the request's context ending (client gone,
// request_timeout), and errors writing the result to the client.
func Failed(ctx context.Context, err error, fromResult bool) bool {
	switch {
	case err == nil, fromResult, errors.Is(err, ErrOverloaded), errors.Is(err, ErrClosed), errors.Is(err, plugin.ErrModelBusy):
		return false // overload (no worker, or no interpreter for a model call), not the version
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return false
	}
	return true
}

// Stats describes one request.
type Stats struct {
	Pre, Infer, Post time.Duration
	CopiedBytes      int // bytes copied between guest memory and TFLite tensors, model calls included
	// Threads is the thread count of the interpreter that ran the model: the model's
	// threads, or its idle threads when the request ran alone (tflite.Model.IdleInterpreter).
	// 0 when the model did not run (FLAG_SKIP_MODEL).
	Threads int
	// ModelCalls is how many models the plugins ran (ABI §5.9), taking ModelTime (inside Pre
	// and Post).
	ModelCalls int
	ModelTime  time.Duration
}

// Pipeline runs pre → inference → post for requests. It is safe for concurrent use; Swap
// replaces its version atomically while in-flight requests finish on the old one.
type Pipeline struct {
	name     string
	log      hclog.Logger
	mu       sync.RWMutex
	gen      *generation
	prev     *generation          // the version before the last swap, kept during probation
	live     map[*generation]bool // every generation not yet closed
	retiring sync.WaitGroup       // generations draining before they close

	// OnRollback, if set, is called (in its own goroutine) after an automatic rollback.
	OnRollback func(reason string)

	Requests, Failures, Traps atomic.Int64
	Copied                    atomic.Int64
	ModelCalls                atomic.Int64 // model calls made by this pipeline's plugins (ABI §5.9)
	// Retried counts requests that failed on a version under probation and were answered
	// by the previous version instead (see Run).
	Retried atomic.Int64

	seq sessions // live sequences (sequence.go)
}

// generation is one immutable version of a pipeline with its workers. It holds a
// reference on its plugin modules, dropped when it is closed.
type generation struct {
	spec     Spec
	zeroCopy bool
	workers  workerStack
	all      []*worker
	inflight sync.WaitGroup
	closed   chan struct{}
	// delegates TFLite applied to the first worker's interpreter, when it was built
	delegates []string
	// probation counters (guarded by Pipeline.mu)
	probReqs, probFails int
	owner               *Pipeline
}

// Version is a built, not yet serving, version of a pipeline (see Prepare).
type Version struct{ g *generation }

// New builds a pipeline and all its workers. Errors leave nothing allocated.
func New(ctx context.Context, spec Spec, log hclog.Logger) (*Pipeline, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	p := &Pipeline{name: spec.Name, log: log.Named("pipeline").With("pipeline", spec.Name), live: map[*generation]bool{}}
	p.seq.m, p.seq.stop, p.seq.done = map[string]*session{}, make(chan struct{}), make(chan struct{})
	g, err := p.newGeneration(ctx, spec)
	if err != nil {
		return nil, err
	}
	p.gen = g
	return p, nil
}

func (p *Pipeline) newGeneration(ctx context.Context, spec Spec) (*generation, error) {
	if spec.Workers <= 0 {
		spec.Workers = 1
	}
	if spec.QueueTimeout == 0 {
		spec.QueueTimeout = 5 * time.Second
	}
	g := &generation{spec: spec, workers: workerStack{tokens: make(chan struct{}, spec.Workers)},
		zeroCopy: !spec.OneCopy && tflite.Probe().CustomAllocation, closed: make(chan struct{}), owner: p}
	p.mu.Lock()
	p.live[g] = true
	p.mu.Unlock()
	if spec.SharedInstance && spec.Post != spec.Pre {
		spec.Calls.Release()
		return nil, fmt.Errorf("pipeline %s: a shared instance needs the same plugin as pre and post", spec.Name)
	}
	spec.Pre.Retain()
	spec.Post.Retain()
	for n := 0; n < spec.Workers; n++ {
		w, err := newWorker(ctx, spec, g.zeroCopy)
		if err != nil {
			g.close(ctx)
			return nil, fmt.Errorf("pipeline %s: worker %d: %w", spec.Name, n+1, err)
		}
		if n == 0 && w.it != nil {
			g.delegates = w.it.Delegates()
		}
		g.all = append(g.all, w)
		g.workers.put(w)
	}
	return g, nil
}

func (g *generation) close(ctx context.Context) {
	for _, w := range g.all {
		w.close(ctx)
	}
	g.all = nil
	g.spec.Pre.Release(ctx)
	g.spec.Post.Release(ctx)
	g.spec.Calls.Release() // after its workers: no call of this version runs any more
	g.owner.mu.Lock()
	delete(g.owner.live, g)
	g.owner.mu.Unlock()
	close(g.closed)
}

// UsesModel reports whether any version of the pipeline not yet closed runs on m, as its
// model or as one its plugins call.
func (p *Pipeline) UsesModel(m *tflite.Model) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for g := range p.live {
		if g.spec.Model == m || g.spec.Calls.Uses(m) {
			return true
		}
	}
	return false
}

// retire closes g once its in-flight requests have finished.
func retire(g *generation) {
	g.owner.retiring.Add(1)
	go func() {
		defer g.owner.retiring.Done()
		g.inflight.Wait()
		g.close(context.Background())
	}()
}

// Name is the pipeline's name.
func (p *Pipeline) Name() string { return p.name }

// Spec returns the current version's spec.
func (p *Pipeline) Spec() Spec {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.gen.spec
}

// InProbation reports whether the previous version is still kept for rollback.
func (p *Pipeline) InProbation() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.prev != nil
}

// ZeroCopy reports whether the current version binds tensors in guest memory.
func (p *Pipeline) ZeroCopy() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.gen != nil && p.gen.zeroCopy
}

// Delegates names the delegates TFLite applied to the current version's interpreters
// (those of its first worker; every worker is built the same way).
func (p *Pipeline) Delegates() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.gen == nil {
		return nil
	}
	return p.gen.delegates
}

// Usage returns the number of busy and total workers.
func (p *Pipeline) Usage() (busy, total int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.gen == nil {
		return 0, 0
	}
	return len(p.gen.all) - len(p.gen.workers.tokens), len(p.gen.all)
}

// Prepare builds a new version from spec, with all its workers, without serving it. Check
// it with Version.Run, then Commit or Discard it.
func (p *Pipeline) Prepare(ctx context.Context, spec Spec) (*Version, error) {
	g, err := p.newGeneration(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &Version{g: g}, nil
}

// Current returns the serving version of p, for checks such as golden inputs. Requests
// run on it are not counted in p's statistics.
func Current(p *Pipeline) *Version {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return &Version{g: p.gen}
}

// Run runs one request on a prepared version (for golden-input checks).
func (v *Version) Run(ctx context.Context, body io.Reader, size int, fn Result) (Stats, error) {
	return v.Do(ctx, Request{Body: body, Size: size}, fn)
}

// Do is Pipeline.Do on a version that is not serving yet (golden checks before a swap).
func (v *Version) Do(ctx context.Context, req Request, fn Result) (Stats, error) {
	return v.g.run(ctx, req, fn)
}

// Discard releases a prepared version that will not be committed.
func (v *Version) Discard(ctx context.Context) { v.g.close(ctx) }

// Commit makes v the serving version atomically. Requests in flight finish on the old
// version, which is closed once they drain (or, under probation, kept for rollback).
func (p *Pipeline) Commit(v *Version) (oldClosed <-chan struct{}) {
	p.mu.Lock()
	old := p.gen
	oldClosed = old.closed
	p.gen = v.g
	if p.prev != nil {
		retire(p.prev)
		p.prev = nil
	}
	if v.g.spec.Probation.Requests > 0 {
		p.prev = old
	} else {
		retire(old)
	}
	p.mu.Unlock()
	return oldClosed
}

// Swap is Prepare followed by Commit. On error the current version keeps serving.
func (p *Pipeline) Swap(ctx context.Context, spec Spec) error {
	v, err := p.Prepare(ctx, spec)
	if err != nil {
		return err
	}
	p.Commit(v)
	return nil
}

// probation records a request's outcome on g; it rolls back when g fails too often, and
// ends probation after enough requests.
func (p *Pipeline) probation(g *generation, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prev == nil || p.gen != g {
		return
	}
	pr := g.spec.Probation
	g.probReqs++
	if failed {
		g.probFails++
	}
	if float64(g.probFails) > pr.MaxFailShare*float64(pr.Requests) {
		reason := fmt.Sprintf("%d of the first %d requests failed (limit %.0f%% of %d)", g.probFails, g.probReqs, 100*pr.MaxFailShare, pr.Requests)
		p.gen = p.prev
		p.prev = nil
		retire(g)
		p.log.Warn("rolled back to the previous version", "reason", reason, "pre", p.gen.spec.Pre.Name(), "post", p.gen.spec.Post.Name())
		if p.OnRollback != nil {
			go p.OnRollback(reason)
		}
		return
	}
	if g.probReqs >= pr.Requests {
		retire(p.prev)
		p.prev = nil
	}
}

// Modules returns the plugin versions serving now.
func (p *Pipeline) Modules() (pre, post *plugin.Module) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.gen.spec.Pre, p.gen.spec.Post
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("pipeline is closed")

// Close ends every live sequence, waits for in-flight requests and releases every worker.
func (p *Pipeline) Close(ctx context.Context) {
	p.mu.Lock()
	g, prev := p.gen, p.prev
	p.gen, p.prev = nil, nil
	p.mu.Unlock()
	p.closeSequences(ctx)
	if g != nil {
		g.inflight.Wait()
		g.close(ctx)
	}
	if prev != nil {
		prev.inflight.Wait()
		prev.close(ctx)
	}
	p.retiring.Wait()
}

// ErrOverloaded is returned when no worker became free within the queue timeout.
var ErrOverloaded = errors.New("overloaded: no free worker")

// Result receives the post plugin's result, which aliases guest memory and is valid only
// during the call.
type Result func(body []byte, contentType string) error

// Request is one request to a pipeline, whatever front end or source built it (HTTP, gRPC,
// MQTT, a stream). Do is the one way in; every feature that changes what a request is
// (sequences, raw camera frames, nested model calls) adds a field here rather than a
// second path (ARCHITECTURE.md, "One request path").
type Request struct {
	// Body holds Size bytes of input, read straight into the pre plugin's memory. When it
	// is an io.Seeker (every front end's in-memory body is), a request that fails on a
	// version under probation can be run again on the previous one.
	Body io.Reader
	Size int
	// Sequence, when its ID is set, runs the request on its sequence's own worker, in
	// order, on the version the sequence started on (see Sequence); it is never retried on
	// another version.
	Sequence Sequence
	// Frame, when not nil, says the body is a raw frame of this geometry (ABI 1.3, §5.7),
	// handed to the pre plugin with FlagFrame. The pre plugin's manifest must declare the
	// frame's pixel format; otherwise the request fails with a *plugin.FrameError before the
	// plugin runs. Stream sources (host/stream) set it for frames decoded by ffmpeg.
	Frame *plugin.Frame
}

// Run is Do for a request that is only bytes.
func (p *Pipeline) Run(ctx context.Context, body io.Reader, size int, fn Result) (Stats, error) {
	return p.Do(ctx, Request{Body: body, Size: size}, fn)
}

// Do reads the request's bytes straight into the pre plugin's memory, runs the pipeline
// and hands the result to fn.
//
// During probation a request that fails on the new version (see Failed) is run again on the
// previous one, within the same ctx (deadline), when body can be rewound (an io.Seeker,
// as every front end's in-memory body is): a broken version, whatever way it fails, costs
// no client a request before its rollback. Such requests count in Retried; the new
// version's failure still counts towards its rollback, unless the previous version fails
// on the same input too (then the input is at fault, not the version).
func (p *Pipeline) Do(ctx context.Context, req Request, fn Result) (Stats, error) {
	// Counted for the whole request, pre and post included: a request running alone may
	// take the idle cores for its model (worker.infer).
	tflite.Begin()
	defer tflite.End()
	if req.Sequence.ID != "" {
		return p.doSequence(ctx, req, fn)
	}
	body := req.Body
	p.Requests.Add(1)
	p.mu.RLock()
	g := p.gen
	if g == nil {
		p.mu.RUnlock()
		return Stats{}, ErrClosed
	}
	g.inflight.Add(1)
	probation := p.prev != nil
	p.mu.RUnlock()
	defer g.inflight.Done()

	var start int64 = -1
	if sk, ok := body.(io.Seeker); ok && probation {
		if off, err := sk.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	var resultErr error
	result := func(b []byte, ct string) error {
		resultErr = fn(b, ct)
		return resultErr
	}
	// Under probation the new version gets half of what is left of the deadline, so that
	// one that hangs past it (a client deadline shorter than the plugin's time budget)
	// leaves the previous version room to answer, and is held against.
	runCtx := ctx
	if dl, ok := ctx.Deadline(); ok && probation && start >= 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		defer cancel()
	}
	st, err := g.run(runCtx, req, result)
	p.countTrap(err)
	if probation {
		failed := Failed(ctx, err, err != nil && err == resultErr)
		// No free worker on the version under probation (one that hangs until its time
		// budget holds its workers), or its half of the deadline over before one was free:
		// not held against it, but not a request it passed either, and the previous
		// version's idle workers answer it.
		overloaded := errors.Is(err, ErrOverloaded) || (runCtx != ctx && err != nil && err == runCtx.Err() && ctx.Err() == nil)
		if overloaded {
			failed = false
		}
		// Cut at its half of the deadline while running: held against it only if the
		// previous version then answers in the other half (it is slower than the version it
		// replaces); if that fails too, the deadline was tight for both: neither counts.
		cut := !overloaded && runCtx != ctx && ctx.Err() == nil && err != nil && runCtx.Err() != nil && errors.Is(err, runCtx.Err())
		neutral := overloaded
		if (failed || overloaded) && start >= 0 {
			if old := p.other(g); old != nil {
				_, _ = body.(io.Seeker).Seek(start, io.SeekStart)
				st2, err2 := old.run(ctx, req, result)
				old.inflight.Done()
				p.countTrap(err2)
				if err2 == nil {
					p.Retried.Add(1)
					p.log.Warn("request failed on the version under probation; answered by the previous version", "error", err)
					st, err = st2, nil
				} else if cut {
					neutral = true
				} else if failed && Failed(ctx, err2, err2 == resultErr) {
					failed = false // the previous version fails on it too: the input, not the version
				}
			}
		}
		if !neutral {
			p.probation(g, failed)
		}
	}
	if err != nil {
		p.Failures.Add(1)
	}
	p.Copied.Add(int64(st.CopiedBytes))
	p.ModelCalls.Add(int64(st.ModelCalls))
	return st, err
}

// other returns, with an in-flight reference the caller drops, the version to retry a
// request on that failed on g during g's probation: the previous version while g serves, or
// the serving version when the pipeline has moved on (rolled back) since. nil if none.
func (p *Pipeline) other(g *generation) *generation {
	p.mu.RLock()
	defer p.mu.RUnlock()
	o := p.prev
	if p.gen != g {
		o = p.gen
	}
	if o == nil || o == g {
		return nil
	}
	o.inflight.Add(1)
	return o
}

func (p *Pipeline) countTrap(err error) {
	var trap *plugin.TrapError
	var timeout *plugin.TimeoutError
	if errors.As(err, &trap) || errors.As(err, &timeout) {
		p.Traps.Add(1)
		p.log.Error("plugin trapped", "error", err)
	}
}

// workerStack holds a generation's free workers, the one put back last on top: a request
// takes the worker that ran most recently, whose guest memory and interpreter (arena,
// packed weights) are the likeliest to be in the CPU's caches still. With a FIFO queue a
// lone client's requests alternated between the workers, each finding the other's data in
// the caches (RATIONALE.md, "Adaptive parallelism").
type workerStack struct {
	tokens chan struct{} // one per free worker: receive one, then take
	mu     sync.Mutex
	free   []*worker
}

func (s *workerStack) put(w *worker) {
	s.mu.Lock()
	s.free = append(s.free, w)
	s.mu.Unlock()
	s.tokens <- struct{}{} // never blocks: at most cap(tokens) workers exist
}

// take pops the most recently put worker; the caller holds a token, so there is one.
func (s *workerStack) take() *worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return w
}

func (g *generation) run(ctx context.Context, req Request, fn Result) (Stats, error) {
	var w *worker
	t := time.NewTimer(g.spec.QueueTimeout)
	select {
	case <-g.workers.tokens:
		t.Stop()
		w = g.workers.take()
	case <-t.C:
		return Stats{}, ErrOverloaded
	case <-ctx.Done():
		t.Stop()
		return Stats{}, ctx.Err()
	}
	defer g.workers.put(w)
	if err := w.repair(ctx, g.spec, g.zeroCopy); err != nil {
		return Stats{}, err
	}
	return w.run(ctx, req, fn, g.spec, g.zeroCopy)
}

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
}

// Stats describes one request.
type Stats struct {
	Pre, Infer, Post time.Duration
	CopiedBytes      int // bytes copied between guest memory and TFLite tensors
}

// Pipeline runs pre → inference → post for requests. It is safe for concurrent use; Swap
// replaces its version atomically while in-flight requests finish on the old one.
type Pipeline struct {
	name string
	log  hclog.Logger
	mu   sync.RWMutex
	gen  *generation

	Requests, Failures, Traps atomic.Int64
	Copied                    atomic.Int64
}

// generation is one immutable version of a pipeline with its workers.
type generation struct {
	spec     Spec
	zeroCopy bool
	workers  chan *worker
	all      []*worker
	inflight sync.WaitGroup
}

// New builds a pipeline and all its workers. Errors leave nothing allocated.
func New(ctx context.Context, spec Spec, log hclog.Logger) (*Pipeline, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	p := &Pipeline{name: spec.Name, log: log.Named("pipeline").With("pipeline", spec.Name)}
	g, err := newGeneration(ctx, spec)
	if err != nil {
		return nil, err
	}
	p.gen = g
	return p, nil
}

func newGeneration(ctx context.Context, spec Spec) (*generation, error) {
	if spec.Workers <= 0 {
		spec.Workers = 1
	}
	if spec.QueueTimeout == 0 {
		spec.QueueTimeout = 5 * time.Second
	}
	g := &generation{spec: spec, workers: make(chan *worker, spec.Workers),
		zeroCopy: !spec.OneCopy && tflite.Probe().CustomAllocation}
	for n := 0; n < spec.Workers; n++ {
		w, err := newWorker(ctx, spec, g.zeroCopy)
		if err != nil {
			g.close(ctx)
			return nil, fmt.Errorf("pipeline %s: worker %d: %w", spec.Name, n+1, err)
		}
		g.all = append(g.all, w)
		g.workers <- w
	}
	return g, nil
}

func (g *generation) close(ctx context.Context) {
	for _, w := range g.all {
		w.close(ctx)
	}
	g.all = nil
}

// Name is the pipeline's name.
func (p *Pipeline) Name() string { return p.name }

// Spec returns the current version's spec.
func (p *Pipeline) Spec() Spec {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.gen.spec
}

// ZeroCopy reports whether the current version binds tensors in guest memory.
func (p *Pipeline) ZeroCopy() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.gen.zeroCopy
}

// Usage returns the number of busy and total workers.
func (p *Pipeline) Usage() (busy, total int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.gen.all) - len(p.gen.workers), len(p.gen.all)
}

// Swap builds a new version from spec and replaces the current one atomically. Requests
// in flight finish on the old version, whose workers are closed once they drain. On error
// the current version keeps serving.
func (p *Pipeline) Swap(ctx context.Context, spec Spec) error {
	g, err := newGeneration(ctx, spec)
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.gen
	p.gen = g
	p.mu.Unlock()
	go func() {
		old.inflight.Wait()
		old.close(context.Background())
	}()
	return nil
}

// Close waits for in-flight requests and releases every worker.
func (p *Pipeline) Close(ctx context.Context) {
	p.mu.Lock()
	g := p.gen
	p.gen = &generation{spec: g.spec, workers: make(chan *worker)}
	p.mu.Unlock()
	g.inflight.Wait()
	g.close(ctx)
}

// ErrOverloaded is returned when no worker became free within the queue timeout.
var ErrOverloaded = errors.New("overloaded: no free worker")

// Result receives the post plugin's result, which aliases guest memory and is valid only
// during the call.
type Result func(body []byte, contentType string) error

// Run reads size bytes of the request from body straight into the pre plugin's memory,
// runs the pipeline and hands the result to fn.
func (p *Pipeline) Run(ctx context.Context, body io.Reader, size int, fn Result) (Stats, error) {
	p.Requests.Add(1)
	p.mu.RLock()
	g := p.gen
	g.inflight.Add(1)
	p.mu.RUnlock()
	defer g.inflight.Done()

	st, err := g.run(ctx, body, size, fn)
	if err != nil {
		p.Failures.Add(1)
		var trap *plugin.TrapError
		if errors.As(err, &trap) {
			p.Traps.Add(1)
			p.log.Error("plugin trapped", "error", err)
		}
	}
	p.Copied.Add(int64(st.CopiedBytes))
	return st, err
}

func (g *generation) run(ctx context.Context, body io.Reader, size int, fn Result) (Stats, error) {
	var w *worker
	t := time.NewTimer(g.spec.QueueTimeout)
	select {
	case w = <-g.workers:
		t.Stop()
	case <-t.C:
		return Stats{}, ErrOverloaded
	case <-ctx.Done():
		t.Stop()
		return Stats{}, ctx.Err()
	}
	defer func() { g.workers <- w }()
	if err := w.repair(ctx, g.spec, g.zeroCopy); err != nil {
		return Stats{}, err
	}
	return w.run(ctx, body, size, fn, g.zeroCopy)
}

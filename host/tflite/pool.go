package tflite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrPoolClosed is returned by Get on a closed pool (its model was replaced or removed).
var ErrPoolClosed = errors.New("tflite: interpreter pool closed (the model was replaced or removed)")

// Pool holds up to a fixed number of interpreters of one model for concurrent inference.
// Get and Put are safe for concurrent use; an interpreter belongs to one goroutine
// between Get and Put. Interpreters past the eager ones are created by the first Get that
// finds none free, so a pool that is seldom used holds no interpreter memory (each costs
// the model's XNNPACK-packed weights plus its tensor arena: 7-14 MiB for the bundled models).
type Pool struct {
	model *Model
	size  int
	free  chan *Interpreter // sent to only with mu held, never after Close
	done  chan struct{}     // closed by Close

	mu      sync.Mutex
	all     []*Interpreter
	closed  bool
	created atomic.Int32 // len(all), readable without mu (which Get holds while it builds one)
}

// NewPool makes a pool of at most size interpreters of m (size <= 0 means 1), of which eager
// (at most size) are built now; the rest are built when first needed.
func NewPool(m *Model, size, eager int) (*Pool, error) {
	if size <= 0 {
		size = 1
	}
	p := &Pool{model: m, size: size, free: make(chan *Interpreter, size), done: make(chan struct{})}
	for n := 0; n < min(eager, size); n++ {
		it, err := m.NewInterpreter()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("interpreter %d of %d: %w", n+1, size, err)
		}
		p.all = append(p.all, it)
		p.created.Store(int32(len(p.all)))
		p.free <- it
	}
	return p, nil
}

// Get returns a free interpreter, builds one if fewer than the pool's size exist, or waits
// for one to be put back, for ctx to end or for the pool to close (ErrPoolClosed).
func (p *Pool) Get(ctx context.Context) (*Interpreter, error) {
	select {
	case it := <-p.free:
		return it, nil
	default:
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if len(p.all) < p.size {
		defer p.mu.Unlock()
		it, err := p.model.NewInterpreter()
		if err != nil {
			return nil, fmt.Errorf("interpreter %d of %d: %w", len(p.all)+1, p.size, err)
		}
		p.all = append(p.all, it)
		p.created.Store(int32(len(p.all)))
		return it, nil
	}
	p.mu.Unlock()
	select {
	case it := <-p.free:
		return it, nil
	case <-p.done:
		return nil, ErrPoolClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Put returns an interpreter taken with Get. After Close it closes the interpreter.
func (p *Pool) Put(it *Interpreter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.drop(it)
		it.Close()
		return
	}
	p.free <- it // never blocks: at most size interpreters exist
}

func (p *Pool) drop(it *Interpreter) {
	for k, x := range p.all {
		if x == it {
			p.all = append(p.all[:k], p.all[k+1:]...)
			p.created.Store(int32(len(p.all)))
			return
		}
	}
}

// Size is the most interpreters the pool holds; Created how many exist; InUse how many
// are taken.
func (p *Pool) Size() int { return p.size }

// Neither waits for an interpreter being built (a metrics scrape during a first bare request).
func (p *Pool) Created() int { return int(p.created.Load()) }

func (p *Pool) InUse() int { return max(0, p.Created()-len(p.free)) }

// Close closes the free interpreters now and those in use when they are put back; Get
// then returns ErrPoolClosed. The model may be closed right after: an interpreter keeps
// what it reads of the model until it is closed.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.done)
	for {
		select {
		case it := <-p.free:
			p.drop(it)
			it.Close()
			continue
		default:
		}
		break
	}
}

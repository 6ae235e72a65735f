package tflite

import (
	"context"
	"fmt"
)

// Pool holds a fixed number of interpreters of one model for concurrent inference.
// Get and Put are safe for concurrent use; an interpreter belongs to one goroutine
// between Get and Put.
type Pool struct {
	model *Model
	free  chan *Interpreter
	all   []*Interpreter
}

// NewPool builds size interpreters of m (size <= 0 means 1).
func NewPool(m *Model, size int) (*Pool, error) {
	if size <= 0 {
		size = 1
	}
	p := &Pool{model: m, free: make(chan *Interpreter, size)}
	for n := 0; n < size; n++ {
		it, err := m.NewInterpreter()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("interpreter %d of %d: %w", n+1, size, err)
		}
		p.all = append(p.all, it)
		p.free <- it
	}
	return p, nil
}

// Get waits for a free interpreter or for ctx to end.
func (p *Pool) Get(ctx context.Context) (*Interpreter, error) {
	select {
	case it := <-p.free:
		return it, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Put returns an interpreter taken with Get.
func (p *Pool) Put(it *Interpreter) { p.free <- it }

// Size is the number of interpreters; InUse how many are taken.
func (p *Pool) Size() int  { return len(p.all) }
func (p *Pool) InUse() int { return len(p.all) - len(p.free) }

// Close closes every interpreter. No interpreter may be in use.
func (p *Pool) Close() {
	for _, it := range p.all {
		it.Close()
	}
	p.all = nil
}

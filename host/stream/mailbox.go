package stream

import (
	"context"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/plugin"
)

// Frame is one frame from a camera: a JPEG part (Raw nil) or a raw frame of Raw's geometry.
type Frame struct {
	Seq      uint64    // 1, 2, … per stream, counting every frame received (dropped ones too)
	Captured time.Time // when edgehost had the whole frame
	Data     []byte
	Raw      *plugin.Frame
	buf      *[]byte // the buffer Data lies in, back to the pool when the frame is done
}

// mailbox is a one-slot mailbox: put replaces a frame nobody took yet (newest first), so a
// busy pipeline never makes frames wait in a queue. Safe for one writer and any number of
// readers (inflight runners).
type mailbox struct {
	mu    sync.Mutex
	f     *Frame
	ready chan struct{} // holds a token while f is set
}

func newMailbox() *mailbox { return &mailbox{ready: make(chan struct{}, 1)} }

// put leaves f in the slot and returns the frame it replaced (nil if the slot was empty).
func (m *mailbox) put(f *Frame) (replaced *Frame) {
	m.mu.Lock()
	replaced, m.f = m.f, f
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
	return replaced
}

// take waits for a frame and empties the slot.
func (m *mailbox) take(ctx context.Context) (*Frame, error) {
	for {
		select {
		case <-m.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		m.mu.Lock()
		f := m.f
		m.f = nil
		m.mu.Unlock()
		if f != nil {
			return f, nil
		}
	}
}

// bufPool recycles frame buffers: at most 2 + inflight are in use at a time (one being
// read, one in the slot, one per frame in the pipeline), so a stream's memory stays flat
// whatever the rate.
type bufPool struct{ free chan *[]byte }

func newBufPool() *bufPool { return &bufPool{free: make(chan *[]byte, 18)} }

// get returns a buffer of length n.
func (p *bufPool) get(n int) *[]byte {
	select {
	case b := <-p.free:
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	default:
	}
	b := make([]byte, n)
	return &b
}

func (p *bufPool) put(b *[]byte) {
	if b == nil {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

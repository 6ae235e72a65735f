package tflite

import (
	"sync"
	"sync/atomic"
)

// inflight counts the requests in flight in this process (Begin, End), so that a request
// that runs alone can take the cores that would otherwise be idle (Model.IdleInterpreter).
var inflight atomic.Int32

// Begin counts one request in flight in this process until the matching End: every request
// path that invokes a model (a pipeline request, a sequence's chunk, a bare-model inference)
// calls it for the whole request, pre and post plugins included, since they take a core too.
func Begin() { inflight.Add(1) }

// End ends what Begin counted.
func End() { inflight.Add(-1) }

// InFlight is the number of requests counted by Begin and not yet ended.
func InFlight() int { return int(inflight.Load()) }

// idleSlot holds a model's idle interpreter: one interpreter with Options.IdleThreads
// threads, shared by every user of the model version, built on first need and closed with
// the model.
type idleSlot struct {
	mu     sync.Mutex // held while the interpreter is built, used (IdleInterpreter → PutIdle) or closed
	it     *Interpreter
	tried  bool // a build was started (it stays nil if it failed: not tried again)
	closed bool
	built  atomic.Bool // it != nil, readable without mu (which a request holds for an invoke)
	runs   atomic.Int64
}

// IdleThreads is the thread count of the model's idle interpreter, or 0 when the model has
// none: Options.IdleThreads not above Threads, a LiteRT or vendor-delegate model (one
// accelerator, or a backend that picks its own threads).
func (m *Model) IdleThreads() int {
	if m.opts.IdleThreads <= max(1, m.opts.Threads) || m.lrt != nil || m.opts.Delegate != nil {
		return 0
	}
	return m.opts.IdleThreads
}

// IdleInterpreter returns the model's idle interpreter, with IdleThreads threads, when the
// caller's is the only request in flight in the process (InFlight ≤ 1: the caller counted
// itself with Begin), other processes leave that many cores free (load.go) and no one else
// holds it; the caller then owns it until PutIdle, which
// it must call. It returns nil otherwise, and while the interpreter is being built: the
// first call that finds it missing starts building it in the background (the request that
// started it runs on its own interpreter), so a model never asked to run alone holds none.
//
// The idle interpreter's tensors are its own (not bound to any caller's memory): copy the
// inputs in and the outputs out. A sequence must never run on it: its state lives in its
// own interpreter.
func (m *Model) IdleInterpreter() *Interpreter {
	if inflight.Load() > 1 || m.IdleThreads() == 0 || !machineAllows(m.IdleThreads()) {
		return nil
	}
	s := &m.idle
	if !s.mu.TryLock() { // in use by another request, being built, or closing
		return nil
	}
	if s.it != nil {
		s.runs.Add(1)
		return s.it
	}
	start := !s.tried && !s.closed
	s.tried = true
	s.mu.Unlock()
	if start {
		go func() { _ = m.buildIdle() }()
	}
	return nil
}

// PutIdle gives back the interpreter IdleInterpreter returned.
func (m *Model) PutIdle(it *Interpreter) {
	if it != nil && it == m.idle.it {
		m.idle.mu.Unlock()
	}
}

// PrepareIdle builds the idle interpreter now if the model has one and it is not built yet
// (tests; a caller that wants it before the first lone request). It returns the build's
// error; a model without an idle interpreter (IdleThreads 0) returns nil.
func (m *Model) PrepareIdle() error {
	if m.IdleThreads() == 0 {
		return nil
	}
	m.idle.mu.Lock()
	m.idle.tried = true
	m.idle.mu.Unlock()
	return m.buildIdle()
}

// IdleRuns is how many times IdleInterpreter handed out the idle interpreter.
func (m *Model) IdleRuns() int64 { return m.idle.runs.Load() }

// HasIdle reports whether the idle interpreter is built and not closed. It does not wait
// for a request using it.
func (m *Model) HasIdle() bool { return m.idle.built.Load() }

func (m *Model) buildIdle() error {
	s := &m.idle
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.it != nil || s.closed {
		return nil
	}
	opts := m.opts
	opts.Threads = m.IdleThreads()
	it, err := m.newInterpreter(opts)
	if err != nil {
		if opts.Warn != nil {
			opts.Warn("the idle interpreter could not be built; requests run on one interpreter each", "threads", opts.Threads, "error", err.Error())
		}
		return err
	}
	s.it = it
	s.built.Store(true)
	return nil
}

// closeIdle closes the idle interpreter, after the request using it (if any) puts it back;
// none is built afterwards.
func (m *Model) closeIdle() {
	s := &m.idle
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.it != nil {
		s.built.Store(false)
		s.it.Close()
		s.it = nil
	}
}

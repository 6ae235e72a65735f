package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/abi"
)

// Sequence names the stateful stream a request belongs to, as Triton's sequence batcher
// does (sequence_id, sequence_start, sequence_end). The zero value is no sequence: the
// request runs on any free worker.
//
// Every request of a live sequence runs on the sequence's own worker (pre instance,
// interpreter, post instance), one at a time, in the order the requests reach it, on the
// pipeline version the sequence started on. Start makes a fresh worker (on the version
// serving then) and so resets every piece of state; End closes the worker after the
// request. A sequence idle for longer than SequenceLimits.IdleTimeout expires.
type Sequence struct {
	ID    string // "" for a request outside any sequence
	Start bool   // the first request: a fresh worker, even if ID is live (restart)
	End   bool   // the last request: the worker is closed after it
}

// SequenceLimits bound a pipeline's sequences (all its versions together).
type SequenceLimits struct {
	// Max is the number of live sequences at once; a start past it fails with
	// ErrTooManySequences. 0 means DefaultMaxSequences.
	Max int
	// IdleTimeout ends a sequence that received no request for this long. 0 means
	// DefaultSequenceIdle.
	IdleTimeout time.Duration
}

// Defaults of SequenceLimits.
const (
	DefaultMaxSequences = 64
	DefaultSequenceIdle = 30 * time.Second
)

func (l SequenceLimits) max() int {
	if l.Max <= 0 {
		return DefaultMaxSequences
	}
	return l.Max
}

func (l SequenceLimits) idle() time.Duration {
	if l.IdleTimeout <= 0 {
		return DefaultSequenceIdle
	}
	return l.IdleTimeout
}

// ErrTooManySequences is returned for a sequence start when the pipeline already holds its
// maximum of live sequences (HTTP 429, gRPC RESOURCE_EXHAUSTED).
var ErrTooManySequences = errors.New("too many live sequences")

// SequenceError is a request for a sequence that is not live (never started, ended,
// expired, or ended by a trap) without the start flag (HTTP 400, gRPC INVALID_ARGUMENT, as
// Triton answers it).
type SequenceError struct {
	Pipeline, ID string
	Idle         time.Duration
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("sequence %q of pipeline %s is not live (never started, already ended, idle for more than %v, or ended by a plugin trap): its first request must set sequence_start", e.ID, e.Pipeline, e.Idle)
}

// SequenceLimitError wraps ErrTooManySequences with the pipeline and its bound.
type SequenceLimitError struct {
	Pipeline string
	Max      int
}

func (e *SequenceLimitError) Error() string {
	return fmt.Sprintf("pipeline %s already holds %d live sequences (its sequences.max): end one (sequence_end) or let one expire", e.Pipeline, e.Max)
}

func (e *SequenceLimitError) Unwrap() error { return ErrTooManySequences }

// session is one live sequence: its own worker on the version it started on.
type session struct {
	id    string
	turn  chan struct{} // a one-slot lock held while a request (or the janitor, or Close) uses the session
	g     *generation   // the version it runs on; the session holds one in-flight reference on it
	w     *worker
	last  atomic.Int64 // end of the last request, or of the last hold (UnixNano)
	holds atomic.Int32 // HoldSequence: while > 0 the sequence does not expire
	dead  bool         // ended, expired or closed: never used again (guarded by turn)
}

func (s *session) lock(ctx context.Context) error {
	select {
	case s.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *session) tryLock() bool {
	select {
	case s.turn <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *session) unlock() { <-s.turn }

// release closes the session's worker and drops its reference on its version. The caller
// holds turn and has removed s from the table.
func (s *session) release(ctx context.Context) {
	s.dead = true
	if s.w != nil {
		s.w.close(context.WithoutCancel(ctx))
		s.w = nil
	}
	if s.g != nil {
		s.g.inflight.Done()
		s.g = nil
	}
}

// sessions is a pipeline's table of live sequences.
type sessions struct {
	mu      sync.Mutex
	m       map[string]*session
	closed  bool
	janitor sync.Once
	stop    chan struct{}
	done    chan struct{}

	Started, Ended, Expired, Rejected atomic.Int64
}

// SequenceStats counts a pipeline's sequences.
type SequenceStats struct {
	Live                              int
	Started, Ended, Expired, Rejected int64
}

// Sequences reports the live sequences and the counts since start.
func (p *Pipeline) Sequences() SequenceStats {
	p.seq.mu.Lock()
	n := len(p.seq.m)
	p.seq.mu.Unlock()
	return SequenceStats{Live: n, Started: p.seq.Started.Load(), Ended: p.seq.Ended.Load(),
		Expired: p.seq.Expired.Load(), Rejected: p.seq.Rejected.Load()}
}

// limits returns the serving version's sequence limits.
func (p *Pipeline) limits() SequenceLimits {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.gen == nil {
		return SequenceLimits{}
	}
	return p.gen.spec.Sequences
}

// acquire returns the live session for seq, holding its turn, creating (or, with Start,
// recreating) it as needed.
func (p *Pipeline) acquire(ctx context.Context, seq Sequence) (*session, error) {
	lim := p.limits()
	for {
		p.seq.mu.Lock()
		if p.seq.closed {
			p.seq.mu.Unlock()
			return nil, ErrClosed
		}
		s := p.seq.m[seq.ID]
		if s == nil {
			if !seq.Start {
				p.seq.mu.Unlock()
				return nil, &SequenceError{Pipeline: p.name, ID: seq.ID, Idle: lim.idle()}
			}
			if len(p.seq.m) >= lim.max() {
				p.seq.mu.Unlock()
				p.seq.Rejected.Add(1)
				return nil, &SequenceLimitError{Pipeline: p.name, Max: lim.max()}
			}
			s = &session{id: seq.ID, turn: make(chan struct{}, 1)}
			s.turn <- struct{}{}
			p.seq.m[seq.ID] = s // holds the slot while the worker is built, outside the lock
			p.seq.mu.Unlock()
			p.startJanitor()
			if err := p.fresh(ctx, s); err != nil {
				p.drop(s)
				s.dead = true
				s.unlock()
				return nil, err
			}
			return s, nil
		}
		p.seq.mu.Unlock()
		if err := s.lock(ctx); err != nil {
			return nil, err
		}
		if s.dead {
			s.unlock()
			continue // expired or ended meanwhile: look again (a start makes a new one)
		}
		if seq.Start { // a restart: the state of the earlier run is gone
			s.release(ctx)
			s.dead = false
			p.seq.Ended.Add(1)
			if err := p.fresh(ctx, s); err != nil {
				p.drop(s)
				s.dead = true
				s.unlock()
				return nil, err
			}
		}
		return s, nil
	}
}

// fresh gives s a new worker on the serving version.
func (p *Pipeline) fresh(ctx context.Context, s *session) error {
	p.mu.RLock()
	g := p.gen
	if g == nil {
		p.mu.RUnlock()
		return ErrClosed
	}
	g.inflight.Add(1)
	p.mu.RUnlock()
	w, err := newWorker(ctx, g.spec, g.zeroCopy)
	if err != nil {
		g.inflight.Done()
		return fmt.Errorf("pipeline %s: sequence %q: %w", p.name, s.id, err)
	}
	s.g, s.w = g, w
	s.last.Store(time.Now().UnixNano())
	p.seq.Started.Add(1)
	return nil
}

// drop removes s from the table if it is still there, counting it as ended when it had
// started.
func (p *Pipeline) drop(s *session) {
	p.seq.mu.Lock()
	if p.seq.m[s.id] == s {
		delete(p.seq.m, s.id)
		if s.g != nil {
			p.seq.Ended.Add(1)
		}
	}
	p.seq.mu.Unlock()
}

// doSequence is Do for a request of a sequence. It never retries on another version: the
// sequence's state lives in its worker, on its version.
func (p *Pipeline) doSequence(ctx context.Context, req Request, fn Result) (Stats, error) {
	p.Requests.Add(1)
	s, err := p.acquire(ctx, req.Sequence)
	if err != nil {
		p.Failures.Add(1)
		return Stats{}, err
	}
	g := s.g
	flags := uint32(abi.FlagSequence)
	if req.Sequence.Start {
		flags |= abi.FlagSeqStart
	}
	if req.Sequence.End {
		flags |= abi.FlagSeqEnd
	}
	s.w.seqFlags = flags
	var resultErr error
	st, err := s.w.run(ctx, req, func(b []byte, ct string) error {
		resultErr = fn(b, ct)
		return resultErr
	}, g.spec, g.zeroCopy)
	p.countTrap(err)
	s.last.Store(time.Now().UnixNano())
	broken := s.w.pre.Broken() != nil || s.w.post.Broken() != nil
	if req.Sequence.End || broken {
		p.drop(s)
		s.release(ctx)
		if broken && !req.Sequence.End {
			err = fmt.Errorf("%w (sequence %q ended: its state is lost)", err, s.id)
		}
	}
	s.unlock()
	p.probation(g, Failed(ctx, err, err != nil && err == resultErr))
	if err != nil {
		p.Failures.Add(1)
	}
	p.Copied.Add(int64(st.CopiedBytes))
	return st, err
}

// HoldSequence keeps sequence id from expiring until release is called (once; later calls
// do nothing); its idle time starts again then. A stream front end holds the sequence it
// serves between answering one chunk and receiving the next, so that a server slower than
// real time (its own backlog, flow control) never expires a sequence whose client is still
// sending. It does nothing for an id that is not live.
func (p *Pipeline) HoldSequence(id string) (release func()) {
	p.seq.mu.Lock()
	s := p.seq.m[id]
	p.seq.mu.Unlock()
	if s == nil {
		return func() {}
	}
	s.holds.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.last.Store(time.Now().UnixNano())
			s.holds.Add(-1)
		})
	}
}

// startJanitor starts, once, the goroutine that expires idle sequences.
func (p *Pipeline) startJanitor() {
	p.seq.janitor.Do(func() {
		go func() {
			defer close(p.seq.done)
			for {
				every := min(max(p.limits().idle()/4, 10*time.Millisecond), time.Second)
				select {
				case <-p.seq.stop:
					return
				case <-time.After(every):
				}
				p.expire(time.Now())
			}
		}()
	})
}

// expire ends the sequences idle since before now − IdleTimeout. A sequence running a
// request is not idle.
func (p *Pipeline) expire(now time.Time) {
	idle := p.limits().idle()
	var gone []*session
	p.seq.mu.Lock()
	for id, s := range p.seq.m {
		if !s.tryLock() {
			continue
		}
		if !s.dead && s.holds.Load() == 0 && now.Sub(time.Unix(0, s.last.Load())) > idle {
			delete(p.seq.m, id)
			p.seq.Expired.Add(1) // under the lock, with the delete: Sequences() sees both or neither
			gone = append(gone, s)
			continue
		}
		s.unlock()
	}
	p.seq.mu.Unlock()
	for _, s := range gone {
		p.log.Debug("sequence expired", "sequence", s.id, "idle", idle)
		s.release(context.Background())
		s.unlock()
	}
}

// closeSequences ends every sequence (Close), each after its running request, and stops
// the janitor.
func (p *Pipeline) closeSequences(ctx context.Context) {
	p.seq.mu.Lock()
	if p.seq.closed {
		p.seq.mu.Unlock()
		return
	}
	p.seq.closed = true
	all := make([]*session, 0, len(p.seq.m))
	for _, s := range p.seq.m {
		all = append(all, s)
	}
	clear(p.seq.m)
	p.seq.mu.Unlock()
	close(p.seq.stop)
	p.seq.janitor.Do(func() { close(p.seq.done) }) // a janitor that never started
	<-p.seq.done
	for _, s := range all {
		s.turn <- struct{}{}
		if !s.dead {
			s.release(ctx)
			p.seq.Ended.Add(1)
		}
		s.unlock()
	}
}

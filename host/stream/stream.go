package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/hashicorp/go-hclog"
)

// Stats are a stream's counters since it started (its /status entry).
type Stats struct {
	Received, Processed, Failed atomic.Int64
	Dropped                     atomic.Int64 // replaced in the slot while the runners were busy, or late
	DroppedLate                 atomic.Int64 // of Dropped: finished after a newer frame's result went out
	DroppedFPS                  atomic.Int64 // over the fps cap
	Bad                         atomic.Int64 // MJPEG parts that are not JPEGs
	Reconnects                  atomic.Int64
	Connected                   atomic.Bool
}

// Status is a stream's state for /status.
type Status struct {
	URL         string    `json:"url"`
	Decoder     string    `json:"decoder"`
	Connected   bool      `json:"connected"`
	FFmpegPID   int64     `json:"ffmpeg_pid,omitempty"`
	Received    int64     `json:"received"`
	Processed   int64     `json:"processed"`
	Failed      int64     `json:"failed"`
	Dropped     int64     `json:"dropped"`      // busy and late
	DroppedLate int64     `json:"dropped_late"` // of dropped: overtaken by a newer frame (inflight > 1)
	DroppedFPS  int64     `json:"dropped_fps"`
	Bad         int64     `json:"bad_parts"`
	Reconnects  int64     `json:"reconnects"`
	LastError   string    `json:"last_error,omitempty"`
	LastResult  time.Time `json:"last_result,omitzero"`
	Started     time.Time `json:"started"`
}

// Stream is one running camera stream. Start it with Start; Stop ends it.
type Stream struct {
	name    string
	cfg     config.Stream
	lookup  func() (*pipeline.Pipeline, bool)
	hub     *Hub
	m       *Metrics
	log     hclog.Logger
	box     *mailbox
	pool    *bufPool
	stats   Stats
	pid     atomic.Int64
	seq     atomic.Uint64
	started time.Time
	// do runs one frame through the pipeline; nil: the pipeline lookup returns (tests set
	// their own, to give frames chosen durations).
	do func(ctx context.Context, f *Frame, result func(b []byte, ct string) error) error

	// order publishes results in frame order: last is the newest sequence number
	// published; a result older than it (a frame overtaken by a newer one, inflight > 1)
	// is dropped as "late", never published out of order.
	order struct {
		sync.Mutex
		last uint64
	}

	mu         sync.Mutex
	lastErr    string
	lastResult time.Time

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Start starts the stream of pipeline name: a reader goroutine (connection, reconnects with
// backoff, fps cap, mailbox) and a runner goroutine (mailbox → pipeline.Do → hub). lookup
// returns the pipeline serving under name now (a hot swap changes its version, not this
// stream; the runner calls Do on whatever version serves). m may be nil.
func Start(name string, cfg config.Stream, lookup func() (*pipeline.Pipeline, bool), hub *Hub, m *Metrics, log hclog.Logger) *Stream {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Stream{name: name, cfg: cfg, lookup: lookup, hub: hub, m: m, box: newMailbox(), pool: newBufPool(),
		log: log.Named("stream").With("pipeline", name, "url", cfg.URL), started: time.Now()}
	ctx := s.startRunners()
	s.done.Add(1)
	go s.reader(ctx)
	s.log.Info("stream started", "decoder", cfg.Decoder, "inflight", max(1, cfg.Inflight))
	return s
}

// startRunners starts the cfg.Inflight runners (at least one) and returns the stream's
// context.
func (s *Stream) startRunners() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	n := max(1, s.cfg.Inflight)
	s.done.Add(n)
	for range n {
		go s.runner(ctx)
	}
	return ctx
}

// Config is the stream's config.
func (s *Stream) Config() config.Stream { return s.cfg }

// Stop ends the stream: the connection is closed, ffmpeg killed (its process group), and
// the frame being processed finishes. It returns when both goroutines have ended.
func (s *Stream) Stop() {
	s.cancel()
	s.done.Wait()
	s.m.connected(s.name, false)
	s.log.Info("stream stopped")
}

// Status returns the stream's counters and state.
func (s *Stream) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{URL: s.cfg.URL, Decoder: s.cfg.Decoder, Connected: s.stats.Connected.Load(), FFmpegPID: s.pid.Load(),
		Received: s.stats.Received.Load(), Processed: s.stats.Processed.Load(), Failed: s.stats.Failed.Load(),
		Dropped: s.stats.Dropped.Load(), DroppedLate: s.stats.DroppedLate.Load(), DroppedFPS: s.stats.DroppedFPS.Load(), Bad: s.stats.Bad.Load(),
		Reconnects: s.stats.Reconnects.Load(), LastError: s.lastErr, LastResult: s.lastResult, Started: s.started}
}

// FFmpegPID is the pid of the running ffmpeg, 0 when none.
func (s *Stream) FFmpegPID() int { return int(s.pid.Load()) }

func (s *Stream) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// reader connects, reads frames into the mailbox, and reconnects with backoff (doubling
// from reconnect_min to reconnect_max; back to reconnect_min after a connection that
// delivered frames).
func (s *Stream) reader(ctx context.Context) {
	defer s.done.Done()
	backoff := s.cfg.ReconnectMin.Duration
	var interval time.Duration
	if s.cfg.FPS > 0 && !s.cfg.FFmpegInput() { // ffmpeg applies the cap itself (fps filter)
		interval = time.Duration(float64(time.Second) / s.cfg.FPS)
	}
	var next time.Time
	for first := true; ; first = false {
		if !first {
			s.stats.Reconnects.Add(1)
			s.m.reconnect(s.name)
		}
		var got atomic.Bool
		emit := func(buf *[]byte, raw *plugin.Frame) {
			now := time.Now()
			if !got.Load() {
				got.Store(true)
				s.stats.Connected.Store(true)
				s.m.connected(s.name, true)
			}
			seq := s.seq.Add(1)
			s.stats.Received.Add(1)
			s.m.received(s.name)
			if interval > 0 {
				// A token every interval, with a slack of a quarter interval for jitter.
				if now.Before(next.Add(-interval / 4)) {
					s.pool.put(buf)
					s.stats.DroppedFPS.Add(1)
					s.m.dropped(s.name, "fps")
					return
				}
				if next.IsZero() || now.Sub(next) > interval {
					next = now
				}
				next = next.Add(interval)
			}
			s.offer(&Frame{Seq: seq, Captured: now, Data: *buf, Raw: raw, buf: buf})
		}
		var err error
		if s.cfg.FFmpegInput() {
			err = s.readFFmpeg(ctx, emit)
		} else {
			err = s.readMJPEG(ctx, func(buf *[]byte) { emit(buf, nil) })
		}
		if ctx.Err() != nil {
			return
		}
		s.stats.Connected.Store(false)
		s.m.connected(s.name, false)
		s.setErr(err)
		if got.Load() {
			backoff = s.cfg.ReconnectMin.Duration
		}
		s.log.Warn("camera stream ended; reconnecting", "error", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.ReconnectMax.Duration)
	}
}

// offer leaves f in the mailbox; a frame no runner took yet (all inflight runners busy) is
// replaced: dropped and counted as "busy".
func (s *Stream) offer(f *Frame) {
	if old := s.box.put(f); old != nil {
		s.pool.put(old.buf)
		s.stats.Dropped.Add(1)
		s.m.dropped(s.name, "busy")
	}
}

// runner takes the newest frame and runs it through the pipeline serving now.
func (s *Stream) runner(ctx context.Context) {
	defer s.done.Done()
	for {
		f, err := s.box.take(ctx)
		if err != nil {
			return
		}
		s.process(ctx, f)
		s.pool.put(f.buf)
	}
}

func (s *Stream) process(ctx context.Context, f *Frame) {
	ev := Event{Stream: s.name, Seq: f.Seq, Captured: f.Captured}
	do := s.do
	if do == nil {
		do = s.pipelineDo
	}
	err := do(ctx, f, func(b []byte, ct string) error {
		ev.ContentType = ct
		if json.Valid(b) && (ct == "application/json" || ct == "") {
			ev.Result = append(json.RawMessage(nil), b...)
		} else {
			ev.ResultBytes = append([]byte(nil), b...)
		}
		return nil
	})
	done := time.Now()
	if ctx.Err() != nil && err != nil {
		return // stopping: the frame is not answered
	}
	// In frame order: with several frames in flight a newer one may have finished first;
	// its result is out already, so this one is late (a stale answer) and is dropped, as a
	// frame replaced in the mailbox is. The lock also keeps Publish in sequence order.
	s.order.Lock()
	defer s.order.Unlock()
	if f.Seq < s.order.last {
		s.stats.Dropped.Add(1)
		s.stats.DroppedLate.Add(1)
		s.m.dropped(s.name, "late")
		return
	}
	s.order.last = f.Seq
	ev.Done = done
	ev.LatencyMS = float64(done.Sub(f.Captured).Microseconds()) / 1000
	if err != nil {
		ev.Error = err.Error()
		s.stats.Failed.Add(1)
		s.setErr(err)
		s.m.failed(s.name)
	} else {
		s.stats.Processed.Add(1)
		s.m.processed(s.name, done.Sub(f.Captured))
		s.mu.Lock()
		s.lastResult = done
		s.mu.Unlock()
	}
	s.hub.Publish(ev)
}

// pipelineDo runs f through the pipeline serving under the stream's name now.
func (s *Stream) pipelineDo(ctx context.Context, f *Frame, result func(b []byte, ct string) error) error {
	p, ok := s.lookup()
	if !ok {
		return errors.New("pipeline is not serving")
	}
	_, err := p.Do(ctx, pipeline.Request{Body: bytes.NewReader(f.Data), Size: len(f.Data), Frame: f.Raw}, result)
	return err
}

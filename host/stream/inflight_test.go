package stream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/hashicorp/go-hclog"
)

// gated is a pipeline stand-in whose frames finish when the test says: started receives
// each frame's sequence number as a runner begins it, and a frame returns once release[seq]
// is closed (or the stream stops).
type gated struct {
	started chan uint64
	mu      sync.Mutex
	release map[uint64]chan struct{}
}

func newGated() *gated {
	return &gated{started: make(chan uint64, 64), release: map[uint64]chan struct{}{}}
}

func (g *gated) gate(seq uint64) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.release[seq]
	if !ok {
		c = make(chan struct{})
		g.release[seq] = c
	}
	return c
}

func (g *gated) do(ctx context.Context, f *Frame, result func([]byte, string) error) error {
	g.started <- f.Seq
	select {
	case <-g.gate(f.Seq):
	case <-ctx.Done():
		return ctx.Err()
	}
	return result([]byte(fmt.Sprintf(`{"seq":%d}`, f.Seq)), "application/json")
}

// runnersOnly is a stream with its runners and no reader: the test offers frames itself.
func runnersOnly(t *testing.T, inflight int, do func(context.Context, *Frame, func([]byte, string) error) error) (*Stream, *Sub) {
	t.Helper()
	hub := NewHub()
	sub := hub.Subscribe("t", 10000)
	s := &Stream{name: "t", cfg: config.Stream{Inflight: inflight}, hub: hub, box: newMailbox(), pool: newBufPool(), do: do}
	s.log = hclog.NewNullLogger()
	s.startRunners()
	t.Cleanup(s.Stop)
	return s, sub
}

func (s *Stream) offerSeq(seq uint64) {
	s.offer(&Frame{Seq: seq, Captured: time.Now()})
}

func wantStarted(t *testing.T, g *gated, want uint64) {
	t.Helper()
	select {
	case got := <-g.started:
		if got != want {
			t.Fatalf("a runner started frame %d, want %d", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no runner started frame %d", want)
	}
}

func wantEvent(t *testing.T, sub *Sub, want uint64) {
	t.Helper()
	select {
	case ev := <-sub.C:
		if ev.Seq != want || ev.Error != "" || string(ev.Result) != fmt.Sprintf(`{"seq":%d}`, want) {
			t.Fatalf("event %+v, want frame %d's result", ev, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no event for frame %d", want)
	}
}

// waitCount waits until n() is want (the runners count after the test released a frame).
func waitCount(t *testing.T, what string, n func() int64, want int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); n() != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d", what, n(), want)
		}
	}
}

// TestInflightNewestFirstInOrder: with two frames in flight, a frame offered while both
// runners are busy waits in the slot and a newer one replaces it (dropped, "busy"); a newer
// frame that finishes first is published, and the older one finishing after it is dropped
// ("late"), never published out of order.
func TestInflightNewestFirstInOrder(t *testing.T) {
	g := newGated()
	s, sub := runnersOnly(t, 2, g.do)
	s.offerSeq(1)
	wantStarted(t, g, 1)
	s.offerSeq(2)
	wantStarted(t, g, 2)
	// Both runners busy: 3 and 4 are replaced by 5 in the slot.
	s.offerSeq(3)
	s.offerSeq(4)
	s.offerSeq(5)
	if got := s.stats.Dropped.Load(); got != 2 {
		t.Fatalf("dropped %d with both runners busy, want 2 (frames 3 and 4 replaced)", got)
	}
	close(g.gate(2)) // the newer frame finishes first
	wantEvent(t, sub, 2)
	wantStarted(t, g, 5) // the freed runner takes the newest frame
	close(g.gate(1))     // the older one finishes after frame 2's result went out: late
	waitCount(t, "dropped", s.stats.Dropped.Load, 3)
	if l := s.stats.DroppedLate.Load(); l != 1 {
		t.Errorf("dropped late %d, want 1 (frame 1)", l)
	}
	close(g.gate(5))
	wantEvent(t, sub, 5)
	select {
	case ev := <-sub.C:
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
	if p := s.stats.Processed.Load(); p != 2 {
		t.Errorf("processed %d, want 2", p)
	}
	// Both runners free again: frames run side by side and, released in order, all come out.
	s.offerSeq(6)
	wantStarted(t, g, 6)
	s.offerSeq(7)
	wantStarted(t, g, 7)
	close(g.gate(6))
	wantEvent(t, sub, 6)
	close(g.gate(7))
	wantEvent(t, sub, 7)
	if d := s.stats.Dropped.Load(); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
}

// TestInflightStrict: inflight = 1 answers every frame a runner took, in order, and never
// drops one as late.
func TestInflightStrict(t *testing.T) {
	g := newGated()
	s, sub := runnersOnly(t, 1, g.do)
	s.offerSeq(1)
	wantStarted(t, g, 1)
	s.offerSeq(2)
	s.offerSeq(3) // replaces 2: busy
	close(g.gate(1))
	wantEvent(t, sub, 1)
	wantStarted(t, g, 3)
	close(g.gate(3))
	wantEvent(t, sub, 3)
	if d, p := s.stats.Dropped.Load(), s.stats.Processed.Load(); d != 1 || p != 2 {
		t.Errorf("dropped %d processed %d, want 1 and 2", d, p)
	}
}

// TestInflightVaryingFrameTimes: frames of random durations (0–20 ms, a few 60 ms) offered
// every 2 ms to 3 runners: the published sequence numbers only increase, and every frame
// offered is accounted for once (published, replaced while the runners were busy, or late).
func TestInflightVaryingFrameTimes(t *testing.T) {
	const n = 300
	rng := rand.New(rand.NewPCG(1, 2))
	durations := make([]time.Duration, n+1)
	for i := range durations {
		durations[i] = time.Duration(rng.IntN(20)) * time.Millisecond
		if i%17 == 0 {
			durations[i] = 60 * time.Millisecond
		}
	}
	var errs sync.Map
	s, sub := runnersOnly(t, 3, func(ctx context.Context, f *Frame, result func([]byte, string) error) error {
		select {
		case <-time.After(durations[f.Seq]):
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.Seq%29 == 0 { // failures are ordered like results
			errs.Store(f.Seq, true)
			return fmt.Errorf("frame %d failed", f.Seq)
		}
		return result([]byte(fmt.Sprintf(`{"seq":%d}`, f.Seq)), "application/json")
	})
	for i := uint64(1); i <= n; i++ {
		s.offerSeq(i)
		time.Sleep(2 * time.Millisecond)
	}
	// Everything offered is accounted for once the runners are done.
	waitCount(t, "published + dropped", func() int64 {
		return s.stats.Processed.Load() + s.stats.Failed.Load() + s.stats.Dropped.Load()
	}, n)
	var last uint64
	var events int64
	for len(sub.C) > 0 {
		ev := <-sub.C
		events++
		if ev.Seq <= last {
			t.Fatalf("event for frame %d after frame %d: out of order", ev.Seq, last)
		}
		last = ev.Seq
		if _, failed := errs.Load(ev.Seq); failed != (ev.Error != "") {
			t.Errorf("frame %d: event %+v", ev.Seq, ev)
		}
	}
	if events != s.stats.Processed.Load()+s.stats.Failed.Load() {
		t.Errorf("%d events, %d processed + %d failed", events, s.stats.Processed.Load(), s.stats.Failed.Load())
	}
	t.Logf("%d frames: %d processed, %d failed, %d dropped (%d of them late)", n, s.stats.Processed.Load(), s.stats.Failed.Load(), s.stats.Dropped.Load(), s.stats.DroppedLate.Load())
}

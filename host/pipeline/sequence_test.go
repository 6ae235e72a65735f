package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
)

func seqecho(t testing.TB, tag int) string { return testplugins.SeqEcho(t, tag) }

type echo struct {
	Pre       int    `json:"pre"`
	Post      int    `json:"post"`
	PreFlags  uint32 `json:"pre_flags"`
	PostFlags uint32 `json:"post_flags"`
	Tag       int    `json:"tag"`
	Out       []int  `json:"out"`
}

// seqFixture is okay_nabu.tflite (a streaming model: its state is in resource variables
// inside the interpreter) with seqecho as pre and post.
type seqFixture struct {
	f    *fixture
	mods map[int]*plugin.Module
}

func newSeqFixture(t testing.TB, tags ...int) *seqFixture {
	f := newFixture(t, "okay_nabu.tflite")
	sf := &seqFixture{f: f, mods: map[int]*plugin.Module{}}
	for _, tag := range tags {
		m, err := f.rt.Load(context.Background(), plugin.Config{Path: seqecho(t, tag), WantKind: abi.KindBoth, Timeout: workBudget})
		if err != nil {
			t.Fatal(err)
		}
		sf.mods[tag] = m
	}
	return sf
}

func (sf *seqFixture) spec(tag int, workers int, lim pipeline.SequenceLimits) pipeline.Spec {
	return pipeline.Spec{Name: "seq", Model: sf.f.model, Pre: sf.mods[1], Post: sf.mods[tag], Workers: workers, Sequences: lim}
}

// chunks are n deterministic model inputs of okay_nabu (3 × 40 int8 features): a random
// floor per feature with a moving sine on top. Random bytes make the model answer 0 to
// everything; this pattern makes its output move once its state (ring buffers) has filled,
// after about 30 chunks, so state shows in the outputs.
func chunks(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var base [40]float64
	for j := range base {
		base[j] = float64(-96 + r.IntN(16))
	}
	out := make([][]byte, n)
	for k := range out {
		out[k] = make([]byte, 120)
		for i := range out[k] {
			v := math.Round(base[i%40] + 20*math.Sin(float64(i)*0.1+float64(k)*1.5))
			out[k][i] = byte(int8(max(-128, min(127, v))))
		}
	}
	return out
}

func doSeq(p *pipeline.Pipeline, id string, start, end bool, in []byte) (echo, error) {
	var e echo
	_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(in), Size: len(in),
		Sequence: pipeline.Sequence{ID: id, Start: start, End: end}}, func(b []byte, _ string) error {
		return json.Unmarshal(b, &e)
	})
	return e, err
}

// runAlone runs the chunks as one sequence on a pipeline of its own and returns the outputs.
func runAlone(t testing.TB, p *pipeline.Pipeline, id string, in [][]byte) []echo {
	t.Helper()
	var out []echo
	for i, c := range in {
		e, err := doSeq(p, id, i == 0, i == len(in)-1, c)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

// TestSequenceState: each sequence keeps its own pre/post instances and interpreter, in
// order, whatever runs beside it: interleaved sequences and stateless requests on the same
// pipeline give every sequence exactly the outputs it gets alone, and the plugins see the
// ABI 1.3 flags.
func TestSequenceState(t *testing.T) {
	sf := newSeqFixture(t, 1)
	p, err := pipeline.New(context.Background(), sf.spec(1, 2, pipeline.SequenceLimits{Max: 8}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const n = 60
	ins := [][][]byte{chunks(1, n), chunks(2, n), chunks(3, n), chunks(4, n)}
	alone := make([][]echo, len(ins))
	for k, in := range ins {
		alone[k] = runAlone(t, p, fmt.Sprintf("alone-%d", k), in)
	}
	// The model keeps state: the same input gives other outputs later in a sequence.
	again := runAlone(t, p, "again", append(append([][]byte{}, ins[0]...), ins[0]...))
	if outs(again[:n]) != outs(alone[0]) {
		t.Fatalf("a restarted sequence gave other outputs:\n%v\n%v", again[:n], alone[0])
	}
	differs := false
	for i := range n {
		differs = differs || fmt.Sprint(again[n+i].Out) != fmt.Sprint(alone[0][i].Out)
	}
	if !differs {
		t.Fatal("okay_nabu gave the same outputs for the same inputs with and without earlier state: the test cannot tell state apart")
	}
	for i, e := range alone[0] {
		want := uint32(abi.FlagContext | abi.FlagSequence)
		if i == 0 {
			want |= abi.FlagSeqStart
		}
		if i == n-1 {
			want |= abi.FlagSeqEnd
		}
		if e.Pre != i+1 || e.Post != i+1 || e.PreFlags != want || e.PostFlags != want {
			t.Fatalf("chunk %d: %+v, want pre=post=%d and flags %#x", i, e, i+1, want)
		}
	}
	// Now all at once, with stateless requests beside them.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for k, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("together-%d", k)
			for i, c := range in {
				e, err := doSeq(p, id, i == 0, i == len(in)-1, c)
				if err != nil {
					errs <- err
					return
				}
				if fmt.Sprint(e) != fmt.Sprint(alone[k][i]) {
					errs <- fmt.Errorf("sequence %d chunk %d: %+v, alone %+v", k, i, e, alone[k][i])
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, c := range chunks(9, 20) {
			if _, err := p.Run(context.Background(), bytes.NewReader(c), len(c), func([]byte, string) error { return nil }); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := p.Sequences(); st.Live != 0 || st.Started != 9 || st.Ended != 9 {
		t.Fatalf("sequence stats %+v, want 0 live and 9 started and ended", st)
	}
}

// TestSequenceErrors: an unknown or expired sequence without start, and a start past the
// bound, get clear typed errors; a start on a live id restarts it.
func TestSequenceErrors(t *testing.T) {
	sf := newSeqFixture(t, 1)
	p, err := pipeline.New(context.Background(), sf.spec(1, 1, pipeline.SequenceLimits{Max: 2, IdleTimeout: 100 * time.Millisecond}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	in := chunks(5, 1)[0]
	var se *pipeline.SequenceError
	if _, err := doSeq(p, "nobody", false, false, in); !errors.As(err, &se) {
		t.Fatalf("unknown sequence: %v, want a SequenceError", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := doSeq(p, id, true, false, in); err != nil {
			t.Fatal(err)
		}
	}
	_, err = doSeq(p, "c", true, false, in)
	if !errors.Is(err, pipeline.ErrTooManySequences) {
		t.Fatalf("third start with max 2: %v", err)
	}
	t.Log(err)
	if e, err := doSeq(p, "a", false, false, in); err != nil || e.Pre != 2 {
		t.Fatalf("a's second chunk: %+v %v", e, err)
	}
	if e, err := doSeq(p, "a", true, false, in); err != nil || e.Pre != 1 {
		t.Fatalf("a restarted: %+v %v, want a fresh count", e, err)
	}
	// Stateless requests still run while the bound is reached.
	if _, err := p.Run(context.Background(), bytes.NewReader(in), len(in), func([]byte, string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Idle sequences expire; their ids are then unknown.
	deadline := time.Now().Add(10 * time.Second)
	for p.Sequences().Live > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := p.Sequences(); st.Live != 0 || st.Expired != 2 {
		t.Fatalf("after the idle timeout: %+v", st)
	}
	_, err = doSeq(p, "b", false, false, in)
	if !errors.As(err, &se) {
		t.Fatalf("expired sequence: %v", err)
	}
	t.Log(err)
	if _, err := doSeq(p, "c", true, true, in); err != nil {
		t.Fatalf("a start after expiry: %v", err)
	}
	// A bad chunk (wrong size: the plugin's bad_input) does not end the sequence.
	if _, err := doSeq(p, "d", true, false, in); err != nil {
		t.Fatal(err)
	}
	if _, err := doSeq(p, "d", false, false, in[:7]); err == nil {
		t.Fatal("a 7-byte chunk was accepted")
	}
	if e, err := doSeq(p, "d", false, true, in); err != nil || e.Pre != 2 {
		t.Fatalf("after a bad chunk: %+v %v", e, err)
	}
}

// TestSequenceHotSwap: a swap while sequences stream lets each finish on the version it
// started on (no sequence sees two versions, no chunk fails); sequences started after the
// swap run the new version; the old version closes once its last sequence has ended.
func TestSequenceHotSwap(t *testing.T) {
	sf := newSeqFixture(t, 1, 2)
	lim := pipeline.SequenceLimits{Max: 32}
	p, err := pipeline.New(context.Background(), sf.spec(1, 1, lim), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const streams, n = 8, 30
	in := chunks(7, n)
	want := runAlone(t, p, "ref", in)
	var wg sync.WaitGroup
	errs := make(chan error, streams*2)
	started := make(chan struct{}, streams)
	swapped := make(chan struct{})
	for k := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("s%d", k)
			tag := 0
			for i, c := range in {
				if i == n/2 && k == 0 {
					<-swapped
				}
				e, err := doSeq(p, id, i == 0, i == n-1, c)
				if err != nil {
					errs <- fmt.Errorf("%s chunk %d: %w", id, i, err)
					return
				}
				if i == 0 {
					tag = e.Tag
					started <- struct{}{}
				}
				if e.Tag != tag || fmt.Sprint(e.Out) != fmt.Sprint(want[i].Out) || e.Pre != i+1 {
					errs <- fmt.Errorf("%s chunk %d: %+v (started on tag %d, want out %v)", id, i, e, tag, want[i].Out)
					return
				}
			}
		}()
	}
	for range streams {
		<-started
	}
	v, err := p.Prepare(context.Background(), sf.spec(2, 1, lim))
	if err != nil {
		t.Fatal(err)
	}
	oldClosed := p.Commit(v)
	select {
	case <-oldClosed:
		t.Fatal("the old version closed while its sequences were live")
	default:
	}
	if e, err := doSeq(p, "new", true, true, in[0]); err != nil || e.Tag != 2 {
		t.Fatalf("a sequence started after the swap: %+v %v, want tag 2", e, err)
	}
	close(swapped)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case <-oldClosed:
	case <-time.After(30 * time.Second):
		t.Fatal("the old version did not close after its sequences ended")
	}
}

// TestSequenceOldPlugins: plugins built before ABI 1.3 (the example imagepre-c and
// classify-c, which never read the sequence flags) serve a sequence unchanged.
func TestSequenceOldPlugins(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	p := f.pipeline(t, "imagepre-c", "classify-c", map[string]any{"top_k": 1}, false, 1)
	img, _ := os.ReadFile(models + "peacock.png")
	var alone classification
	if err := json.Unmarshal(first(run(t, p, img)), &alone); err != nil || len(alone.Top) != 1 {
		t.Fatalf("%+v %v", alone, err)
	}
	for i := range 3 {
		var c classification
		_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(img), Size: len(img),
			Sequence: pipeline.Sequence{ID: "img", Start: i == 0, End: i == 2}}, func(b []byte, _ string) error {
			return json.Unmarshal(b, &c)
		})
		if err != nil || len(c.Top) != 1 || c.Top[0] != alone.Top[0] {
			t.Fatalf("request %d: %+v %v", i, c, err)
		}
	}
}

func first[A, B any](a A, _ B) A { return a }

func outs(es []echo) string {
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprint(&b, e.Out)
	}
	return b.String()
}

// rss is the process's resident set size in bytes (Linux; 0 elsewhere).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(b), &size, &res)
	return res * int64(os.Getpagesize())
}

// TestSequenceStartsBounded: 10,000 sequence starts that never end hold at most
// sequences.max workers: the rest are refused (until idle ones expire: TestSequenceErrors),
// and memory stays bounded. It logs what one live sequence costs (an okay_nabu interpreter
// and two C plugin instances) and how long a start takes, the figures RATIONALE.md quotes.
func TestSequenceStartsBounded(t *testing.T) {
	sf := newSeqFixture(t, 1)
	const limit = 64
	p, err := pipeline.New(context.Background(), sf.spec(1, 1, pipeline.SequenceLimits{Max: limit, IdleTimeout: time.Hour}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	in := chunks(11, 1)[0]
	before := rss()
	var peak int64
	ok, refused := 0, 0
	t0 := time.Now()
	for i := range 10000 {
		_, err := doSeq(p, fmt.Sprintf("never-ends-%d", i), true, false, in)
		switch {
		case err == nil:
			ok++
		case errors.Is(err, pipeline.ErrTooManySequences):
			refused++
		default:
			t.Fatal(err)
		}
		if i%500 == 0 {
			peak = max(peak, rss())
		}
		if i == limit-1 {
			t.Logf("%d live sequences: RSS %+.1f MiB (%.0f KiB each), %v per start with its first chunk",
				limit, float64(rss()-before)/(1<<20), float64(rss()-before)/1024/limit, time.Since(t0)/limit)
		}
	}
	peak = max(peak, rss())
	t.Logf("10,000 starts: %d accepted, %d refused; RSS before %.1f MiB, peak %.1f MiB; %+v", ok, refused, float64(before)/(1<<20), float64(peak)/(1<<20), p.Sequences())
	if ok != limit || refused != 10000-limit || p.Sequences().Live != limit {
		t.Fatalf("accepted %d, refused %d, %+v: want exactly %d live", ok, refused, p.Sequences(), limit)
	}
	if grow := peak - before; grow > 256<<20 {
		t.Fatalf("RSS grew by %d MiB for at most %d live sequences", grow>>20, limit)
	}
}

// TestSequenceHold: a held sequence (a stream between two chunks) outlives its idle timeout;
// once released it expires after the timeout, counted from the release.
func TestSequenceHold(t *testing.T) {
	sf := newSeqFixture(t, 1)
	p, err := pipeline.New(context.Background(), sf.spec(1, 1, pipeline.SequenceLimits{Max: 4, IdleTimeout: 50 * time.Millisecond}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	in := chunks(3, 1)[0]
	if _, err := doSeq(p, "held", true, false, in); err != nil {
		t.Fatal(err)
	}
	release := p.HoldSequence("held")
	time.Sleep(400 * time.Millisecond)
	if e, err := doSeq(p, "held", false, false, in); err != nil || e.Pre != 2 {
		t.Fatalf("held past the idle timeout: %+v %v", e, err)
	}
	release()
	release() // idempotent
	p.HoldSequence("nobody")()
	deadline := time.Now().Add(10 * time.Second)
	for p.Sequences().Live > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := p.Sequences(); st.Live != 0 || st.Expired != 1 {
		t.Fatalf("after release: %+v", st)
	}
}

// TestSequenceTrap: a trap in a sequence's plugin ends the sequence (its state is gone, and
// the error says so); the next chunk without a start is refused; nothing stays live.
func TestSequenceTrap(t *testing.T) {
	f := newFixture(t, "okay_nabu.tflite")
	m, err := f.rt.Load(context.Background(), plugin.Config{Path: testplugins.Hostile(t, "TRAP_PRE", abi.KindBoth), WantKind: abi.KindBoth, Timeout: workBudget})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(context.Background(), pipeline.Spec{Name: "trap", Model: f.model, Pre: m, Post: m, Workers: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	do := func(start bool, body []byte) error {
		_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(body), Size: len(body),
			Sequence: pipeline.Sequence{ID: "t", Start: start}}, func([]byte, string) error { return nil })
		return err
	}
	// TRAP_PRE refuses an empty input (bad_input: the sequence stays live) and traps on any
	// other.
	var st *plugin.StatusError
	if err := do(true, nil); !errors.As(err, &st) || p.Sequences().Live != 1 {
		t.Fatalf("empty start: %v, %+v: want bad_input and the sequence live", err, p.Sequences())
	}
	err = do(false, []byte("boom"))
	var trap *plugin.TrapError
	if !errors.As(err, &trap) || !strings.Contains(err.Error(), `sequence "t" ended`) {
		t.Fatalf("trap in a sequence: %v", err)
	}
	var se *pipeline.SequenceError
	if err := do(false, nil); !errors.As(err, &se) {
		t.Fatalf("after the trap: %v, want the sequence gone", err)
	}
	if st := p.Sequences(); st.Live != 0 || st.Ended != 1 {
		t.Fatalf("%+v", st)
	}
	if err := do(true, nil); !errors.As(err, &st) || p.Sequences().Live != 1 {
		t.Fatalf("a new start after the trap: %v", err)
	}
}

// TestSequenceClose: closing a pipeline while sequences stream ends them all, each after
// its running chunk; later chunks get ErrClosed, never a crash (closed instances are never
// called) or a hang.
func TestSequenceClose(t *testing.T) {
	sf := newSeqFixture(t, 1)
	p, err := pipeline.New(context.Background(), sf.spec(1, 1, pipeline.SequenceLimits{Max: 8}), nil)
	if err != nil {
		t.Fatal(err)
	}
	in := chunks(9, 1)[0]
	var wg sync.WaitGroup
	var served atomic.Int64
	errs := make(chan error, 8)
	for k := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := doSeq(p, fmt.Sprint("c", k), i == 0, false, in)
				if err != nil {
					errs <- err
					return
				}
				served.Add(1)
			}
		}()
	}
	for served.Load() < 30 {
		time.Sleep(time.Millisecond)
	}
	p.Close(context.Background())
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, pipeline.ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
	if st := p.Sequences(); st.Live != 0 {
		t.Fatalf("%+v live after Close", st)
	}
}

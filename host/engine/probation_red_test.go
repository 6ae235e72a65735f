package engine_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestProbationHangingVersion: a new version whose post plugin spins until its time budget
// (1 s) traps it holds its workers for a second per request; with 8 clients on 2 workers,
// requests wait in the new version's queue past queue_timeout and fail as overloaded. Those
// were not run again on the previous version (idle all along): overload does not count
// against a version, and Run retried only what counts. No client may lose a request to the
// version under probation, whatever way it fails.
func TestProbationHangingVersion(t *testing.T) {
	f := newFixture(t, "rollback_window = 10\nrollback_trap_share = 0.5\nqueue_timeout = \"1500ms\"")
	good := f.postHash()
	if err := os.WriteFile(f.post, echo(t, f.dir, 7, "-DSPIN_POST"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.post)
	if f.postHash() == good {
		t.Fatal("the spinning version was not swapped in (it loads and inits fine)")
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2; i++ {
				if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
					failed.Add(1)
					t.Errorf("request failed or answered by the spinning version: %v %s", err, out)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for f.e.Status().Rollbacks == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := f.e.Status()
	t.Logf("%d of 16 requests failed for clients; retried %d; rollbacks %d", failed.Load(), st.Pipelines["p"].Retried, st.Rollbacks)
	if st.Rollbacks != 1 || f.postHash() != good {
		t.Errorf("rollbacks=%d; back on the good version: %v", st.Rollbacks, f.postHash() == good)
	}
}

// TestProbationHangPastDeadline: clients whose deadline (here 900 ms) is shorter than the
// plugin's time budget (1 s). A new version that spins is stopped by the request's deadline,
// not its budget; a request whose context ended was not held against the version but
// counted as one it passed, so after rollback_window such requests the spinning version was
// accepted (probation over, never rolled back) and every client lost its request. The
// version under probation must leave room in the deadline for the previous version.
func TestProbationHangPastDeadline(t *testing.T) {
	f := newFixture(t, "rollback_window = 10\nrollback_trap_share = 0.5")
	good := f.postHash()
	if err := os.WriteFile(f.post, echo(t, f.dir, 8, "-DSPIN_POST"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.post)
	if f.postHash() == good {
		t.Fatal("the spinning version was not swapped in (it loads and inits fine)")
	}
	p, _ := f.e.Pipeline("p")
	failed := 0
	for i := 0; i < 12; i++ {
		// 900 ms: under the 1 s budget, and the previous version's half (450 ms) holds a
		// mobilenet request on a busy machine (300 ms of a 600 ms deadline once did not).
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		var out string
		_, err := p.Pipeline.Run(ctx, bytes.NewReader(f.img), len(f.img), func(b []byte, _ string) error {
			out = string(b)
			return nil
		})
		cancel()
		if err != nil || !strings.Contains(out, `"version":1`) {
			failed++
			if failed <= 3 {
				t.Errorf("request %d: %v %s", i, err, out)
			}
		}
	}
	st := f.e.Status()
	t.Logf("%d of 12 requests failed; retried %d; rollbacks %d; in probation %v", failed, st.Pipelines["p"].Retried, st.Rollbacks, p.Pipeline.InProbation())
	if f.postHash() != good && !p.Pipeline.InProbation() {
		t.Errorf("the spinning version was accepted: probation ended with it serving")
	}
	if failed > 0 || st.Rollbacks != 1 {
		t.Errorf("%d requests lost, %d rollbacks: want 0 and 1", failed, st.Rollbacks)
	}
}

// TestProbationTightDeadlineKeepsGoodVersion: the other side of TestProbationHangPastDeadline.
// Clients whose deadline is too short for either version (2 ms) must not get a good new
// version rolled back: a request cut at its half of the deadline counts against the new
// version only when the previous one then answers in the other half.
func TestProbationTightDeadlineKeepsGoodVersion(t *testing.T) {
	f := newFixture(t, "rollback_window = 10\nrollback_trap_share = 0.3")
	v2 := echo(t, f.dir, 2)
	if err := os.WriteFile(f.post, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	f.e.ReloadFile(context.Background(), f.post)
	if f.postHash() != sha(v2) {
		t.Fatal("v2 was not swapped in")
	}
	p, _ := f.e.Pipeline("p")
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
		_, _ = p.Pipeline.Run(ctx, bytes.NewReader(f.img), len(f.img), func([]byte, string) error { return nil })
		cancel()
	}
	if st := f.e.Status(); st.Rollbacks != 0 || f.postHash() != sha(v2) {
		t.Fatalf("a good version was rolled back by clients whose deadline no version meets: rollbacks=%d", st.Rollbacks)
	}
	if out, err := f.run(); err != nil || !strings.Contains(out, `"version":2`) {
		t.Fatalf("v2 not serving: %v %s", err, out)
	}
}

package engine_test

import (
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

package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/tflite"
)

// TestAdaptiveThreads: a request alone in the process runs on its model's idle interpreter
// (idle_threads = 2) and returns what a request on a worker's 1-thread interpreter returns;
// with another request in flight it runs on its worker's; a model reload closes the old
// version's idle interpreter, and the new version, replacing one that had built its idle
// interpreter, builds its own before it serves. No timing is asserted.
func TestAdaptiveThreads(t *testing.T) {
	// Other processes' load would send lone requests to 1 thread too (tested in host/tflite).
	defer tflite.SetLoadCheck(tflite.SetLoadCheck(false))
	dir := t.TempDir()
	model := filepath.Join(dir, "mobilenet.tflite")
	orig := mustRead(t, testplugins.Model("mobilenet_quant_v1_224.tflite"))
	writeFile(t, model, orig)
	cfg := fmt.Sprintf(`[runtime]
cache_dir = ""
[models.mobilenet]
path = %q
threads = 1
idle_threads = 2
[pipelines.p]
model = "mobilenet"
workers = 2
rollback_window = 0   # the old version (and its model) is not kept for a rollback
[pipelines.p.pre]
path = %q
timeout_ms = 30000
[pipelines.p.post]
path = %q
timeout_ms = 30000
params_files = { labels = %q }
`, model, testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"), testplugins.Model("mobilenet_labels.txt"))
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, []byte(cfg))
	r := newRigWatched(t, cfgPath, false)
	p, _ := r.e.Pipeline("p")
	run := func() (string, pipeline.Stats) {
		t.Helper()
		var out string
		st, err := p.Pipeline.Run(context.Background(), bytes.NewReader(r.img), len(r.img), func(b []byte, _ string) error {
			out = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out, st
	}
	m, _ := r.e.Model("mobilenet")
	if m.Model.IdleThreads() != 2 {
		t.Fatalf("IdleThreads = %d, want 2", m.Model.IdleThreads())
	}

	// The first lone request starts building the idle interpreter and runs on its own.
	first, st := run()
	if st.Threads != 1 {
		t.Fatalf("the first request ran on %d threads before the idle interpreter was built", st.Threads)
	}
	if err := m.Model.PrepareIdle(); err != nil { // waits for that build
		t.Fatal(err)
	}
	alone, st := run()
	if st.Threads != 2 {
		t.Fatalf("a request alone ran on %d threads, want 2 (the idle interpreter)", st.Threads)
	}
	if alone != first {
		t.Fatalf("the idle interpreter's result differs:\n 2 threads: %s\n 1 thread:  %s", alone, first)
	}
	tflite.Begin() // another request in flight
	busy, st := run()
	tflite.End()
	if st.Threads != 1 {
		t.Fatalf("with another request in flight a request ran on %d threads, want 1", st.Threads)
	}
	if busy != first {
		t.Fatalf("results differ:\n busy: %s\n first: %s", busy, first)
	}
	var top struct {
		Top []struct{ Label string } `json:"top"`
	}
	if err := json.Unmarshal([]byte(alone), &top); err != nil || len(top.Top) == 0 || top.Top[0].Label != "peacock" {
		t.Fatalf("not a peacock: %s (%v)", alone, err)
	}

	// Hot reload: the model file changes (the same graph with 64 more bytes at its end).
	old := m.Model
	writeFile(t, model, append(append([]byte{}, orig...), make([]byte, 64)...))
	r.e.ReloadFile(context.Background(), model)
	waitFor(t, "the new model version", 60*time.Second, func() bool {
		nm, _ := r.e.Model("mobilenet")
		return nm.Model != old
	})
	waitFor(t, "the old version's idle interpreter closed", 60*time.Second, func() bool { return !old.HasIdle() })
	// The old version had built its idle interpreter: the new one builds its own before it
	// serves, so the first lone request after the swap already runs on it.
	nm, _ := r.e.Model("mobilenet")
	if !nm.Model.HasIdle() {
		t.Fatal("the new version serves without the idle interpreter the old one had")
	}
	after, st := run()
	if st.Threads != 2 || after != first {
		t.Fatalf("after the reload: %d threads, result %s (want 2 threads, %s)", st.Threads, after, first)
	}
	if old.IdleRuns() == 0 || nm.Model.IdleRuns() == 0 {
		t.Fatalf("idle runs: old %d, new %d", old.IdleRuns(), nm.Model.IdleRuns())
	}
}

// TestAdaptiveThreadsSkipsSequences: a sequence's chunks run on its own worker's
// interpreter (which holds its state), even alone in the process with the model's idle
// interpreter built.
func TestAdaptiveThreadsSkipsSequences(t *testing.T) {
	defer tflite.SetLoadCheck(tflite.SetLoadCheck(false))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`[runtime]
cache_dir = ""
[models.nabu]
path = %q
threads = 1
idle_threads = 2
[pipelines.w]
model = "nabu"
workers = 1
[pipelines.w.sequences]
max = 4
[pipelines.w.pre]
path = %q
timeout_ms = 30000
[pipelines.w.post]
path = %q
timeout_ms = 30000
`, testplugins.Model("okay_nabu.tflite"), testplugins.Example(t, "microfeatures-c"), testplugins.SeqEcho(t, 1))
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, []byte(cfg))
	r := newRigWatched(t, cfgPath, false)
	p, _ := r.e.Pipeline("w")
	m, _ := r.e.Model("nabu")
	if err := m.Model.PrepareIdle(); err != nil {
		t.Fatal(err)
	}
	if !m.Model.HasIdle() {
		t.Fatal("no idle interpreter for okay_nabu")
	}
	chunk := make([]byte, 320)
	for i := range chunk {
		chunk[i] = byte(i * 37)
	}
	for i := range 30 {
		st, err := p.Pipeline.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(chunk), Size: len(chunk),
			Sequence: pipeline.Sequence{ID: "s", Start: i == 0, End: i == 29}}, func([]byte, string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if st.Threads > 1 {
			t.Fatalf("chunk %d of a sequence ran on %d threads: not on its own interpreter", i, st.Threads)
		}
	}
	if n := m.Model.IdleRuns(); n != 0 {
		t.Fatalf("a sequence's chunks took the idle interpreter %d times", n)
	}
	// The same model, alone, outside a sequence, does take it (the check above is not
	// vacuous): microfeatures-c refuses a request outside a sequence, so run the bare model.
	tflite.Begin()
	it := m.Model.IdleInterpreter()
	tflite.End()
	if it == nil {
		t.Fatal("a lone request outside sequences would not get the idle interpreter")
	}
	m.Model.PutIdle(it)
}

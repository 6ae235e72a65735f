package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// chunkRecord is one 10 ms chunk as wakeword-c reports it with report = "all", and as
// tools/wakeword/reference.py writes pymicro-wakeword's.
type chunkRecord struct {
	Chunk       int      `json:"chunk"`
	Feature     bool     `json:"feature"`
	Inferred    bool     `json:"inferred"`
	Output      int      `json:"output"`
	Probability *float64 `json:"probability"`
	Detected    bool     `json:"detected"`
	Features    []int    `json:"features"`
}

// wavData returns the data chunk of a WAV file written by Python's wave module.
func wavData(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for pos := 12; pos+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[pos+4:]))
		if string(b[pos:pos+4]) == "data" {
			return b[pos+8 : pos+8+n]
		}
		pos += 8 + n + n&1
	}
	t.Fatalf("%s: no data chunk", path)
	return nil
}

// wakewordPipeline is the shipped wakeword pipeline (microfeatures-c, okay_nabu, wakeword-c)
// with the post plugin reporting every chunk.
func wakewordPipeline(t testing.TB, xnnpack bool, lim pipeline.SequenceLimits) *pipeline.Pipeline {
	t.Helper()
	f := newFixture(t, "okay_nabu.tflite") // for the shared runtime
	m, err := tflite.LoadModel(models+"okay_nabu.tflite", tflite.Options{Threads: 1, XNNPACK: xnnpack})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	pre, err := f.rt.Load(context.Background(), plugin.Config{Path: wasm(t, "microfeatures-c"), WantKind: abi.KindPre, Timeout: workBudget})
	if err != nil {
		t.Fatal(err)
	}
	post, err := f.rt.Load(context.Background(), plugin.Config{Path: wasm(t, "wakeword-c"), WantKind: abi.KindPost, Timeout: workBudget,
		Params: map[string]any{"probability_cutoff": 0.85, "sliding_window_size": 5, "wake_word": "Okay Nabu", "report": "all"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(context.Background(), pipeline.Spec{Name: "wakeword", Model: m, Pre: pre, Post: post, Workers: 1, Sequences: lim}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// streamClip runs pcm through p as sequence id in 10 ms chunks and returns each chunk's record.
func streamClip(p *pipeline.Pipeline, id string, pcm []byte) ([]chunkRecord, error) {
	n := len(pcm) / 320
	out := make([]chunkRecord, 0, n)
	for i := range n {
		var r chunkRecord
		_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(pcm[i*320 : (i+1)*320]), Size: 320,
			Sequence: pipeline.Sequence{ID: id, Start: i == 0, End: i == n-1}}, func(b []byte, _ string) error {
			return json.Unmarshal(b, &r)
		})
		if err != nil {
			return out, fmt.Errorf("chunk %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// TestWakewordReference: on every clip `make wakeword-ref` made (espeak-ng speech, noise,
// silence), the wakeword pipeline as shipped (xnnpack = false) gives per-chunk features,
// model outputs, probabilities and detections equal to pymicro-wakeword's, exactly (the same
// C front end, the same quantisation rounding, the same TFLite library and model, the same
// arithmetic for the window mean). With XNNPACK's quantised kernels (xnnpack = true) the
// features are still equal but the model's uint8 output is not: XNNPACK requantises with
// its own rounding, and a streaming model feeds each difference back through its state, so
// outputs drift by several steps; the test logs by how much and how many detections move
// (why the shipped config says xnnpack = false).
func TestWakewordReference(t *testing.T) {
	dir := filepath.Join(root, ".deps/wakeword-ref")
	if _, err := os.Stat(filepath.Join(dir, ".ok")); err != nil {
		t.Skip("no reference data: run `make wakeword-ref` (espeak-ng from Debian, pymicro-wakeword from PyPI)")
	}
	clips, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
	if len(clips) == 0 {
		t.Fatal("no clips in " + dir)
	}
	// The reference runs pymicro-wakeword's TFLite 2.17.1; with another library (make
	// test-tflite29) only the front end's features must be equal, the model's kernels differ.
	sameLib := strings.HasPrefix(tflite.Probe().Version, "2.17.")
	variants := []bool{false, true}
	if testing.Short() {
		variants = variants[:1] // the XNNPACK half only measures (and make test's -race run is -short)
	}
	for _, xnn := range variants {
		p := wakewordPipeline(t, xnn, pipeline.SequenceLimits{})
		detections, outDiff, detDiff, chunks, maxDiff := 0, 0, 0, 0, 0
		for _, clip := range clips {
			name := strings.TrimSuffix(filepath.Base(clip), ".wav")
			t.Run(fmt.Sprintf("%s/xnnpack=%v", name, xnn), func(t *testing.T) {
				f, err := os.Open(strings.TrimSuffix(clip, ".wav") + ".ref.jsonl")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				var ref []chunkRecord
				for s := bufio.NewScanner(f); s.Scan(); {
					var r chunkRecord
					if err := json.Unmarshal(s.Bytes(), &r); err != nil {
						t.Fatal(err)
					}
					ref = append(ref, r)
				}
				got, err := streamClip(p, name, wavData(t, clip))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(ref) {
					t.Fatalf("%d chunks, reference %d", len(got), len(ref))
				}
				for i := range ref {
					g, r := got[i], ref[i]
					chunks++
					if g.Detected {
						detections++
					}
					if xnn || !sameLib {
						if g.Output != r.Output {
							outDiff++
						}
						if g.Detected != r.Detected {
							detDiff++
						}
						maxDiff = max(maxDiff, abs(g.Output-r.Output))
						if fmt.Sprint(g.Features) != fmt.Sprint(r.Features) || g.Inferred != r.Inferred {
							t.Fatalf("chunk %d: features differ:\nedgehost  %+v\nreference %+v", i+1, g, r)
						}
						continue
					}
					if fmt.Sprint(g.Features) != fmt.Sprint(r.Features) || g.Feature != r.Feature || g.Inferred != r.Inferred ||
						g.Output != r.Output || g.Detected != r.Detected || (g.Probability == nil) != (r.Probability == nil) ||
						(g.Probability != nil && *g.Probability != *r.Probability) {
						t.Fatalf("chunk %d differs:\nedgehost  %+v\nreference %+v", i+1, g, r)
					}
				}
			})
		}
		if detections == 0 && !xnn && sameLib {
			t.Fatal("no clip fired: the comparison never saw a detection")
		}
		t.Logf("TFLite %s, xnnpack=%v: %d chunks of %d clips, %d detections; outputs off on %d chunks (at most %d steps of 1/256), detections differing on %d chunks",
			tflite.Probe().Version, xnn, chunks, len(clips), detections, outDiff, maxDiff, detDiff)
	}
}

func abs(x int) int { return max(x, -x) }

package tflite_test

import (
	"os"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/tflite"
)

// TestLiteRTNPU: mobilenet_quant through LiteRT's NPU path, Intel's OpenVINO dispatch on
// OpenVINO's CPU device (graph_backend 0: this x86 machine has no NPU), against the classic
// API: the same top-1 class, scores within 2 of 255 levels (OpenVINO's CPU kernels round a
// little differently from TFLite's: the first load, whose interpreter kept some ops on the
// LiteRT CPU, matched exactly; the cached blob, every op on OpenVINO, differed by 2). The
// compiled blob is cached in CacheDir: the second load skips the JIT compilation. Needs
// `scripts/deps-litert.sh openvino` (make test-accel).
func TestLiteRTNPU(t *testing.T) {
	needLiteRT(t)
	if _, err := os.Stat(litertDir + "/../openvino/libs"); err != nil {
		t.Skipf("OpenVINO is not fetched (%v): run make test-accel", err)
	}
	path := models + "mobilenet_quant_v1_224.tflite"
	want, _ := run(t, path, tflite.Options{Threads: 1, XNNPACK: true})
	cache := t.TempDir()
	opts := tflite.Options{Threads: 1, XNNPACK: true, LiteRT: &tflite.LiteRTOptions{
		Accelerator: tflite.AcceleratorNPU, Dir: litertDir, Vendor: "intel_openvino", CacheDir: cache,
		Options: map[string]string{"intel_openvino": "graph.0.graph_backend = 0\n"}}}
	for round := 0; round < 2; round++ {
		start := time.Now()
		m, err := tflite.LoadModel(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		load := time.Since(start)
		if b := m.Backend(); b.Active != "litert/npu" {
			m.Close()
			t.Fatalf("backend %v, want litert/npu", b)
		}
		it, err := m.NewInterpreter()
		if err != nil {
			t.Fatal(err)
		}
		fill(t, m, it)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		got := it.Output(0)
		if d := maxDiff(t, m.Outputs, want, [][]byte{got}); d > 2 {
			t.Errorf("round %d: NPU result differs from the classic API by %g levels (tolerance 2)", round, d)
		}
		if top(got) != top(want[0]) {
			t.Errorf("round %d: NPU top-1 class %d, the classic API's %d", round, top(got), top(want[0]))
		}
		t.Logf("round %d: load (with compilation) %v, delegates %v", round, load, it.Delegates())
		it.Close()
		m.Close()
	}
	entries, _ := os.ReadDir(cache)
	t.Logf("compiler cache: %d entries", len(entries))
}

func top(b []byte) int {
	best := 0
	for i, v := range b {
		if v > b[best] {
			best = i
		}
	}
	return best
}

package pipeline_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/edgehost/edgehost/host/tflite"
)

const litertDir = root + ".deps/litert/2.3.0/ai_edge_litert"

// TestLiteRTPipelineZeroCopy: a pipeline whose model runs on LiteRT's CPU path binds its
// tensors in the plugins' guest memory like the classic backend (0 bytes copied), and gives
// the classic pipeline's exact result bytes, for both bundled uint8 models.
func TestLiteRTPipelineZeroCopy(t *testing.T) {
	if _, err := os.Stat(litertDir + "/libLiteRt.so"); err != nil {
		t.Skipf("LiteRT is not fetched (%v): run make deps-litert", err)
	}
	if !tflite.Probe().CustomAllocation {
		t.Skipf("%v: LiteRT models need custom allocation (host/tflite tests the fallback)", tflite.Probe())
	}
	for _, c := range []struct{ model, image, post string }{
		{"mobilenet_quant_v1_224.tflite", "peacock.png", "classify-c"},
		{"ssd_detect.tflite", "ssd_example.jpg", "ssd-c"},
	} {
		t.Run(c.model, func(t *testing.T) {
			classic := newFixture(t, c.model)
			m, err := tflite.LoadModel(models+c.model, tflite.Options{Threads: 1, LiteRT: &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: litertDir}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			if b := m.Backend(); b.Active != "litert/cpu" {
				t.Fatalf("backend %v, want litert/cpu", b)
			}
			lrt := &fixture{rt: classic.rt, model: m}
			img, _ := os.ReadFile(models + c.image)
			params := map[string]any{"top_k": 5, "threshold": 0.3}
			want, _ := run(t, classic.pipeline(t, "imagepre-c", c.post, params, false, 1), img)
			p := lrt.pipeline(t, "imagepre-c", c.post, params, false, 2)
			for i := 0; i < 3; i++ {
				got, st := run(t, p, img)
				if !p.ZeroCopy() || st.CopiedBytes != 0 {
					t.Errorf("zero copy %v, %d bytes copied; want zero copy, 0 bytes", p.ZeroCopy(), st.CopiedBytes)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("LiteRT pipeline result differs from the classic one:\n%s\n%s", got, want)
				}
			}
			t.Logf("%s on litert/cpu: 0 bytes copied, result equal to the classic backend's", c.model)
		})
	}
}

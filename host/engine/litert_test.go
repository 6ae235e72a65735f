package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestAcceleratorStatus: models with accelerator = "cpu" and "gpu" in config.toml load, a
// pipeline on the LiteRT model serves, and /status says where each model runs. On a machine
// without a Vulkan driver LiteRT accepts, the GPU model runs on tflite/cpu with the reason;
// the fallback is logged as a warning.
func TestAcceleratorStatus(t *testing.T) {
	lrt := filepath.Join(testplugins.Root, ".deps/litert/2.3.0/ai_edge_litert")
	if _, err := os.Stat(filepath.Join(lrt, "libLiteRt.so")); err != nil {
		t.Skipf("LiteRT is not fetched (%v): run make deps-litert", err)
	}
	dir := t.TempDir()
	post := filepath.Join(dir, "post.wasm")
	if err := os.WriteFile(post, echo(t, dir, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
[runtime]
litert_dir = %q
accelerator_cache_dir = %q
[models.lcpu]
path = %q
accelerator = "cpu"
[models.lgpu]
path = %q
accelerator = "gpu"
[pipelines.p]
model = "lcpu"
[pipelines.p.pre]
path = %q
[pipelines.p.post]
path = %q
`, lrt, filepath.Join(dir, "accel"), testplugins.Model("mobilenet_quant_v1_224.tflite"), testplugins.Model("face_detection_short_range.tflite"),
		testplugins.Example(t, "imagepre-c"), post)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	e, err := engine.New(context.Background(), c, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &log}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	st := e.Status()
	if m := st.Models["lcpu"]; m.Backend != "litert/cpu" || m.Requested != "litert/cpu" || m.FallbackReason != "" {
		t.Errorf("lcpu status %+v, want backend litert/cpu", m)
	}
	g := st.Models["lgpu"]
	switch g.Backend {
	case "litert/gpu":
		t.Log("this machine has a Vulkan driver LiteRT accepts: lgpu runs on the GPU")
	case "tflite/cpu":
		if g.Requested != "litert/gpu" || g.FallbackReason == "" || !strings.Contains(log.String(), "accelerator unavailable") {
			t.Errorf("lgpu status %+v, log %q: want the fallback's reason in both", g, log.String())
		}
	default:
		t.Errorf("lgpu status %+v", g)
	}
	img, _ := os.ReadFile(testplugins.Model("peacock.png"))
	p, _ := e.Pipeline("p")
	if _, err := p.Pipeline.Run(context.Background(), strings.NewReader(string(img)), len(img), func([]byte, string) error { return nil }); err != nil {
		t.Fatalf("the pipeline on the LiteRT model: %v", err)
	}
	if !p.Pipeline.ZeroCopy() {
		t.Error("the pipeline on the LiteRT model is not zero-copy")
	}
	t.Logf("lcpu %s; lgpu %s (%s)", st.Models["lcpu"].Backend, g.Backend, g.FallbackReason)
}

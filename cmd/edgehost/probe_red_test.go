package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeMarkerPlanted: the markers of runtime.cache_dir/edgehost-model-probes say "these
// bytes passed a probe": a marker skips the probe process and the model is loaded in
// edgehost's own process. Whoever can write cache_dir (the compilation cache keeps its key
// outside it for that reason) could plant one for a model made to crash TFLite: the probe
// folder made by someone else (writable by others) or a symlink to a folder elsewhere. Such
// a folder is not trusted: the model is probed, and refused, instead of crashing edgehost.
func TestProbeMarkerPlanted(t *testing.T) {
	bin := buildBinary(t)
	root := repoRoot(t)
	bad := crashingModel(t)
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(b, "/1/true/<nil>"...)) // inspect's options: 1 thread, XNNPACK
	marker := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, probes string)
	}{
		{"folder writable by others", func(t *testing.T, probes string) {
			if err := os.MkdirAll(probes, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(probes, 0o777)
			if err := os.WriteFile(filepath.Join(probes, marker), nil, 0o666); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlinked folder", func(t *testing.T, probes string) {
			elsewhere := filepath.Join(t.TempDir(), "planted")
			os.MkdirAll(elsewhere, 0o700)
			if err := os.WriteFile(filepath.Join(elsewhere, marker), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Dir(probes), 0o755)
			if err := os.Symlink(elsewhere, probes); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cache := filepath.Join(dir, "cache")
			tc.plant(t, filepath.Join(cache, "edgehost-model-probes"))
			cfg := filepath.Join(dir, "config.toml")
			text := fmt.Sprintf(`[runtime]
cache_dir = %q
[models.face]
path = %q
[models.mobilenet]
path = %q
[pipelines.classify]
model = "mobilenet"
[pipelines.classify.pre]
path = %q
[pipelines.classify.post]
path = %q
`, cache, bad, filepath.Join(root, ".deps/models/mobilenet_quant_v1_224.tflite"),
				filepath.Join(root, "plugins/examples/imagepre-c/imagepre-c.wasm"), filepath.Join(root, "plugins/examples/classify-c/classify-c.wasm"))
			if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--config", cfg, "inspect").CombinedOutput()
			if strings.Contains(string(out), "SIGSEGV: segmentation violation") || !strings.Contains(string(out), "TFLite crashed (SIGSEGV) loading this model in a probe process") {
				t.Fatalf("a planted probe marker skipped the probe: edgehost loaded the crashing model itself (err %v):\n%s", err, lastLines(string(out), 8))
			}
		})
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

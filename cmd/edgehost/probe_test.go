package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/internal/testservers"
)

// crashingModel is face_detection with one byte changed (found by the red team's fuzzer): a
// DEQUANTIZE output's shape goes from [24,5,5,3] to [32792,5,5,3] while its buffer stays
// small, and XNNPACK's weight packing then reads past the buffer (SIGSEGV inside TFLite).
func crashingModel(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".deps/models/face_detection_short_range.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	const off = 215945
	if len(b) <= off || b[off] != 0 {
		t.Fatalf("face_detection_short_range.tflite is not the pinned file (byte %d)", off)
	}
	b[off] = 0x80
	p := filepath.Join(t.TempDir(), "crash.tflite")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCrashingModel: a model that crashes TFLite is rejected with an error naming the crash
// by inspect, and a server whose model file is replaced by it keeps serving the old one.
func TestCrashingModel(t *testing.T) {
	bin := buildBinary(t)
	bad := crashingModel(t)
	t.Run("inspect", func(t *testing.T) {
		out, err := exec.Command(bin, "inspect", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "TFLite crashed (SIGSEGV)") || !strings.Contains(string(out), "not loaded") {
			t.Fatalf("err %v, output:\n%s", err, out)
		}
	})
	t.Run("hot reload", func(t *testing.T) {
		dir := t.TempDir()
		model := filepath.Join(dir, "face.tflite")
		good, err := os.ReadFile(filepath.Join(repoRoot(t), ".deps/models/face_detection_short_range.tflite"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(model, good, 0o644); err != nil {
			t.Fatal(err)
		}
		addr := freePort(t)
		cfg := filepath.Join(dir, "config.toml")
		root := repoRoot(t)
		text := fmt.Sprintf(`[server]
address = %q
[runtime]
watch = true
[models.face]
path = %q
xnnpack = true
[models.mobilenet]
path = %q
[pipelines.classify]
model = "mobilenet"
[pipelines.classify.pre]
path = %q
[pipelines.classify.post]
path = %q
`, addr, model, filepath.Join(root, ".deps/models/mobilenet_quant_v1_224.tflite"),
			filepath.Join(root, "plugins/examples/imagepre-c/imagepre-c.wasm"), filepath.Join(root, "plugins/examples/classify-c/classify-c.wasm"))
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs testservers.LogBuffer
		srv := exec.Command(bin, "--config", cfg, "serve")
		srv.Stdout, srv.Stderr = &logs, &logs
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- srv.Wait() }()
		defer func() {
			_ = srv.Process.Kill()
			<-exited
		}()
		get := func(path string) (int, string) {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		deadline := time.Now().Add(60 * time.Second)
		for code, _ := get("/v2/health/ready"); code != http.StatusOK; code, _ = get("/v2/health/ready") {
			select {
			case err := <-exited:
				t.Fatalf("server exited before ready (%v):\n%s", err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("server not ready:\n%s", logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		b, _ := os.ReadFile(bad)
		if err := os.WriteFile(model+".tmp", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(model+".tmp", model); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(60 * time.Second)
		for {
			select {
			case err := <-exited:
				t.Fatalf("the server died when the model was replaced (%v):\n%s", err, logs.String())
			default:
			}
			if _, body := get("/status"); strings.Contains(body, "TFLite crashed") {
				break
			}
			if time.Now().After(deadline) {
				_, body := get("/status")
				t.Fatalf("the rejected model is not in /status: %s\n%s", body, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if code, body := get("/v2/models/face/ready"); code != http.StatusOK {
			t.Errorf("the old model stopped serving: %d %s", code, body)
		}
	})
}

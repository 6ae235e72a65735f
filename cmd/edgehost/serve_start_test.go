package main

import (
	"bytes"
	"errors"
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

// serveStartConfig writes a config with two classify pipelines, "first" and "second"
// (second's post plugin is secondPost; no labels: the peacock is class 85), and returns its path.
func serveStartConfig(t *testing.T, addr, secondPost string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	pre := filepath.Join(root, "plugins/examples/imagepre-c/imagepre-c.wasm")
	post := filepath.Join(root, "plugins/examples/classify-c/classify-c.wasm")
	text := fmt.Sprintf(`[server]
address = %q
[runtime]
watch = false
cache_dir = %q
[models.mobilenet]
path = %q
[pipelines.first]
model = "mobilenet"
[pipelines.first.pre]
path = %q
params = { mean = 127.5, std = 127.5 }
[pipelines.first.post]
path = %q
[pipelines.second]
model = "mobilenet"
[pipelines.second.pre]
path = %q
params = { mean = 127.5, std = 127.5 }
[pipelines.second.post]
path = %q
`, addr, filepath.Join(dir, "cache"), filepath.Join(root, ".deps/models/mobilenet_quant_v1_224.tflite"), pre, post, pre, secondPost)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestServeStart: serve listens while its pipelines are built. From the first moment, every
// answer to a pipeline request is the right result or a 503 of class "starting" (never a
// 404), /v2/health/ready turns 200 only once both pipelines answer, and a pipeline that
// fails to build makes serve exit with exitFailure and its error, as before.
func TestServeStart(t *testing.T) {
	bin := buildBinary(t)
	root := repoRoot(t)
	peacock, err := os.ReadFile(filepath.Join(root, ".deps/models/peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(addr, name string) (int, string) {
		resp, err := http.Post("http://"+addr+"/v1/pipelines/"+name, "image/png", bytes.NewReader(peacock))
		if err != nil {
			return 0, err.Error() // not listening yet
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("requests during start", func(t *testing.T) {
		addr := freePort(t)
		cfg := serveStartConfig(t, addr, filepath.Join(root, "plugins/examples/classify-c/classify-c.wasm"))
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
		deadline := time.Now().Add(90 * time.Second)
		var starting, answered int
		for {
			select {
			case err := <-exited:
				t.Fatalf("serve exited (%v):\n%s", err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready after 90 s (%d starting, %d answered):\n%s", starting, answered, logs.String())
			}
			for _, name := range []string{"first", "second"} {
				switch code, body := post(addr, name); {
				case code == 0:
				case code == http.StatusOK && strings.Contains(body, `{"index":85,`):
					answered++
				case code == http.StatusServiceUnavailable && strings.Contains(body, `"class":"starting"`) &&
					strings.Contains(body, fmt.Sprintf(`pipeline \"%s\" is starting`, name)):
					starting++
				default:
					t.Fatalf("pipeline %s during start: %d %s", name, code, body)
				}
			}
			resp, err := http.Get("http://" + addr + "/v2/health/ready")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("during start: %d answers, %d starting refusals", answered, starting)
		for _, name := range []string{"first", "second"} {
			if code, body := post(addr, name); code != http.StatusOK || !strings.Contains(body, `{"index":85,`) {
				t.Errorf("pipeline %s once ready: %d %s", name, code, body)
			}
		}
	})

	t.Run("a pipeline fails to build", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.wasm")
		if err := os.WriteFile(bad, []byte("not wasm at all"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := serveStartConfig(t, freePort(t), bad)
		cmd := exec.Command(bin, "--config", cfg, "serve")
		done := make(chan struct{})
		var out []byte
		var err error
		go func() {
			out, err = cmd.CombinedOutput()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("serve still running 90 s after a pipeline failed to build:\n%s", out)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure || !strings.Contains(string(out), "pipeline second") {
			t.Errorf("serve with a pipeline that fails to build: %v (want exit %d naming pipeline second):\n%s", err, exitFailure, out)
		}
	})
}

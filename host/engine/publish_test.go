package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/hashicorp/go-hclog"
)

// startConfig is two classify pipelines, "first" and "held", on one model; held's post
// plugin is postPath.
func startConfig(t *testing.T, postPath string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`
[runtime]
cache_dir = %q
watch = false
[models.mobilenet]
path = %q
[pipelines.first]
model = "mobilenet"
[pipelines.first.pre]
path = %q
params = { mean = 127.5, std = 127.5 }
[pipelines.first.post]
path = %q
[pipelines.held]
model = "mobilenet"
[pipelines.held.pre]
path = %q
params = { mean = 127.5, std = 127.5 }
[pipelines.held.post]
path = %q
`, filepath.Join(dir, "cache"), testplugins.Model("mobilenet_quant_v1_224.tflite"),
		testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"),
		testplugins.Example(t, "imagepre-c"), postPath)
	cp := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cp)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// waitPipeline waits until Start has published name (a minute at most: the machine may
// be busy; no figure is asserted).
func waitPipeline(t *testing.T, e *Engine, name string) *Pipeline {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if p, ok := e.Pipeline(name); ok {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline %s not served a minute after Start (start error: %v)", name, e.startErrIfDone())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *Engine) startErrIfDone() error {
	select {
	case <-e.started:
		return e.startErr
	default:
		return errors.New("still starting")
	}
}

// TestStartServesEachPipeline: Start serves a pipeline as soon as it is built while another
// is still building (held by buildGate): the first answers a request, the held one is
// Starting and not found, and WaitStarted has not returned; once released, both serve and
// nothing is Starting.
func TestStartServesEachPipeline(t *testing.T) {
	img, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := startConfig(t, testplugins.Example(t, "classify-c"))
	ctx := context.Background()
	gate := make(chan struct{})
	e, err := Start(ctx, cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}),
		Options{InterpreterFirst: true, buildGate: map[string]<-chan struct{}{"held": gate}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	p := waitPipeline(t, e, "first")
	var out []byte
	if _, err := p.Pipeline.Run(ctx, bytes.NewReader(img), len(img), func(b []byte, _ string) error {
		out = bytes.Clone(b)
		return nil
	}); err != nil || !strings.Contains(string(out), `{"index":85,`) {
		t.Errorf("request to the built pipeline while another builds: %v %s", err, out)
	}
	if _, ok := e.Pipeline("held"); ok || !e.Starting("held") {
		t.Errorf("held pipeline: found %v, starting %v; want not found and starting", ok, e.Starting("held"))
	}
	if e.Starting("first") || e.Starting("nosuch") {
		t.Error("Starting is true for a built or an unknown pipeline")
	}
	if err := e.startErrIfDone(); err == nil || err.Error() != "still starting" {
		t.Errorf("WaitStarted would return (%v) while a pipeline is held", err)
	}
	close(gate)
	if err := e.WaitStarted(); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Pipeline("held"); !ok || e.Starting("held") {
		t.Error("held pipeline not served after WaitStarted")
	}
}

// TestStartFails: a pipeline that fails to build (its post plugin is not a Wasm module)
// makes WaitStarted return its error even after another pipeline was served; Close then
// closes what was built, and NewWith returns the same error.
func TestStartFails(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("not wasm at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := startConfig(t, bad)
	ctx := context.Background()
	gate := make(chan struct{})
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard})
	e, err := Start(ctx, cfg, log, Options{InterpreterFirst: true, buildGate: map[string]<-chan struct{}{"held": gate}})
	if err != nil {
		t.Fatal(err)
	}
	waitPipeline(t, e, "first")
	close(gate)
	err = e.WaitStarted()
	if err == nil || !strings.Contains(err.Error(), "pipeline held") {
		t.Errorf("WaitStarted: %v, want pipeline held's error", err)
	}
	if e.Starting("held") {
		t.Error("held still Starting after a failed start")
	}
	e.Close(ctx)
	if _, err := NewWith(ctx, cfg, log, Options{}); err == nil || !strings.Contains(err.Error(), "pipeline held") {
		t.Errorf("NewWith: %v, want pipeline held's error", err)
	}
}

package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/mqtt"
	"github.com/edgehost/edgehost/host/stream"
	"github.com/edgehost/edgehost/internal/testcam"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// TestStreamSink: a 30 fps MJPEG camera (Go, loopback) feeds a pipeline whose stream
// publishes its results to a real mosquitto; a subscriber gets them as the SSE endpoint
// sends them: sequence number, capture time, latency and the post plugin's JSON.
func TestStreamSink(t *testing.T) {
	broker := testservers.Mosquitto(t)
	frames, err := testcam.Frames(testplugins.Model("peacock.png"), 30)
	if err != nil {
		t.Fatal(err)
	}
	cam, err := testcam.Start(frames, 30)
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Kill()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[models.mobilenet]
path = %q
threads = 1
[pipelines.cam]
model = "mobilenet"
workers = 1
[pipelines.cam.pre]
path = %q
[pipelines.cam.post]
path = %q
params = { top_k = 1 }
[pipelines.cam.stream]
url = %q
mqtt_broker = "mqtt://%s"
mqtt_topic = "cameras/door/results"
`, testplugins.Model("mobilenet_quant_v1_224.tflite"), testplugins.Example(t, "imagepre-c"),
		testplugins.Example(t, "classify-c"), cam.URL(), broker.Addr)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard})
	e, err := engine.New(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	sub := newClient(t, broker.Addr, "stream-sub", "cameras/door/results")
	sink := mqtt.StartStreamSink(e, prometheus.NewRegistry(), log)
	defer sink.Close(context.Background())
	e.StartStreams(nil)
	waitFor(t, "10 stream results on cameras/door/results", time.Minute, func() bool { return len(sub.received()) >= 10 })
	var last uint64
	for i, p := range sub.received()[:10] {
		var ev stream.Event
		if err := json.Unmarshal(p.Payload, &ev); err != nil {
			t.Fatalf("message %d: %v: %s", i, err, p.Payload)
		}
		if ev.Stream != "cam" || ev.Seq <= last || ev.Captured.IsZero() || ev.LatencyMS <= 0 || !strings.Contains(string(ev.Result), `"top"`) {
			t.Fatalf("message %d: %+v", i, ev)
		}
		last = ev.Seq
	}
}

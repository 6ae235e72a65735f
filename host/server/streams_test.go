package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/host/stream"
	"github.com/edgehost/edgehost/internal/testcam"
	"github.com/hashicorp/go-hclog"
)

// TestStreamEvents: GET /v1/streams/NAME/events serves a camera stream's results as
// server-sent events behind the same tokens as every route (infer scope: 401 without a
// token, 403 with observe only); unknown streams are 404; a client that stops reading does
// not hold the stream up (another client keeps getting events); and a shutdown ends the
// event streams instead of waiting for them.
func TestStreamEvents(t *testing.T) {
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
	inf, obs := "tok-infer-0123456789abcdef", "tok-observe-0123456789abcdef"
	cfgText := fmt.Sprintf(`
[server]
shutdown_timeout = "20s"
[[server.tokens]]
file = %q
scopes = ["infer"]
[[server.tokens]]
file = %q
scopes = ["observe"]
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
`, writeToken(t, dir, "inf", inf), writeToken(t, dir, "obs", obs), testplugins.Model("mobilenet_quant_v1_224.tflite"),
		testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"), cam.URL())
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte(cfgText), 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	e.StartStreams(stream.NewMetrics(nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(e, cfg.Server, hclog.NewNullLogger())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	url := "http://" + l.Addr().String() + "/v1/streams/cam/events"

	for _, tc := range []struct {
		token, path string
		want        int
	}{{"", url, 401}, {obs, url, 403}, {inf, strings.Replace(url, "/cam/", "/nope/", 1), 404}} {
		if code, _, b := request(t, http.DefaultClient, "GET", tc.path, tc.token, nil); code != tc.want {
			t.Errorf("GET %s with %q: %d %s, want %d", tc.path, tc.token, code, b, tc.want)
		}
	}

	// A client that never reads its events.
	stuck, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /v1/streams/cam/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", inf)

	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+inf)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id, kind string
	var last uint64
	for n := 0; n < 60 && sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			var ev stream.Event
			if err := json.Unmarshal([]byte(line[6:]), &ev); err != nil {
				t.Fatalf("data %q: %v", line, err)
			}
			if kind != "result" || id != fmt.Sprint(ev.Seq) || ev.Seq <= last || ev.Captured.IsZero() || !strings.Contains(string(ev.Result), `"top"`) {
				t.Fatalf("event %s/%s: %+v", id, kind, ev)
			}
			last = ev.Seq
			n++
		}
	}
	if last == 0 {
		t.Fatalf("no events: %v", sc.Err())
	}
	t.Logf("60 events, the last seq %d, beside a client that reads nothing", last)
	// Shutdown: the event streams end, Serve returns well before shutdown_timeout.
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return within 15 s of the shutdown: the event streams held it")
	}
	t.Logf("shutdown took %v", time.Since(t0).Round(time.Millisecond))
}

package config_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
)

// TestStreamConfig: [pipelines.NAME.stream] gets its defaults (decoder by scheme, frame
// size and format, backoff, read timeout, part bound), a relative file path is made
// absolute, and each bad key is reported with its path and a reason.
func TestStreamConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "clip.mp4"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := `[models.m]
path = "m.tflite"
[pipelines.p]
model = "m"
[pipelines.p.pre]
path = "pre.wasm"
[pipelines.p.post]
path = "post.wasm"
[pipelines.p.stream]
`
	path := filepath.Join(dir, "edgehost.toml")
	parse := func(table string) (*config.Stream, error) {
		c, err := config.Parse(path, []byte(base+table))
		if err != nil {
			return nil, err
		}
		return c.Pipelines["p"].Stream, nil
	}
	s, err := parse(`url = "http://cam.local/stream"`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Decoder != "mjpeg" || s.Width != 640 || s.Height != 480 || s.PixelFormat != "rgb24" || s.FFmpeg != "ffmpeg" ||
		s.ReconnectMin.Duration != 100*time.Millisecond || s.ReconnectMax.Duration != time.Second ||
		s.ReadTimeout.Duration != 5*time.Second || s.MaxFrameBytes != 8<<20 || !*s.Realtime || s.Inflight != min(2, runtime.NumCPU()) || s.RTSPTransport != "tcp" {
		t.Errorf("defaults: %+v", s)
	}
	if s, err = parse("url = \"http://cam.local/stream\"\ninflight = 1"); err != nil || s.Inflight != 1 {
		t.Errorf("explicit inflight = 1 (strict, one frame at a time) must stay 1: %+v %v", s, err)
	}
	s, err = parse("url = \"clip.mp4\"\nloop = true\nffmpeg = \"bin/ffmpeg\"")
	if err != nil {
		t.Fatal(err)
	}
	if s.Decoder != "ffmpeg" || s.URL != filepath.Join(dir, "clip.mp4") || s.FFmpeg != filepath.Join(dir, "bin/ffmpeg") {
		t.Errorf("file: %+v", s)
	}
	if s, err = parse(`url = "rtsp://cam.local:554/live"`); err != nil || s.Decoder != "ffmpeg" {
		t.Errorf("rtsp: %+v %v", s, err)
	}
	for _, c := range []struct{ table, key, msg string }{
		{``, "pipelines.p.stream.url", "is required"},
		{`url = "ftp://cam/x"`, "pipelines.p.stream.url", "scheme"},
		{`url = "nope.mp4"`, "pipelines.p.stream.url", "no such file"},
		{"url = \"rtsp://cam/x\"\ndecoder = \"mjpeg\"", "pipelines.p.stream.decoder", "need \"ffmpeg\""},
		{"url = \"http://cam/x\"\ndecoder = \"vlc\"", "pipelines.p.stream.decoder", "must be"},
		{"url = \"http://cam/x\"\nfps = -1", "pipelines.p.stream.fps", "between"},
		{"url = \"rtsp://cam/x\"\nwidth = 9000", "pipelines.p.stream.width", "within"},
		{"url = \"rtsp://cam/x\"\npixel_format = \"yuv420p\"", "pipelines.p.stream.pixel_format", "must be"},
		{"url = \"rtsp://cam/x\"\nreconnect_min = \"2s\"\nreconnect_max = \"1s\"", "pipelines.p.stream.reconnect_max", "below"},
		{"url = \"http://cam/x\"\nmax_frame_bytes = 100", "pipelines.p.stream.max_frame_bytes", "between"},
		{"url = \"rtsp://cam/x\"\nwidth = 4000\nheight = 4000", "pipelines.p.stream.width", "max_body_bytes"},
		{"url = \"http://cam/x\"\nmqtt_topic = \"a/b\"", "pipelines.p.stream.mqtt_topic", "go together"},
		{"url = \"http://cam/x\"\ninflight = 3", "pipelines.p.stream.inflight", "workers (2)"},
		{"url = \"rtsp://cam/x\"\nrtsp_transport = \"http\"", "pipelines.p.stream.rtsp_transport", "must be"},
		{"url = \"http://cam/x\"\nmqtt_broker = \"mqtt://b:1883\"\nmqtt_topic = \"a/#\"", "pipelines.p.stream.mqtt_topic", "wildcard"},
		{"url = \"http://cam/x\"\nmqtt_broker = \"http://b\"\nmqtt_topic = \"a/b\"", "pipelines.p.stream.mqtt_broker", "mqtt://"},
	} {
		_, err := parse(c.table)
		found := false
		for _, e := range configErrors(t, err) {
			if e.Key == c.key && strings.Contains(e.Msg, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: errors %v, want %s: …%s…", c.table, err, c.key, c.msg)
		}
	}
}

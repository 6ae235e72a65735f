package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/stream"
	"github.com/edgehost/edgehost/internal/testcam"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
)

// streamConfig is a config with pipeline "cam" fed by the stream table camTable (after
// [pipelines.cam.stream]) and pipeline "other" without a stream, both mobilenet, imagepre-c
// (or pre) and classify-c with the labels. extra is appended.
func streamConfig(t testing.TB, dir, pre, camTable, extra string) string {
	t.Helper()
	labels := testplugins.Model("mobilenet_labels.txt")
	cfg := fmt.Sprintf(`
[runtime]
cache_dir = %[1]q
watch = false
[models.mobilenet]
path = %[2]q
threads = 1
[pipelines.cam]
model = "mobilenet"
workers = 1
[pipelines.cam.pre]
path = %[3]q
[pipelines.cam.post]
path = %[4]q
params = { top_k = 1 }
params_files = { labels = %[5]q }
[pipelines.cam.stream]
%[6]s
[pipelines.other]
model = "mobilenet"
workers = 1
[pipelines.other.pre]
path = %[7]q
[pipelines.other.post]
path = %[4]q
params = { top_k = 1 }
params_files = { labels = %[5]q }
%[8]s`, filepath.Join(dir, "cache"), testplugins.Model("mobilenet_quant_v1_224.tflite"), pre,
		testplugins.Example(t, "classify-c"), labels, camTable, testplugins.Example(t, "imagepre-c"), extra)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startStreams(t testing.TB, cfgPath string) *engine.Engine {
	t.Helper()
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(context.Background(), c, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	e.StartStreams(stream.NewMetrics(nil))
	return e
}

func camera(t testing.TB, fps float64) *testcam.Cam {
	t.Helper()
	frames, err := testcam.Frames(testplugins.Model("peacock.png"), 30)
	if err != nil {
		t.Fatal(err)
	}
	c, err := testcam.Start(frames, fps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

// next waits for the next event of sub (failing the test after d).
func next(t testing.TB, sub *stream.Sub, d time.Duration) stream.Event {
	t.Helper()
	select {
	case ev := <-sub.C:
		return ev
	case <-time.After(d):
		t.Fatalf("no stream event within %v", d)
	}
	return stream.Event{}
}

// runOther runs peacock.png through pipeline "other": the pipelines beside a stream serve.
func runOther(t testing.TB, e *engine.Engine) {
	t.Helper()
	p, _ := e.Pipeline("other")
	img, _ := os.ReadFile(testplugins.Model("peacock.png"))
	var out []byte
	if _, err := p.Pipeline.Run(context.Background(), bytes.NewReader(img), len(img), func(b []byte, _ string) error {
		out = append(out, b...)
		return nil
	}); err != nil || !bytes.Contains(out, []byte("peacock")) {
		t.Fatalf("pipeline other: %v %s", err, out)
	}
}

// TestStreamMJPEG: a 30 fps MJPEG camera on loopback feeds pipeline cam; every frame gets a
// classification, most of them the peacock (a black bar moves over it), sequence numbers rise, capture→result latency is there, and /status counts add up
// (every frame received is processed, failed, dropped or still in hand).
func TestStreamMJPEG(t *testing.T) {
	dir := t.TempDir()
	cam := camera(t, 30)
	e := startStreams(t, streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), fmt.Sprintf("url = %q", cam.URL()), ""))
	sub := e.StreamHub().Subscribe("cam", 64)
	defer sub.Close()
	var last uint64
	var lat []float64
	peacocks := 0
	for i := 0; i < 20; i++ {
		ev := next(t, sub, 10*time.Second)
		if ev.Error != "" || !bytes.Contains(ev.Result, []byte(`"top":[{"index"`)) {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if bytes.Contains(ev.Result, []byte("peacock")) {
			peacocks++
		}
		if ev.Seq <= last || ev.LatencyMS <= 0 || ev.Captured.IsZero() {
			t.Fatalf("event %d: seq %d after %d, latency %v ms", i, ev.Seq, last, ev.LatencyMS)
		}
		last = ev.Seq
		lat = append(lat, ev.LatencyMS)
	}
	if peacocks < 15 {
		t.Errorf("%d of 20 frames classified as the peacock", peacocks)
	}
	sort.Float64s(lat)
	st := e.Status().Streams["cam"]
	if !st.Connected || st.Processed < 20 || st.Received < st.Processed+st.Dropped || st.Received > st.Processed+st.Dropped+st.Failed+3 {
		t.Errorf("status %+v", st)
	}
	t.Logf("latency p50 %.1f ms, max %.1f ms; received %d processed %d dropped %d", lat[len(lat)/2], lat[len(lat)-1], st.Received, st.Processed, st.Dropped)
	runOther(t, e)
}

// TestStreamInflight: with inflight = 2 (and 2 workers) two frames run at once; every
// frame's result comes, none twice, in frame order (sequence numbers rise).
func TestStreamInflight(t *testing.T) {
	dir := t.TempDir()
	cam := camera(t, 30)
	cfgPath := streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), fmt.Sprintf("url = %q\ninflight = 2", cam.URL()), "")
	cfg := string(mustRead(t, cfgPath))
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, "workers = 1", "workers = 2", 1)), 0o644)
	e := startStreams(t, cfgPath)
	sub := e.StreamHub().Subscribe("cam", 64)
	defer sub.Close()
	var last uint64
	for i := 0; i < 30; i++ {
		ev := next(t, sub, 10*time.Second)
		if ev.Error != "" || ev.Seq <= last {
			t.Fatalf("event %d: %+v after frame %d", i, ev, last)
		}
		last = ev.Seq
	}
	st := e.Status().Streams["cam"]
	t.Logf("received %d processed %d dropped %d (late %d)", st.Received, st.Processed, st.Dropped, st.DroppedLate)
	// inflight over the workers is a config error.
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	if _, err := config.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "inflight") {
		t.Errorf("inflight 2 with 1 worker: %v", err)
	}
}

// TestStreamCameraRestart: the camera is killed and started again (3 times here; `make
// stream-accept` does 10): the stream resumes within 2 s of the camera's return each time,
// the other pipeline serves throughout, and reconnects are counted.
func TestStreamCameraRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race run): runs in the full run (5 s)")
	}
	n := 3
	if os.Getenv("EDGEHOST_STREAM_RESTARTS") != "" {
		fmt.Sscan(os.Getenv("EDGEHOST_STREAM_RESTARTS"), &n)
	}
	dir := t.TempDir()
	cam := camera(t, 30)
	e := startStreams(t, streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), fmt.Sprintf("url = %q\nread_timeout = \"2s\"", cam.URL()), ""))
	sub := e.StreamHub().Subscribe("cam", 64)
	defer sub.Close()
	next(t, sub, 10*time.Second)
	var worst time.Duration
	for i := 0; i < n; i++ {
		cam.Kill()
		time.Sleep(300 * time.Millisecond)
		runOther(t, e)                     // the process and the other pipelines go on
		time.Sleep(700 * time.Millisecond) // the backoff grows meanwhile
		for len(sub.C) > 0 {
			<-sub.C
		}
		back := time.Now()
		if err := cam.Restart(); err != nil {
			t.Fatal(err)
		}
		for {
			ev := next(t, sub, 5*time.Second)
			if ev.Captured.After(back) {
				took := ev.Captured.Sub(back)
				worst = max(worst, took)
				if took > 2*time.Second {
					t.Errorf("restart %d: first frame %v after the camera came back", i+1, took)
				}
				break
			}
		}
	}
	st := e.Status().Streams["cam"]
	if st.Reconnects < int64(n) {
		t.Errorf("reconnects %d, want ≥ %d", st.Reconnects, n)
	}
	t.Logf("%d restarts: worst resume %v after the camera's return; reconnects %d", n, worst.Round(time.Millisecond), st.Reconnects)
}

// TestStreamHotSwap: during a 30 fps stream, the pre plugin is swapped (a config change that
// gives it new params: a new version of the pipeline) and then the model (the config points
// at another copy of it):
// the stream never stops, and no gap between two results is longer than 2 frames plus the
// time a frame normally takes.
func TestStreamHotSwap(t *testing.T) {
	dir := t.TempDir()
	cam := camera(t, 30)
	modelCopy := filepath.Join(dir, "model.tflite")
	if err := os.WriteFile(modelCopy, mustRead(t, testplugins.Model("mobilenet_quant_v1_224.tflite")), 0o644); err != nil {
		t.Fatal(err)
	}
	modelCopy2 := filepath.Join(dir, "model2.tflite")
	if err := os.WriteFile(modelCopy2, mustRead(t, testplugins.Model("mobilenet_quant_v1_224.tflite")), 0o644); err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("url = %q", cam.URL())
	cfgPath := streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), table, "")
	orig := mustRead(t, cfgPath)
	cfg := strings.Replace(string(orig), testplugins.Model("mobilenet_quant_v1_224.tflite"), modelCopy, 1)
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	e := startStreams(t, cfgPath)
	s0, _ := e.Stream("cam")
	sub := e.StreamHub().Subscribe("cam", 256)
	defer sub.Close()
	// Settle, and measure the normal gap between results.
	var done []time.Time
	for i := 0; i < 30; i++ {
		done = append(done, next(t, sub, 10*time.Second).Done)
	}
	normal := maxGap(done)
	frame := time.Second / 30
	ctx := context.Background()
	// Timing on a shared machine is noisy: the bound must hold in one of three attempts (each
	// swaps the pre plugin and the model); every attempt is logged.
	var best time.Duration
	for attempt := 1; attempt <= 3; attempt++ {
		p, _ := e.Pipeline("cam")
		preBefore, modelBefore := p.Pre, p.Pipeline.Spec().Model
		swapped := make(chan time.Duration, 1)
		go func() {
			t0 := time.Now()
			// 1. the pre plugin: new params make a new version of the pipeline.
			params := fmt.Sprintf("[pipelines.cam.pre]\nparams = { max_pixels = %d }\n", 40000000+attempt)
			next := strings.Replace(cfg, "[pipelines.cam.pre]\n", params, 1)
			os.WriteFile(cfgPath, []byte(next), 0o644)
			e.ReloadFile(ctx, cfgPath)
			// 2. the model: another file (a copy; the engine loads a file whose bytes did
			// not change only when its path does), so both pipelines move to a new model.
			model := modelCopy
			if attempt%2 == 1 {
				model = modelCopy2
			}
			next = strings.Replace(next, modelCopy, model, 1)
			os.WriteFile(cfgPath, []byte(next), 0o644)
			e.ReloadFile(ctx, cfgPath)
			swapped <- time.Since(t0)
		}()
		for len(sub.C) > 0 {
			<-sub.C
		}
		done = []time.Time{next(t, sub, 10*time.Second).Done}
		var took time.Duration
		for took == 0 {
			select {
			case took = <-swapped:
			default:
			}
			ev := next(t, sub, 10*time.Second)
			if ev.Error != "" {
				t.Fatalf("a frame failed during the swap: %s", ev.Error)
			}
			done = append(done, ev.Done)
		}
		for i := 0; i < 10; i++ {
			done = append(done, next(t, sub, 10*time.Second).Done)
		}
		p, _ = e.Pipeline("cam")
		if p.Pre == preBefore || p.Pipeline.Spec().Model == modelBefore || e.Status().Config.LastError != "" || e.Status().Models["mobilenet"].LastError != "" {
			t.Fatalf("not swapped: pre %v (was %v), status %+v", p.Pre.Hash, preBefore.Hash, e.Status())
		}
		if s1, _ := e.Stream("cam"); s1 != s0 {
			t.Fatal("the stream was restarted by a plugin or model swap")
		}
		gap := maxGap(done)
		t.Logf("attempt %d: swaps took %v; longest gap between results %v during them, %v before (a frame: %v)", attempt, took.Round(time.Millisecond), gap.Round(time.Millisecond), normal.Round(time.Millisecond), frame)
		if best == 0 || gap < best {
			best = gap
		}
		if gap <= normal+2*frame || raceEnabled { // the race detector: the swap, not its timing
			return
		}
	}
	t.Errorf("the shortest of 3 longest gaps between results during a swap was %v, over 2 frames (%v) beyond the normal %v", best, 2*frame, normal)
}

func maxGap(ts []time.Time) time.Duration {
	var g time.Duration
	for i := 1; i < len(ts); i++ {
		g = max(g, ts[i].Sub(ts[i-1]))
	}
	return g
}

// TestStreamConfigChange: changing one stream's table restarts that stream only; the other
// stream, and both pipelines' versions, run on.
func TestStreamConfigChange(t *testing.T) {
	dir := t.TempDir()
	cam := camera(t, 30)
	extra := fmt.Sprintf("[pipelines.other.stream]\nurl = %q\n", cam.URL())
	cfgPath := streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), fmt.Sprintf("url = %q", cam.URL()), extra)
	e := startStreams(t, cfgPath)
	camS, _ := e.Stream("cam")
	otherS, _ := e.Stream("other")
	camP, _ := e.Pipeline("cam")
	otherP, _ := e.Pipeline("other")
	cfg := string(mustRead(t, cfgPath))
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, extra, extra+"fps = 5\n", 1)), 0o644)
	e.ReloadFile(context.Background(), cfgPath)
	if err := e.Status().Config.LastError; err != "" {
		t.Fatal(err)
	}
	camS2, _ := e.Stream("cam")
	otherS2, _ := e.Stream("other")
	camP2, _ := e.Pipeline("cam")
	otherP2, _ := e.Pipeline("other")
	if camS2 != camS || otherS2 == otherS || otherS2.Config().FPS != 5 {
		t.Errorf("streams: cam kept %v (want true), other kept %v (want false), other fps %v", camS2 == camS, otherS2 == otherS, otherS2.Config().FPS)
	}
	if camP2.Pre != camP.Pre || otherP2.Pre != otherP.Pre || otherP2.Pipeline.Spec().Pre != otherP.Pipeline.Spec().Pre {
		t.Error("a stream change rebuilt a pipeline")
	}
	sub := e.StreamHub().Subscribe("other", 16)
	defer sub.Close()
	if ev := next(t, sub, 10*time.Second); ev.Error != "" {
		t.Fatal(ev.Error)
	}
	// Removing the table stops the stream.
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, extra, "", 1)), 0o644)
	e.ReloadFile(context.Background(), cfgPath)
	if _, ok := e.Stream("other"); ok {
		t.Error("stream other still runs without its table")
	}
}

// ffmpegBin is the static ffmpeg `make deps-ffmpeg` fetches.
func ffmpegBin(t testing.TB) string {
	p := filepath.Join(testplugins.Root, ".deps/ffmpeg/ffmpeg")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no ffmpeg (%v): run make deps-ffmpeg", err)
	}
	return p
}

// h264 makes a 2 s 320x240 30 fps H.264 file (ffmpeg's testsrc2 pattern, libx264, one thread:
// the same bytes every run).
func h264(t testing.TB, ff, dir string) string {
	out := filepath.Join(dir, "clip.mp4")
	cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-t", "2", "-c:v", "libx264", "-threads", "1", "-pix_fmt", "yuv420p", "-g", "30", "-y", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making the H.264 file: %v %s", err, b)
	}
	return out
}

// TestStreamFFmpeg: a generated H.264 file, decoded by the ffmpeg child process into raw
// rgb24 frames at 224x224, runs through imagepre-c (ABI 1.3 raw frames); removing the
// stream kills ffmpeg (its pid is gone); a pre plugin that does not declare raw frames
// (imagepre-c as built for ABI 1.2) is refused for such a stream at start, saying why.
func TestStreamFFmpeg(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race run): runs in the full run (7 s; ffmpeg is another process)")
	}
	ff := ffmpegBin(t)
	dir := t.TempDir()
	clip := h264(t, ff, dir)
	table := fmt.Sprintf("url = %q\nffmpeg = %q\nwidth = 224\nheight = 224\nfps = 15\nloop = true", clip, ff)
	cfgPath := streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), table, "")
	e := startStreams(t, cfgPath)
	sub := e.StreamHub().Subscribe("cam", 64)
	defer sub.Close()
	for i := 0; i < 10; i++ {
		ev := next(t, sub, 15*time.Second)
		if ev.Error != "" || !bytes.Contains(ev.Result, []byte(`"top"`)) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	st := e.Status().Streams["cam"]
	pid := st.FFmpegPID
	if pid == 0 || !st.Connected {
		t.Fatalf("status %+v", st)
	}
	cfg := string(mustRead(t, cfgPath))
	// A reload to a pre plugin without raw frames is refused; the stream runs on, on the
	// version that serves.
	legacy := testplugins.WithoutFrames(t, "imagepre-c")
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, "[pipelines.cam.pre]\npath = "+fmt.Sprintf("%q", testplugins.Example(t, "imagepre-c")),
		"[pipelines.cam.pre]\npath = "+fmt.Sprintf("%q", legacy), 1)), 0o644)
	e.ReloadFile(context.Background(), cfgPath)
	if ps := e.Status().Pipelines["cam"]; !strings.Contains(ps.LastError, "does not take raw rgb24 frames") || ps.PreName != "imagepre-c@1.3.0" {
		t.Fatalf("reload to a 1.2 pre plugin: %+v", ps)
	}
	for len(sub.C) > 0 {
		<-sub.C
	}
	if ev := next(t, sub, 15*time.Second); ev.Error != "" {
		t.Fatalf("after the refused reload: %s", ev.Error)
	}
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, "[pipelines.cam.stream]\n"+table, "", 1)), 0o644)
	e.ReloadFile(context.Background(), cfgPath)
	if _, ok := e.Stream("cam"); ok {
		t.Fatal("stream still runs")
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ffmpeg (pid %d) still there after the stream stopped: %v", pid, err)
	}
	// ABI 1.2 pre plugin (imagepre-c without "frames"), raw frames: refused at start.
	dir2 := t.TempDir()
	c, err := config.Load(streamConfig(t, dir2, testplugins.WithoutFrames(t, "imagepre-c"), table, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.New(context.Background(), c, nil)
	if err == nil || !strings.Contains(err.Error(), "does not take raw rgb24 frames") {
		t.Fatalf("imagepre-c 1.2 for an ffmpeg stream: %v", err)
	}
}

// TestStreamRTSP: a real RTSP server (npm rtsp-streaming-server 2.1.0, make deps-rtsp) gets a
// generated H.264 clip published by ffmpeg, and the stream reads it as a camera would
// (rtsp://, RTP over UDP: this server has no TCP interleaving), through edgehost's ffmpeg
// child into raw frames for imagepre-c.
func TestStreamRTSP(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race run): runs in the full run")
	}
	ff := ffmpegBin(t)
	srvDir := filepath.Join(testplugins.Root, ".deps/rtsp")
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(filepath.Join(srvDir, ".ok")); serr != nil || err != nil {
		t.Skipf("no RTSP server (make deps-rtsp; node: %v)", err)
	}
	dir := t.TempDir()
	clip := h264(t, ff, dir)
	port := func() int {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	pub, cli := port(), port()
	rtp := 30000 + (os.Getpid()%200)*100 // a UDP range of its own per test process
	srv := exec.Command(node, filepath.Join(srvDir, "server.js"), fmt.Sprint(pub), fmt.Sprint(cli), fmt.Sprint(rtp))
	srv.Dir = srvDir
	var srvOut testservers.LogBuffer // written by exec's copying goroutine
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for i := 0; !strings.Contains(srvOut.String(), "ready"); i++ {
		if i > 300 {
			t.Fatalf("RTSP server did not start: %s", srvOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	publisher := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clip,
		"-c:v", "copy", "-f", "rtsp", fmt.Sprintf("rtsp://127.0.0.1:%d/cam", pub))
	if err := publisher.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { publisher.Process.Kill(); publisher.Wait() }()
	time.Sleep(500 * time.Millisecond) // the ANNOUNCE before the first client
	table := fmt.Sprintf("url = \"rtsp://127.0.0.1:%d/cam\"\nffmpeg = %q\nrtsp_transport = \"udp\"\nwidth = 224\nheight = 224", cli, ff)
	e := startStreams(t, streamConfig(t, dir, testplugins.Example(t, "imagepre-c"), table, ""))
	sub := e.StreamHub().Subscribe("cam", 64)
	defer sub.Close()
	for i := 0; i < 10; i++ {
		ev := next(t, sub, 20*time.Second)
		if ev.Error != "" || !bytes.Contains(ev.Result, []byte(`"top"`)) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	st := e.Status().Streams["cam"]
	t.Logf("rtsp: received %d processed %d dropped %d reconnects %d", st.Received, st.Processed, st.Dropped, st.Reconnects)
}

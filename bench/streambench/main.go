// Command streambench is `make bench-stream`: a camera stream into the detect pipeline,
// edgehost against the Python loop a user would write (bench/stream_loop.py: MJPEG grabber
// keeping the newest frame, Pillow, LiteRT, paho-mqtt), interleaved, one at a time, on the
// same 30 fps Go MJPEG camera (internal/testcam, 640-pixel frames of ssd_example.jpg) and
// the same mosquitto. For each it measures processed and dropped frames per second,
// capture→result latency p50/p99 and CPU per processed frame, at 30 fps, at 5 fps (the
// single-frame time: nothing waits) and with a camera faster than the pipeline (its
// saturated throughput). It prints one markdown table.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/internal/testcam"
)

var (
	root    = flag.String("root", ".", "repository root")
	python  = flag.String("python", ".deps/stream-bench-venv/bin/python", "the venv's python")
	seconds = flag.Float64("seconds", 15, "measured seconds per run")
	warmup  = flag.Float64("warmup", 4, "seconds before measuring")
	rounds  = flag.Int("rounds", 2, "interleaved rounds")
	out     = flag.String("out", "", "also write the table here")
	rss     = flag.Duration("rss", 0, "instead of the comparison: run a 30 fps stream into edgehost's detect this long and report its RSS every 30 s (flat: within ±10% of the first sample after 60 s)")
	rates   = flag.String("fps", "30,5,200", "camera frame rates")
	threads = flag.Int("threads", 1, "TFLite threads, both sides (the shipped config's ssd: 1)")
	whos    = flag.String("who", "edgehost,edgehost-ffmpeg,python", "what to run: edgehost (MJPEG parts to imagepre-c; 2 workers as the shipped detect, inflight left to its default: the workers, at most the cores), edgehost-1 (the same with inflight = 1: one frame at a time, the default before 2026-12-07), edgehost-ffmpeg (decoder = \"ffmpeg\": raw 300x300 frames; ffmpeg's CPU counted), edgehost-alt (edgehost with the pre plugin -pre-alt: another build, as a baseline in the same run), python")
	preAlt  = flag.String("pre-alt", "", "the pre plugin edgehost-alt runs (say, imagepre-c.wasm built from an older commit)")
)

type result struct {
	Received, Processed, Dropped float64 // per second
	Late                         float64 // per second, of Dropped: overtaken by a newer frame's result
	P50, P99                     float64 // ms
	CPUms                        float64 // CPU ms per processed frame
}

func main() {
	flag.Parse()
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "streambench:", err)
			os.Exit(1)
		}
	}
	abs, err := filepath.Abs(*root)
	must(err)
	*root = abs
	broker, stop, err := mosquitto()
	must(err)
	defer stop()
	frames, err := testcam.FramesSized(filepath.Join(*root, ".deps/models/ssd_example.jpg"), 640, 30)
	must(err)
	if *rss > 0 {
		must(rssRun(frames, broker, *rss))
		return
	}
	all := map[string][]result{}
	var order []string
	for r := 0; r < *rounds; r++ {
		for _, f := range strings.Split(*rates, ",") {
			fps, _ := strconv.ParseFloat(f, 64)
			cam, err := testcam.Start(frames, fps)
			must(err)
			for _, who := range strings.Split(*whos, ",") {
				key := fmt.Sprintf("%s@%s", who, f)
				if r == 0 {
					order = append(order, key)
				}
				var res result
				if strings.HasPrefix(who, "edgehost") {
					res, err = runEdgehost(cam.URL(), broker, who)
				} else {
					res, err = runPython(cam.URL(), broker)
				}
				must(err)
				fmt.Fprintf(os.Stderr, "round %d %s: %+v\n", r+1, key, res)
				all[key] = append(all[key], res)
			}
			cam.Kill()
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Camera stream into detect (ssd_detect.tflite, %d thread), 640x427 MJPEG frames from a Go camera on loopback, results to mosquitto; %d interleaved rounds of %gs (after %gs warm-up), medians of rounds. CPU: process CPU time (user+system) per processed frame.\n\n", *threads, *rounds, *seconds, *warmup)
	b.WriteString("| camera | who | received fps | processed fps | dropped fps | of which late | latency p50 ms | p99 ms | CPU ms/frame |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range order {
		m := median(all[k])
		who, f, _ := strings.Cut(k, "@")
		fmt.Fprintf(&b, "| %s fps | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", f, who, m.Received, m.Processed, m.Dropped, m.Late, m.P50, m.P99, m.CPUms)
	}
	b.WriteString("\n| camera | ratio | processed fps | latency p50 | p99 | CPU per frame |\n|---|---|---|---|---|---|\n")
	for _, f := range strings.Split(*rates, ",") {
		for _, w := range []string{"edgehost", "edgehost-1", "edgehost-alt", "edgehost-ffmpeg"} {
			if len(all[w+"@"+f]) == 0 || len(all["python@"+f]) == 0 {
				continue
			}
			e, p := median(all[w+"@"+f]), median(all["python@"+f])
			fmt.Fprintf(&b, "| %s fps | %s / python | %.2f | %.2f | %.2f | %.2f |\n", f, w, e.Processed/p.Processed, e.P50/p.P50, e.P99/p.P99, e.CPUms/p.CPUms)
		}
	}
	fmt.Print(b.String())
	if *out != "" {
		must(os.MkdirAll(filepath.Dir(*out), 0o755))
		must(os.WriteFile(*out, []byte(b.String()), 0o644))
	}
}

func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return result{Received: pick(func(r result) float64 { return r.Received }), Processed: pick(func(r result) float64 { return r.Processed }),
		Dropped: pick(func(r result) float64 { return r.Dropped }), P50: pick(func(r result) float64 { return r.P50 }),
		P99: pick(func(r result) float64 { return r.P99 }), CPUms: pick(func(r result) float64 { return r.CPUms }),
		Late: pick(func(r result) float64 { return r.Late })}
}

func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mosquitto() (string, func(), error) {
	dir, _ := os.MkdirTemp("", "streambench")
	port := freePort()
	me := "root"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(cf, []byte(fmt.Sprintf("user %s\nlistener %d 127.0.0.1\nallow_anonymous true\nlog_dest none\n", me, port)), 0o644)
	cmd := exec.Command(filepath.Join(*root, ".deps/mosquitto/usr/sbin/mosquitto"), "-c", cf)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(*root, ".deps/mosquitto/usr/lib/x86_64-linux-gnu"))
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("mosquitto (make brokers): %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 300 {
			cmd.Process.Kill()
			return "", nil, fmt.Errorf("mosquitto did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }, nil
}

// cpuTime is the user+system CPU time of pid so far.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

type streamStatus struct {
	Received, Processed, Dropped int64
	DroppedFPS                   int64 `json:"dropped_fps"`
	DroppedLate                  int64 `json:"dropped_late"`
	FFmpegPID                    int   `json:"ffmpeg_pid"`
}

func status(base string) (streamStatus, error) {
	resp, err := http.Get(base + "/status")
	if err != nil {
		return streamStatus{}, err
	}
	defer resp.Body.Close()
	var st struct {
		Streams map[string]streamStatus `json:"streams"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Streams["detect"], err
}

// edgehost is a running edgehost serve with a detect stream.
type edgehost struct {
	cmd  *exec.Cmd
	base string
	stop func()
}

func startEdgehost(camURL, broker, who string) (*edgehost, error) {
	ffmpeg := who == "edgehost-ffmpeg"
	workers, inflight := 2, ""
	if who == "edgehost-1" {
		inflight = "inflight = 1\n"
	}
	dir, _ := os.MkdirTemp("", "streambench-eh")
	port := freePort()
	m := func(p string) string { return filepath.Join(*root, p) }
	pre := m("plugins/examples/imagepre-c/imagepre-c.wasm")
	if who == "edgehost-alt" {
		if *preAlt == "" {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("edgehost-alt needs -pre-alt")
		}
		pre = *preAlt
	}
	cfg := fmt.Sprintf(`[server]
address = "127.0.0.1:%d"
[runtime]
cache_dir = %q
watch = false
[models.ssd]
path = %q
threads = %d
xnnpack = true
[pipelines.detect]
model = "ssd"
workers = %d
[pipelines.detect.pre]
path = %q
memory_limit_mb = 32
[pipelines.detect.post]
path = %q
memory_limit_mb = 16
params = { threshold = 0.5, label_offset = 1 }
[pipelines.detect.stream]
url = %q
mqtt_broker = "mqtt://%s"
mqtt_topic = "bench/edgehost"
%s%s`, port, filepath.Join(dir, "cache"), m(".deps/models/ssd_detect.tflite"), *threads, workers, pre,
		m("plugins/examples/ssd-c/ssd-c.wasm"), camURL, broker, ffmpegLines(ffmpeg), inflight)
	cf := filepath.Join(dir, "config.toml")
	os.WriteFile(cf, []byte(cfg), 0o644)
	cmd := exec.Command(m("bin/edgehost"), "--config", cf, "serve")
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=2")
	var logs bytes.Buffer
	cmd.Stderr, cmd.Stdout = &logs, &logs
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &edgehost{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		stop: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); os.RemoveAll(dir) }}
	for i := 0; ; i++ {
		if r, err := http.Get(e.base + "/v2/health/ready"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if i > 600 {
			e.stop()
			return nil, fmt.Errorf("edgehost did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e, nil
}

func runEdgehost(camURL, broker, who string) (result, error) {
	ffmpeg := who == "edgehost-ffmpeg"
	e, err := startEdgehost(camURL, broker, who)
	if err != nil {
		return result{}, err
	}
	defer e.stop()
	cmd, base := e.cmd, e.base
	// Latencies from the SSE events (each carries its own capture→result time).
	type sample struct {
		done time.Time
		ms   float64
	}
	samples := make(chan sample, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/streams/detect/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := sc.Bytes(); bytes.HasPrefix(line, []byte("data: ")) {
				var ev struct {
					LatencyMS float64 `json:"latency_ms"`
					Error     string  `json:"error"`
				}
				if json.Unmarshal(line[6:], &ev) == nil && ev.Error == "" {
					samples <- sample{time.Now(), ev.LatencyMS}
				}
			}
		}
	}()
	time.Sleep(time.Duration(*warmup * float64(time.Second)))
	st0, err := status(base)
	if err != nil {
		return result{}, err
	}
	c0, t0 := cpuTime(cmd.Process.Pid)+cpuTime(st0.FFmpegPID), time.Now()
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	st1, err := status(base)
	if err != nil {
		return result{}, err
	}
	c1, t1 := cpuTime(cmd.Process.Pid)+cpuTime(st0.FFmpegPID), time.Now()
	if ffmpeg && (st0.FFmpegPID == 0 || st1.FFmpegPID != st0.FFmpegPID) {
		return result{}, fmt.Errorf("ffmpeg pid %d then %d: restarted during the window", st0.FFmpegPID, st1.FFmpegPID)
	}
	cancel()
	var lat []float64
	for len(samples) > 0 {
		s := <-samples
		if s.done.After(t0) && s.done.Before(t1) {
			lat = append(lat, s.ms)
		}
	}
	sort.Float64s(lat)
	d := t1.Sub(t0).Seconds()
	proc := float64(st1.Processed - st0.Processed)
	r := result{Received: float64(st1.Received-st0.Received) / d, Processed: proc / d,
		Dropped: float64(st1.Dropped-st0.Dropped+st1.DroppedFPS-st0.DroppedFPS) / d, Late: float64(st1.DroppedLate-st0.DroppedLate) / d}
	if len(lat) > 0 {
		r.P50, r.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	if proc > 0 {
		r.CPUms = float64((c1 - c0).Milliseconds()) / proc
	}
	return r, nil
}

func runPython(camURL, broker string) (result, error) {
	cmd := exec.Command(*python, filepath.Join(*root, "bench/stream_loop.py"), camURL, filepath.Join(*root, ".deps/models/ssd_detect.tflite"),
		broker, "bench/python", fmt.Sprint(*warmup), fmt.Sprint(*seconds), fmt.Sprint(*threads))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("python loop: %v: %s", err, stderr.String())
	}
	var p struct {
		Seconds, Received, Processed, Dropped float64
		P50ms                                 float64 `json:"p50_ms"`
		P99ms                                 float64 `json:"p99_ms"`
		CPUs                                  float64 `json:"cpu_s"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &p); err != nil {
		return result{}, fmt.Errorf("python loop output %q: %v", b, err)
	}
	r := result{Received: p.Received / p.Seconds, Processed: p.Processed / p.Seconds, Dropped: p.Dropped / p.Seconds, P50: p.P50ms, P99: p.P99ms}
	if p.Processed > 0 {
		r.CPUms = 1000 * p.CPUs / p.Processed
	}
	return r, nil
}

var _ = io.Discard

// ffmpegLines has ffmpeg decode the MJPEG stream and scale it to the model's 300x300.
func ffmpegLines(on bool) string {
	if !on {
		return ""
	}
	return fmt.Sprintf("decoder = \"ffmpeg\"\nffmpeg = %q\nwidth = 300\nheight = 300\n", filepath.Join(*root, ".deps/ffmpeg/ffmpeg"))
}

// vmRSS is pid's resident set in KiB.
func vmRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func rssRun(frames [][]byte, broker string, d time.Duration) error {
	cam, err := testcam.Start(frames, 30)
	if err != nil {
		return err
	}
	defer cam.Kill()
	e, err := startEdgehost(cam.URL(), broker, "edgehost")
	if err != nil {
		return err
	}
	defer e.stop()
	var b strings.Builder
	fmt.Fprintf(&b, "edgehost RSS, a 30 fps MJPEG stream into detect for %v (MALLOC_ARENA_MAX=2)\n\n| t | RSS MiB | processed | dropped |\n|---|---|---|---|\n", d)
	t0 := time.Now()
	var ref, hi, lo int64
	for {
		el := time.Since(t0)
		r := vmRSS(e.cmd.Process.Pid)
		st, _ := status(e.base)
		fmt.Fprintf(&b, "| %v | %.1f | %d | %d |\n", el.Round(time.Second), float64(r)/1024, st.Processed, st.Dropped)
		fmt.Fprintf(os.Stderr, "t=%v rss=%.1f MiB processed=%d\n", el.Round(time.Second), float64(r)/1024, st.Processed)
		if el >= 60*time.Second {
			if ref == 0 {
				ref, hi, lo = r, r, r
			}
			hi, lo = max(hi, r), min(lo, r)
		}
		if el >= d {
			break
		}
		time.Sleep(30 * time.Second)
	}
	verdict := "flat"
	if ref > 0 && (float64(hi) > 1.1*float64(ref) || float64(lo) < 0.9*float64(ref)) {
		verdict = "NOT flat"
	}
	fmt.Fprintf(&b, "\nAfter 60 s: first %.1f MiB, min %.1f, max %.1f: %s (±10%%)\n", float64(ref)/1024, float64(lo)/1024, float64(hi)/1024, verdict)
	fmt.Print(b.String())
	if *out != "" {
		os.WriteFile(*out, []byte(b.String()), 0o644)
	}
	if verdict != "flat" {
		return fmt.Errorf("RSS not flat")
	}
	return nil
}

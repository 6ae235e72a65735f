package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one HTTP server under test, started and stopped by the bench.
type server struct {
	name    string
	args    []string // command line; the port is appended by start
	addr    string
	ready   string // path answering 200 once ready
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the server and returns the time from process start to its readiness route
// answering 200 (polled every 10 ms, at most 120 s).
func (s *server) start(extra ...string) time.Duration {
	s.addr = freePort()
	_, port, _ := net.SplitHostPort(s.addr)
	args := append(append([]string{}, s.args...), extra...)
	for i, a := range args {
		args[i] = strings.ReplaceAll(strings.ReplaceAll(a, "{addr}", s.addr), "{port}", port)
	}
	lf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fatalf("%v", err)
	}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = lf, lf
	s.cmd.SysProcAttr = childAttr()
	s.cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		fatalf("%s: %v", s.name, err)
	}
	track(s.cmd)
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); lf.Close(); close(s.done) }()
	c := &http.Client{Timeout: time.Second}
	for time.Since(t0) < 120*time.Second {
		select {
		case <-s.done:
			fatalf("%s exited before it was ready; its log: %s\n%s", s.name, s.logPath, tail(s.logPath))
		default:
		}
		if resp, err := c.Get("http://" + s.addr + s.ready); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t0)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	fatalf("%s not ready after 120 s; its log: %s\n%s", s.name, s.logPath, tail(s.logPath))
	return 0
}

// stop sends SIGTERM and waits at most 30 s before killing.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		logf("%s did not stop within 30 s of SIGTERM: killing it", s.name)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	untrack(s.cmd)
	s.cmd = nil
}

// rss is VmRSS of the server process in MiB.
func (s *server) rss() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// target is one kind of request to one server.
type target struct {
	name  string
	srv   *server
	path  string
	body  []byte
	lat   []time.Duration
	fail  int
	err   string    // the first failure
	tput  []float64 // requests/s per saturated round
	tfail int
}

func (t *target) do(c *http.Client) (time.Duration, error) {
	t0 := time.Now()
	resp, err := c.Post("http://"+t.srv.addr+t.path, "application/octet-stream", bytes.NewReader(t.body))
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	return d, nil
}

func (t *target) failed(err error) {
	t.fail++
	if t.err == "" {
		t.err = strings.TrimSpace(err.Error())
	}
}

type httpResult struct {
	targets                            []*target
	ehCold, ehWarm, pyCold, pyWarm     time.Duration
	ehIdle, ehLoaded, pyIdle, pyLoaded float64
	config                             string
}

// shippedConfig copies config.toml with its relative paths made absolute and cache_dir in
// the bench's temporary directory (the address comes from --addr), and writes beside it
// config-w1.toml: the same plus oneWorkerCopies of classify and detect.
func shippedConfig(root, dir string) (string, []string) {
	b, err := os.ReadFile(filepath.Join(root, "config.toml"))
	if err != nil {
		fatalf("%v", err)
	}
	s := regexp.MustCompile(`(?m)^cache_dir\s*=\s*"[^"]*"`).ReplaceAllString(string(b), `cache_dir = "`+filepath.Join(dir, "cache")+`"`)
	s = regexp.MustCompile(`"([^"\s:]+/[^"\s]*)"`).ReplaceAllStringFunc(s, func(q string) string {
		p := strings.Trim(q, `"`)
		if filepath.IsAbs(p) {
			return q
		}
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return q
		}
		return strconv.Quote(filepath.Join(root, p))
	})
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\[pipelines\.([A-Za-z0-9_-]+)\]`).FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}

	out := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config-w1.toml"), []byte(oneWorkerCopies(s, "classify", "detect")), 0o644); err != nil {
		fatalf("%v", err)
	}
	return out, names
}

// oneWorkerCopies appends to the config text s, for each named pipeline it has, a copy named
// NAME-w1 with workers = 1, so that one server measures the overlap of requests across workers
// (workers = 2 against 1 under the same load, interleaved).
func oneWorkerCopies(s string, names ...string) string {
	lines := strings.Split(s, "\n")
	workers := regexp.MustCompile(`^workers\s*=\s*\d+`)
	for _, n := range names {
		head, sub := "[pipelines."+n+"]", "[pipelines."+n+"."
		var block []string
		in := false
		for _, l := range lines {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "[") {
				in = t == head || strings.HasPrefix(t, sub)
				if in {
					l = strings.Replace(l, "[pipelines."+n, "[pipelines."+n+"-w1", 1)
					block = append(block, l)
					if t == head {
						block = append(block, "workers = 1")
					}
					continue
				}
			}
			if in && !workers.MatchString(t) {
				block = append(block, l)
			}
		}
		if len(block) > 0 {
			s += "\n# added by ehbench: " + n + " with one worker\n" + strings.Join(block, "\n") + "\n"
		}
	}
	return s
}

func benchHTTP(s settings) *httpResult {
	dir, err := os.MkdirTemp("", "ehbench-http-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	cfg, pipes := shippedConfig(s.root, dir)
	has := map[string]bool{}
	for _, p := range pipes {
		has[p] = true
	}
	eh := &server{name: "edgehost", args: []string{filepath.Join(s.root, "bin/edgehost"), "--config", cfg, "serve", "--addr", "{addr}"},
		ready: "/v2/health/ready", logPath: filepath.Join(dir, "edgehost.log")}
	py := &server{name: "python", args: []string{s.python, filepath.Join(s.root, "bench/litert_server.py"), "--port", "{port}", "--models", filepath.Join(s.root, ".deps/models")},
		ready: "/health", logPath: filepath.Join(dir, "python.log")}
	defer eh.stop()
	defer py.stop()
	r := &httpResult{config: "config.toml"}

	logf("HTTP: time to ready (edgehost with an empty cache_dir, then restarted with it kept; Python twice)")
	r.ehCold = eh.start()
	eh.stop()
	r.pyCold = py.start()
	py.stop()
	r.ehWarm = eh.start()
	r.pyWarm = py.start()
	time.Sleep(2 * time.Second)
	r.ehIdle, r.pyIdle = eh.rss(), py.rss()
	// The load runs on config-w1.toml (the shipped pipelines plus workers = 1 copies of
	// classify and detect, compiled from the kept cache), for the overlap figure.
	eh.stop()
	eh.args[2] = filepath.Join(dir, "config-w1.toml")
	eh.start()

	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(s.root, ".deps/models", f))
		if err != nil {
			fatalf("%v", err)
		}
		return b
	}
	peacock, street := read("peacock.png"), read("ssd_example.jpg")
	add := func(name string, srv *server, path string, body []byte) {
		r.targets = append(r.targets, &target{name: name, srv: srv, path: path, body: body})
	}
	for _, p := range []string{"classify", "classify-go"} {
		if has[p] {
			add("edgehost "+p, eh, "/v1/pipelines/"+p, peacock)
		}
	}
	if has["detect"] {
		add("edgehost detect", eh, "/v1/pipelines/detect", street)
	}
	if has["classify"] {
		add("edgehost classify-w1", eh, "/v1/pipelines/classify-w1", peacock)
	}
	if has["detect"] {
		add("edgehost detect-w1", eh, "/v1/pipelines/detect-w1", street)
	}
	add("Python classify", py, "/v1/pipelines/classify", peacock)
	add("Python detect", py, "/v1/pipelines/detect", street)
	if has["people"] { // the cascade (issue 25): ssd, then pose per person and mobilenet per other object
		add("edgehost people", eh, "/v1/pipelines/people", street)
		add("Python people", py, "/v1/pipelines/people", street)
	}
	if s.only != "" {
		var keep []*target
		for _, t := range r.targets {
			if strings.Contains(t.name, s.only) {
				keep = append(keep, t)
			}
		}
		r.targets = keep
	}

	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * s.clients}}
	for _, t := range r.targets { // warm up
		for range 3 {
			if _, err := t.do(c); err != nil {
				logf("warm-up %s: %v", t.name, err)
			}
		}
	}
	logf("HTTP: %d requests per target, 1 client, interleaved request by request", s.httpReqs)
	for i := range s.httpReqs {
		for k := range r.targets {
			t := r.targets[(k+i)%len(r.targets)]
			if d, err := t.do(c); err != nil {
				t.failed(err)
			} else {
				t.lat = append(t.lat, d)
			}
		}
	}
	logf("HTTP: saturated throughput, %d clients × %d s per target, %d rounds", s.clients, s.tputSecs, s.tputRounds)
	for round := range s.tputRounds {
		for k := range r.targets {
			t := r.targets[(k+round)%len(r.targets)]
			t.tput = append(t.tput, saturate(c, t, s.clients, time.Duration(s.tputSecs)*time.Second))
		}
	}
	r.ehLoaded, r.pyLoaded = eh.rss(), py.rss()
	return r
}

// saturate runs n clients back to back for d and returns the requests/s completed (HTTP
// 200) within d; failures are counted on t.
func saturate(c *http.Client, t *target, n int, d time.Duration) float64 {
	var mu sync.Mutex
	ok := 0
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				_, err := t.do(c)
				mu.Lock()
				if err != nil {
					t.tfail++
					if t.err == "" {
						t.err = strings.TrimSpace(err.Error())
					}
				} else if time.Now().Before(end) {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return float64(ok) / d.Seconds()
}

func (h *httpResult) write(w io.Writer, s settings) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n**HTTP, shipped %s** (edgehost `serve`) against bench/litert_server.py (FastAPI + uvicorn, 1 worker, Pillow draft + resize, ai-edge-litert num_threads=1), on 127.0.0.1; ", h.config)
	p("latency: %d requests per target, 1 client, interleaved request by request (p99 of %d is about the maximum); throughput: %d clients for %d s per target, targets alternating, %d rounds (mean, range):\n\n",
		s.httpReqs, s.httpReqs, s.clients, s.tputSecs, s.tputRounds)
	p("| target | p50 ms | p99 ms | failed | req/s saturated | vs Python: p50 | vs Python: req/s |\n|---|---|---|---|---|---|---|\n")
	var pyC, pyD, pyP *target
	for _, t := range h.targets {
		switch t.name {
		case "Python classify":
			pyC = t
		case "Python detect":
			pyD = t
		case "Python people":
			pyP = t
		}
	}
	for _, t := range h.targets {
		ref := pyC
		if strings.Contains(t.name, "detect") {
			ref = pyD
		} else if strings.Contains(t.name, "people") {
			ref = pyP
		}
		mean, lo, hi := stats(t.tput)
		failed := fmt.Sprintf("%d/%d", t.fail, t.fail+len(t.lat))
		if t.tfail > 0 {
			failed += fmt.Sprintf(" (+%d under load)", t.tfail)
		}
		lr, tr := "", ""
		if t.srv.name == "edgehost" && ref != nil {
			rm, _, _ := stats(ref.tput)
			lr = "**" + ratio(pct(t.lat, 50), pct(ref.lat, 50)) + "**"
			if rm > 0 {
				tr = fmt.Sprintf("**%.2f×**", mean/rm)
			}
		}
		p("| %s | %s | %s | %s | %.1f (%.1f–%.1f) | %s | %s |\n", t.name, msOr(t.lat, 50), msOr(t.lat, 99), failed, mean, lo, hi, lr, tr)
	}
	byName := map[string]*target{}
	for _, t := range h.targets {
		byName[t.name] = t
	}
	var overlap []string
	for _, n := range []string{"classify", "detect"} {
		two, one := byName["edgehost "+n], byName["edgehost "+n+"-w1"]
		if two == nil || one == nil {
			continue
		}
		m2, _, _ := stats(two.tput)
		m1, _, _ := stats(one.tput)
		if m1 > 0 {
			overlap = append(overlap, fmt.Sprintf("%s **%.2f×**", n, m2/m1))
		}
	}
	if len(overlap) > 0 {
		p("\nOverlap across requests (`NAME-w1`: the same pipeline with workers = 1, added to the bench's copy of config.toml; 1 thread per interpreter): saturated throughput with %d clients, workers = 2 / workers = 1: %s.\n", s.clients, strings.Join(overlap, ", "))
	}
	p("\n| server | ready, empty cache | ready, restart (cache kept) | RSS idle MiB | RSS after the load MiB (edgehost: with the -w1 copies) |\n|---|---|---|---|---|\n")
	p("| edgehost, shipped config | %.2f s | %.2f s | %.0f | %.0f |\n", h.ehCold.Seconds(), h.ehWarm.Seconds(), h.ehIdle, h.ehLoaded)
	p("| Python (no cache; started twice) | %.2f s | %.2f s | %.0f | %.0f |\n", h.pyCold.Seconds(), h.pyWarm.Seconds(), h.pyIdle, h.pyLoaded)
	p("| edgehost / Python | **%s** | **%s** | **%.2f×** | **%.2f×** |\n", ratio(h.ehCold, h.pyCold), ratio(h.ehWarm, h.pyWarm), h.ehIdle/h.pyIdle, h.ehLoaded/h.pyLoaded)
	for _, t := range h.targets {
		if t.err != "" {
			p("\n%s: first failure: `%s`", t.name, strings.ReplaceAll(t.err, "`", "'"))
		}
	}
	p("\n")
}

func msOr(xs []time.Duration, q float64) string {
	if len(xs) == 0 {
		return "—"
	}
	return ms(pct(xs, q))
}

func stats(xs []float64) (mean, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		mean += x
		lo, hi = min(lo, x), max(hi, x)
	}
	return mean / float64(len(xs)), lo, hi
}

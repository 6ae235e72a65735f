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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one HTTP server under test, started and stopped by the bench.
type server struct {
	name    string
	label   string   // how the tables name it
	args    []string // command line; the port is appended by start
	addr    string
	ready   string // path answering 200 once ready
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}

	idle, loaded float64 // RSS MiB 2 s after ready, and after the load
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

// rss is VmRSS of the server process and every process it started (uvicorn's workers), in MiB.
func (s *server) rss() float64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return treeRSS(s.cmd.Process.Pid)
}

func treeRSS(pid int) float64 {
	total := 0.0
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			total += kb / 1024
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		c, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(c)) {
			if child, err := strconv.Atoi(f); err == nil {
				total += treeRSS(child)
			}
		}
	}
	return total
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
	err   string            // the first failure
	tput  map[int][]float64 // clients → requests/s per saturated round
	tfail int
	// srvMean is the mean time the server spent on a 1-client request once its body was
	// read, to the result: edgehost's edgehost_stage_seconds{stage="total"} over the latency
	// phase, the Python server's Server-Timing header (srvTimes, per request). 0: unknown.
	srvMean    time.Duration
	srvTimes   []time.Duration
	lastTiming string // the last response's Server-Timing (1-client phase only)
}

// metricTotal reads edgehost's stage histogram: sum and count of stage "total" for pipeline.
func metricTotal(addr, pipeline string) (sum float64, count float64) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	key := `{stage="total",target="` + pipeline + `"}`
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "edgehost_stage_seconds_sum" + key:
			sum, _ = strconv.ParseFloat(f[1], 64)
		case "edgehost_stage_seconds_count" + key:
			count, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	return sum, count
}

func mean(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	var s time.Duration
	for _, x := range xs {
		s += x
	}
	return s / time.Duration(len(xs))
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
	t.lastTiming = resp.Header.Get("Server-Timing")
	return d, nil
}

func (t *target) failed(err error) {
	t.fail++
	if t.err == "" {
		t.err = strings.TrimSpace(err.Error())
	}
}

type httpResult struct {
	targets                        []*target
	ehCold, ehWarm, pyCold, pyWarm time.Duration
	servers                        []*server // every server, in table order
	config                         string
	workers, cores                 int
}

// shippedConfig copies config.toml with its relative paths made absolute and cache_dir in
// the bench's temporary directory (the address comes from --addr), and writes beside it
// config-w1.toml: the same plus oneWorkerCopies of classify and detect, and
// config-threads1.toml and config-threadsN.toml: the shipped config with every model's
// threads fixed (1, and the cores) and no idle interpreter. It returns the copy's path, its
// pipelines and the workers of its classify pipeline.
func shippedConfig(root, dir string) (string, []string, int) {
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
	workers := 2 // config.Pipeline's default
	if m := regexp.MustCompile(`(?s)\[pipelines\.classify\]\n(?:[^\[]*?\n)?workers\s*=\s*(\d+)`).FindStringSubmatch(s); m != nil {
		workers, _ = strconv.Atoi(m[1])
	}

	out := filepath.Join(dir, "config.toml")
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			fatalf("%v", err)
		}
	}
	write("config.toml", s)
	write("config-w1.toml", oneWorkerCopies(s, "classify", "detect"))
	write("config-threads1.toml", fixedThreads(s, 1))
	write(fmt.Sprintf("config-threads%d.toml", runtime.NumCPU()), fixedThreads(s, runtime.NumCPU()))
	return out, names, workers
}

// fixedThreads sets every model's threads to n and idle_threads to 1 (no idle interpreter):
// the fixed settings the adaptive default is measured against.
func fixedThreads(s string, n int) string {
	s = regexp.MustCompile(`(?m)^idle_threads\s*=.*\n`).ReplaceAllString(s, "")
	return regexp.MustCompile(`(?m)^threads\s*=\s*\d+`).ReplaceAllString(s, fmt.Sprintf("threads = %d\nidle_threads = 1", n))
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
	cfg, pipes, workers := shippedConfig(s.root, dir)
	has := map[string]bool{}
	for _, p := range pipes {
		has[p] = true
	}
	cores := runtime.NumCPU()
	ehArgs := func(cfg string) []string {
		return []string{filepath.Join(s.root, "bin/edgehost"), "--config", cfg, "serve", "--addr", "{addr}"}
	}
	eh := &server{name: "edgehost", label: "edgehost (adaptive: idle_threads default)", args: ehArgs(cfg),
		ready: "/v2/health/ready", logPath: filepath.Join(dir, "edgehost.log")}
	pyServer := func(name, label string, extra ...string) *server {
		return &server{name: name, label: label, ready: "/health", logPath: filepath.Join(dir, name+".log"),
			args: append([]string{s.python, filepath.Join(s.root, "bench/litert_server.py"), "--port", "{port}", "--models", filepath.Join(s.root, ".deps/models")}, extra...)}
	}
	// The Python server as shipped (one 1-thread interpreter per model behind a lock), and as
	// a user tuning it would run it: for latency num_threads = cores; for throughput as many
	// 1-thread interpreters as edgehost has workers, in one process (a pool) or in as many
	// uvicorn worker processes.
	py := pyServer("python", "Python: 1 interpreter, 1 thread, lock")
	pyLat := pyServer("python-threads", fmt.Sprintf("Python: num_threads=%d", cores), "--threads", strconv.Itoa(cores))
	pyPool := pyServer("python-pool", fmt.Sprintf("Python: pool of %d interpreters, 1 thread", workers), "--pool", strconv.Itoa(workers))
	pyProcs := pyServer("python-procs", fmt.Sprintf("Python: %d uvicorn processes, 1 thread", workers), "--procs", strconv.Itoa(workers))
	all := []*server{eh, py, pyLat, pyPool, pyProcs}
	var ehFixed []*server
	if s.fixed {
		ehFixed = []*server{
			{name: "edgehost-threads1", label: "edgehost threads=1 (fixed)", args: ehArgs(filepath.Join(dir, "config-threads1.toml")),
				ready: "/v2/health/ready", logPath: filepath.Join(dir, "edgehost-threads1.log")},
			{name: fmt.Sprintf("edgehost-threads%d", cores), label: fmt.Sprintf("edgehost threads=%d (fixed)", cores),
				args:  ehArgs(filepath.Join(dir, fmt.Sprintf("config-threads%d.toml", cores))),
				ready: "/v2/health/ready", logPath: filepath.Join(dir, fmt.Sprintf("edgehost-threads%d.log", cores))},
		}
		all = append(all, ehFixed...)
	}
	for _, sv := range all {
		defer sv.stop()
	}
	r := &httpResult{config: "config.toml", servers: all, workers: workers, cores: cores}

	logf("HTTP: time to ready (edgehost with an empty cache_dir, then restarted with it kept; Python twice)")
	r.ehCold = eh.start()
	eh.stop()
	r.pyCold = py.start()
	py.stop()
	r.ehWarm = eh.start()
	r.pyWarm = py.start()
	time.Sleep(2 * time.Second)
	eh.idle, py.idle = eh.rss(), py.rss()
	// The load runs on config-w1.toml (the shipped pipelines plus workers = 1 copies of
	// classify and detect, compiled from the kept cache), for the overlap figure.
	eh.stop()
	eh.args[2] = filepath.Join(dir, "config-w1.toml")
	eh.start()
	rest := append([]*server{pyLat, pyPool, pyProcs}, ehFixed...)
	for _, sv := range rest {
		sv.start()
	}
	time.Sleep(2 * time.Second)
	for _, sv := range rest {
		sv.idle = sv.rss()
	}

	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(s.root, ".deps/models", f))
		if err != nil {
			fatalf("%v", err)
		}
		return b
	}
	peacock, street := read("peacock.png"), read("ssd_example.jpg")
	add := func(name string, srv *server, path string, body []byte) {
		r.targets = append(r.targets, &target{name: name, srv: srv, path: path, body: body, tput: map[int][]float64{}})
	}
	for _, p := range []string{"classify", "classify-go"} {
		if has[p] {
			add("edgehost "+p, eh, "/v1/pipelines/"+p, peacock)
		}
	}
	if has["detect"] {
		add("edgehost detect", eh, "/v1/pipelines/detect", street)
	}
	for _, sv := range ehFixed {
		tag := strings.TrimPrefix(sv.name, "edgehost-")
		if has["classify"] {
			add("edgehost "+tag+" classify", sv, "/v1/pipelines/classify", peacock)
		}
		if has["detect"] {
			add("edgehost "+tag+" detect", sv, "/v1/pipelines/detect", street)
		}
	}
	if has["classify"] {
		add("edgehost classify-w1", eh, "/v1/pipelines/classify-w1", peacock)
	}
	if has["detect"] {
		add("edgehost detect-w1", eh, "/v1/pipelines/detect-w1", street)
	}
	add("Python classify", py, "/v1/pipelines/classify", peacock)
	add("Python detect", py, "/v1/pipelines/detect", street)
	for _, sv := range []*server{pyLat, pyPool, pyProcs} {
		tag := strings.TrimPrefix(sv.name, "python-")
		add("Python "+tag+" classify", sv, "/v1/pipelines/classify", peacock)
		add("Python "+tag+" detect", sv, "/v1/pipelines/detect", street)
	}
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

	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * slices.Max(s.clients)}}
	for _, t := range r.targets { // warm up (edgehost builds an idle interpreter on the first lone request)
		for range 3 {
			if _, err := t.do(c); err != nil {
				logf("warm-up %s: %v", t.name, err)
			}
		}
	}
	// 1 client, in blocks: each target in turn gets latBlock requests in a row after
	// latSettle of uncounted ones, for as many rounds as give httpReqs counted requests. Not
	// request by request: a server that looks at what other processes use (edgehost's idle
	// interpreter, section "Adaptive parallelism") would see the other servers' requests of a
	// moment ago and take the machine for busy, which one server alone on a board never does.
	// Rounds still alternate the targets, so drift is shared.
	logf("HTTP: %d requests per target, 1 client, in blocks of %d after %v uncounted, targets alternating", s.httpReqs, latBlock, latSettle)
	type snap struct{ sum, count float64 }
	srvSum := map[*target]snap{}
	rounds := (s.httpReqs + latBlock - 1) / latBlock
	for i := range rounds {
		for k := range r.targets {
			t := r.targets[(k+i)%len(r.targets)]
			for settle := time.Now(); time.Since(settle) < latSettle; {
				if _, err := t.do(c); err != nil {
					logf("settling %s: %v", t.name, err)
					break
				}
			}
			var b snap
			edge := strings.HasPrefix(t.name, "edgehost")
			if edge {
				b.sum, b.count = metricTotal(t.srv.addr, strings.TrimPrefix(t.path, "/v1/pipelines/"))
			}
			for range min(latBlock, s.httpReqs-i*latBlock) {
				if d, err := t.do(c); err != nil {
					t.failed(err)
				} else {
					t.lat = append(t.lat, d)
					var ms float64
					if _, err := fmt.Sscanf(t.lastTiming, "total;dur=%g", &ms); err == nil {
						t.srvTimes = append(t.srvTimes, time.Duration(ms*1e6))
					}
				}
			}
			if edge {
				sum, n := metricTotal(t.srv.addr, strings.TrimPrefix(t.path, "/v1/pipelines/"))
				acc := srvSum[t]
				acc.sum += sum - b.sum
				acc.count += n - b.count
				srvSum[t] = acc
			}
		}
	}
	for _, t := range r.targets {
		if a, ok := srvSum[t]; ok {
			if a.count > 0 {
				t.srvMean = time.Duration(a.sum / a.count * 1e9)
			}
		} else if len(t.srvTimes) == len(t.lat) {
			t.srvMean = mean(t.srvTimes)
		}
	}
	for _, n := range s.clients {
		logf("HTTP: saturated throughput, %d clients × %d s per target, %d rounds", n, s.tputSecs, s.tputRounds)
		for round := range s.tputRounds {
			for k := range r.targets {
				t := r.targets[(k+round)%len(r.targets)]
				t.tput[n] = append(t.tput[n], saturate(c, t, n, time.Duration(s.tputSecs)*time.Second))
			}
		}
	}
	for _, sv := range all {
		sv.loaded = sv.rss()
	}
	return r
}

// The 1-client phase's blocks (see run): latBlock counted requests after latSettle of
// uncounted ones, long enough for edgehost's load sampler (two 250 ms windows) to see the
// other servers idle.
const (
	latBlock  = 10
	latSettle = 700 * time.Millisecond
)

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
	p("\n**HTTP, shipped %s** (edgehost `serve`; its idle interpreters on, the default) against bench/litert_server.py (FastAPI + uvicorn, Pillow draft + resize, ai-edge-litert) run four ways: as shipped (one 1-thread interpreter per model behind a lock), num_threads=%d (latency), a pool of %d 1-thread interpreters per model, and %d uvicorn processes (throughput); on 127.0.0.1. ", h.config, h.cores, h.workers, h.workers)
	p("Latency: %d requests per target, 1 client, in blocks of %d after %v of uncounted requests, targets alternating block by block (p99 of %d is about the maximum); *HTTP adds*: the client's mean latency minus the server's mean time from the body read to the result over the same requests (edgehost's `edgehost_stage_seconds{stage=\"total\"}`, the Python server's `Server-Timing`); throughput: %v clients for %d s per target, targets alternating, %d rounds (mean, range):\n\n",
		s.httpReqs, latBlock, latSettle, s.httpReqs, s.clients, s.tputSecs, s.tputRounds)
	p("| target | p50 ms | p99 ms | failed | HTTP adds, ms |")
	for _, n := range s.clients {
		p(" req/s, %d clients |", n)
	}
	p("\n|---|---|---|---|---|%s\n", strings.Repeat("---|", len(s.clients)))
	for _, t := range h.targets {
		failed := fmt.Sprintf("%d/%d", t.fail, t.fail+len(t.lat))
		if t.tfail > 0 {
			failed += fmt.Sprintf(" (+%d under load)", t.tfail)
		}
		adds := "—"
		if t.srvMean > 0 && len(t.lat) > 0 {
			adds = fmt.Sprintf("%.2f", float64(mean(t.lat)-t.srvMean)/1e6)
		}
		p("| %s | %s | %s | %s | %s |", t.name, msOr(t.lat, 50), msOr(t.lat, 99), failed, adds)
		for _, n := range s.clients {
			mean, lo, hi := stats(t.tput[n])
			p(" %.1f (%.1f–%.1f) |", mean, lo, hi)
		}
		p("\n")
	}

	byName := map[string]*target{}
	for _, t := range h.targets {
		byName[t.name] = t
	}
	// Ratios of each edgehost target against the Python servers doing the same job: the
	// shipped one, num_threads = cores for latency, and for throughput the faster of the
	// pool and the processes at each client count.
	p("\nedgehost ÷ Python, same run (p50: lower is better for edgehost; req/s: higher is better). *tuned*: p50 against num_threads=%d, req/s against the faster of the pool and the processes at that client count (named):\n\n", h.cores)
	p("| target | p50 ÷ Python as shipped | p50 ÷ Python num_threads=%d |", h.cores)
	for _, n := range s.clients {
		p(" req/s ÷ Python as shipped, %d clients | req/s ÷ tuned, %d clients |", n, n)
	}
	p("\n|---|---|---|%s\n", strings.Repeat("---|---|", len(s.clients)))
	for _, t := range h.targets {
		if !strings.HasPrefix(t.name, "edgehost") {
			continue
		}
		job := "classify"
		switch {
		case strings.Contains(t.name, "detect"):
			job = "detect"
		case strings.Contains(t.name, "people"):
			job = "people"
		}
		ref, lat := byName["Python "+job], byName["Python threads "+job]
		if ref == nil {
			continue
		}
		latR := "—"
		if lat != nil {
			latR = "**" + ratio(pct(t.lat, 50), pct(lat.lat, 50)) + "**"
		}
		p("| %s | %s | %s |", t.name, ratio(pct(t.lat, 50), pct(ref.lat, 50)), latR)
		for _, n := range s.clients {
			m, _, _ := stats(t.tput[n])
			rm, _, _ := stats(ref.tput[n])
			best, bestName := 0.0, ""
			for _, v := range []string{"pool", "procs"} {
				if o := byName["Python "+v+" "+job]; o != nil {
					if om, _, _ := stats(o.tput[n]); om > best {
						best, bestName = om, v
					}
				}
			}
			tuned := "—"
			if best > 0 {
				tuned = fmt.Sprintf("**%.2f×** (%s)", m/best, bestName)
			}
			shipped := "—"
			if rm > 0 {
				shipped = fmt.Sprintf("%.2f×", m/rm)
			}
			p(" %s | %s |", shipped, tuned)
		}
		p("\n")
	}

	var overlap []string
	n0 := s.clients[0]
	for _, n := range []string{"classify", "detect"} {
		two, one := byName["edgehost "+n], byName["edgehost "+n+"-w1"]
		if two == nil || one == nil {
			continue
		}
		m2, _, _ := stats(two.tput[n0])
		m1, _, _ := stats(one.tput[n0])
		if m1 > 0 {
			overlap = append(overlap, fmt.Sprintf("%s **%.2f×**", n, m2/m1))
		}
	}
	if len(overlap) > 0 {
		p("\nOverlap across requests (`NAME-w1`: the same pipeline with workers = 1, added to the bench's copy of config.toml): saturated throughput with %d clients, workers = 2 / workers = 1: %s.\n", n0, strings.Join(overlap, ", "))
	}
	p("\n| server | ready, empty cache | ready, restart (cache kept) |\n|---|---|---|\n")
	p("| edgehost, shipped config | %.2f s | %.2f s |\n", h.ehCold.Seconds(), h.ehWarm.Seconds())
	p("| Python as shipped (no cache; started twice) | %.2f s | %.2f s |\n", h.pyCold.Seconds(), h.pyWarm.Seconds())
	p("| edgehost / Python | **%s** | **%s** |\n", ratio(h.ehCold, h.pyCold), ratio(h.ehWarm, h.pyWarm))
	p("\nRSS (VmRSS summed over the server's processes), MiB: 2 s after ready, and after the load (edgehost: on config-w1.toml, with the -w1 copies and the idle interpreters the load built):\n\n| server | RSS idle | RSS after the load |\n|---|---|---|\n")
	for _, sv := range h.servers {
		p("| %s | %.0f | %.0f |\n", sv.label, sv.idle, sv.loaded)
	}
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

// Command coldstart measures edgehost's start (`make bench-coldstart`): time to ready and to
// the first correct answer from an empty cache_dir and on a restart with it kept, time until
// every pipeline runs compiled plugins, and idle RSS (with edgehost's own breakdown from
// /status "memory"), against the Python LiteRT server (bench/litert_server.py) serving the
// same models. With -base, a second edgehost binary (the one before a change) runs in the
// same rounds, interleaved, so the ratios come from one machine at one load.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	root   = flag.String("root", ".", "the edgehost checkout (config.toml, plugins, .deps)")
	bin    = flag.String("bin", "bin/edgehost", "the edgehost binary under test")
	base   = flag.String("base", "", "an edgehost binary to compare with, interleaved (optional)")
	python = flag.String("python", ".deps/bench-venv/bin/python", `the bench venv's python ("" skips the Python server)`)
	rounds = flag.Int("rounds", 3, "interleaved rounds")
	out    = flag.String("out", "", "also write the markdown table here")
)

// A start's figures, in seconds and MiB.
type start struct {
	ready, first, full float64
	rss                float64
	mem                map[string]float64 // edgehost's /status "memory"
}

type target struct {
	name        string
	bin         string
	cold, warm  []start
	interpFirst bool // the binary reports per-pipeline engines (/status "compiling")
}

func main() {
	flag.Parse()
	r, _ := filepath.Abs(*root)
	dir, err := os.MkdirTemp("", "coldstart-")
	check(err)
	defer os.RemoveAll(dir)
	cfg, models := config(r, dir)
	peacock, err := os.ReadFile(filepath.Join(r, ".deps/models/peacock.png"))
	check(err)
	targets := []*target{{name: "edgehost", bin: abs(r, *bin)}}
	if *base != "" {
		targets = append(targets, &target{name: "edgehost before", bin: abs(r, *base)})
	}
	var py []start
	for round := 1; round <= *rounds; round++ {
		for _, t := range targets {
			cache := filepath.Join(dir, "cache-"+strings.ReplaceAll(t.name, " ", "-"))
			os.RemoveAll(cache)
			c := strings.ReplaceAll(cfg, "{cache}", cache)
			cf := filepath.Join(dir, "config.toml")
			check(os.WriteFile(cf, []byte(c), 0o644))
			s := run([]string{t.bin, "--config", cf, "serve", "--addr", "{addr}", "--grpc-addr", "off"}, "/v2/health/ready", peacock, true, filepath.Join(dir, "edgehost.log"))
			t.cold = append(t.cold, s)
			logf("round %d %s, empty cache: ready %.2f s, first answer %.2f s, compiled %.2f s, RSS %.0f MiB", round, t.name, s.ready, s.first, s.full, s.rss)
			s = run([]string{t.bin, "--config", cf, "serve", "--addr", "{addr}", "--grpc-addr", "off"}, "/v2/health/ready", peacock, true, filepath.Join(dir, "edgehost.log"))
			t.warm = append(t.warm, s)
			logf("round %d %s, restart: ready %.2f s, first answer %.2f s, RSS %.0f MiB", round, t.name, s.ready, s.first, s.rss)
		}
		if *python != "" {
			s := run([]string{abs(r, *python), filepath.Join(r, "bench/litert_server.py"), "--port", "{port}", "--models", filepath.Join(r, ".deps/models")}, "/health", peacock, false, filepath.Join(dir, "python.log"))
			py = append(py, s)
			logf("round %d python: ready %.2f s, first answer %.2f s, RSS %.0f MiB", round, s.ready, s.first, s.rss)
		}
	}
	report(targets, py, models)
}

// config is config.toml with paths made absolute and cache_dir = "{cache}", and the number
// of models it serves.
func config(r, dir string) (string, int) {
	b, err := os.ReadFile(filepath.Join(r, "config.toml"))
	check(err)
	s := regexp.MustCompile(`(?m)^cache_dir\s*=\s*"[^"]*"`).ReplaceAllString(string(b), `cache_dir = "{cache}"`)
	s = regexp.MustCompile(`(?m)^watch\s*=.*$`).ReplaceAllString(s, `watch = false`)
	s = regexp.MustCompile(`"((?:plugins|\.deps)/[^"]*)"`).ReplaceAllStringFunc(s, func(q string) string {
		return strconv.Quote(filepath.Join(r, strings.Trim(q, `"`)))
	})
	return s, len(regexp.MustCompile(`(?m)^\[models\.[^.\]]+\]`).FindAllString(s, -1))
}

// run starts a server, measures its start and idle RSS, and stops it. The clock starts
// just before the process does; a first answer is a 200 whose body names the peacock.
func run(argv []string, readyPath string, peacock []byte, edgehost bool, logPath string) start {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	args := slices.Clone(argv)
	for i, a := range args {
		args[i] = strings.ReplaceAll(strings.ReplaceAll(a, "{addr}", addr), "{port}", port)
	}
	lf, err := os.Create(logPath)
	check(err)
	defer lf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	check(cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	c := &http.Client{Timeout: 30 * time.Second}
	var s start
	classify := "http://" + addr + "/v1/pipelines/classify"
	for s.ready == 0 || s.first == 0 {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			fatalf("%s exited before it was ready:\n%s", args[0], tail(b))
		default:
		}
		if time.Since(t0) > 120*time.Second {
			fatalf("%s not ready after 120 s", args[0])
		}
		if s.first == 0 {
			// Requests go out from the first moment: a server may answer before it is ready.
			if resp, err := c.Post(classify, "image/png", bytes.NewReader(peacock)); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && strings.Contains(string(b), `"peacock"`) {
					s.first = time.Since(t0).Seconds()
				}
			}
		}
		if s.ready == 0 {
			if resp, err := c.Get("http://" + addr + readyPath); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					s.ready = time.Since(t0).Seconds()
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.full = s.ready
	if edgehost {
		for time.Since(t0) < 120*time.Second {
			st := status(c, addr)
			if _, ok := st["memory"]; !ok {
				break // a binary from before the interpreter start: ready is compiled
			}
			if n, _ := st["compiling"].(float64); n == 0 {
				s.full = max(time.Since(t0).Seconds(), s.ready)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(3 * time.Second) // idle: what serve does after start (FreeOSMemory) is done
	s.rss = rss(cmd.Process.Pid)
	if edgehost {
		if m, ok := status(c, addr)["memory"].(map[string]any); ok {
			s.mem = map[string]float64{}
			for k, v := range m {
				if f, ok := v.(float64); ok {
					s.mem[k] = f
				}
			}
		}
	}
	return s
}

func status(c *http.Client, addr string) map[string]any {
	var st map[string]any
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// rss is VmRSS of pid in MiB.
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func median(ss []start, f func(start) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func report(targets []*target, py []start, models int) {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	load, _ := os.ReadFile("/proc/loadavg")
	p("Medians of %d interleaved rounds; load average at the end: %s\n\n", *rounds, strings.Join(strings.Fields(string(load))[:3], " "))
	pyModels := 3 // litert_server.py: mobilenet, ssd, pose (people)
	p("| server | models | ready, empty cache | first answer, empty cache | compiled, empty cache | ready, restart | first answer, restart | idle RSS MiB (restart) | MiB per model |\n|---|---|---|---|---|---|---|---|---|\n")
	ready := func(s start) float64 { return s.ready }
	first := func(s start) float64 { return s.first }
	full := func(s start) float64 { return s.full }
	mem := func(s start) float64 { return s.rss }
	for _, t := range targets {
		p("| %s | %d | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %.0f | %.1f |\n", t.name, models,
			median(t.cold, ready), median(t.cold, first), median(t.cold, full),
			median(t.warm, ready), median(t.warm, first), median(t.warm, mem), median(t.warm, mem)/float64(models))
	}
	if len(py) > 0 {
		p("| Python (no cache) | %d | %.2f s | %.2f s | — | — | — | %.0f | %.1f |\n", pyModels,
			median(py, ready), median(py, first), median(py, mem), median(py, mem)/float64(pyModels))
		t := targets[0]
		p("| edgehost / Python | | %.2f× | %.2f× | | %.2f× (vs Python's start) | %.2f× | %.2f× | **%.2f×** |\n",
			median(t.cold, ready)/median(py, ready), median(t.cold, first)/median(py, first),
			median(t.warm, ready)/median(py, ready), median(t.warm, first)/median(py, first),
			median(t.warm, mem)/median(py, mem), (median(t.warm, mem)/float64(models))/(median(py, mem)/float64(pyModels)))
	}
	if len(targets) == 2 {
		n, o := targets[0], targets[1]
		p("| edgehost / before | | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× | |\n",
			median(n.cold, ready)/median(o.cold, ready), median(n.cold, first)/median(o.cold, first), median(n.cold, full)/median(o.cold, full),
			median(n.warm, ready)/median(o.warm, ready), median(n.warm, first)/median(o.warm, first), median(n.warm, mem)/median(o.warm, mem))
	}
	keys := []string{"rss_mib", "go_runtime_mib", "go_heap_inuse_mib", "go_heap_free_mib", "compiled_code_mib", "guest_mib", "guest_memories",
		"binary_mib", "libraries_mib", "c_heap_mib", "other_anon_mib", "other_file_mib"}
	p("%s", "\nedgehost's idle memory after a restart, /status \"memory\" (MiB; medians)\n\n| | "+strings.Join(keys, " | ")+" |\n|---|"+strings.Repeat("---|", len(keys))+"\n")
	for _, t := range targets {
		if t.warm[0].mem == nil {
			continue
		}
		p("| %s |", t.name)
		for _, k := range keys {
			p(" %.1f |", median(t.warm, func(s start) float64 { return s.mem[k] }))
		}
		p("\n")
	}
	fmt.Print(b.String())
	if *out != "" {
		check(os.WriteFile(*out, []byte(b.String()), 0o644))
	}
}

func abs(r, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r, p)
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }

func fatalf(f string, a ...any) {
	logf(f, a...)
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

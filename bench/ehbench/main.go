// Command ehbench measures edgehost against what a user would pick instead, in one
// interleaved run: the sandboxed pre stage and whole requests in process against Pillow
// (with draft) + ai-edge-litert in a long-lived Python worker and against native Go; then
// edgehost's HTTP server on the shipped config against a minimal FastAPI + ai-edge-litert
// server. It prints one markdown table of figures and ratios and writes it to -out.
// Run it with `make bench` (see bench/README.md).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	procMu sync.Mutex
	procs  = map[*exec.Cmd]bool{}
)

func track(c *exec.Cmd)   { procMu.Lock(); procs[c] = true; procMu.Unlock() }
func untrack(c *exec.Cmd) { procMu.Lock(); delete(procs, c); procMu.Unlock() }

// killAll ends every child still running (each by its own pid).
func killAll() {
	procMu.Lock()
	defer procMu.Unlock()
	for c := range procs {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
		delete(procs, c)
	}
}

// childAttr: children die with the driver even if it is killed.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

func fatalf(format string, a ...any) {
	killAll()
	fmt.Fprintf(os.Stderr, "ehbench: "+format+"\n", a...)
	os.Exit(1)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s ehbench: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

type settings struct {
	root, python, out string
	rounds            int // in-process rounds (each: every workload × every implementation once)
	httpReqs          int // 1-client requests per HTTP target
	tputSecs          int // seconds per server per saturated-throughput round
	tputRounds        int
	clients           []int // concurrent clients of each saturated-load measurement
	fixed             bool  // HTTP: also edgehost with fixed threads (1, and cores) beside the adaptive default
	skipHTTP, skipIn  bool
	only              string         // HTTP targets whose name contains it (all when "")
	workloads         *regexp.Regexp // in-process workloads whose name matches; nil: all
}

func main() {
	var s settings
	flag.StringVar(&s.root, "root", ".", "the repository root")
	flag.StringVar(&s.python, "python", ".deps/bench-venv/bin/python", "the competitor venv's python")
	flag.StringVar(&s.out, "out", ".deps/bench/results.md", "where to write the markdown table")
	flag.BoolVar(&s.skipHTTP, "no-http", false, "skip the HTTP part")
	flag.BoolVar(&s.skipIn, "no-inproc", false, "skip the in-process part")
	flag.StringVar(&s.only, "only", "", "HTTP: only the targets whose name contains this (e.g. people)")
	flag.BoolVar(&s.fixed, "fixed", false, "HTTP: also run edgehost with fixed threads (threads = 1 and threads = cores, no idle interpreter) as targets")
	only := flag.String("workloads", "", "run only the in-process workloads whose name matches this regular expression")
	flag.Parse()
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fatalf("-workloads: %v", err)
		}
		s.workloads = re
	}
	s.rounds = envInt("BENCH_ROUNDS", 5)
	s.httpReqs = envInt("BENCH_HTTP_REQS", 40)
	s.tputSecs = envInt("BENCH_TPUT_SECS", 5)
	s.tputRounds = envInt("BENCH_TPUT_ROUNDS", 2)
	s.clients = envInts("BENCH_CLIENTS", []int{4, 8})
	var err error
	if s.root, err = filepath.Abs(s.root); err != nil {
		fatalf("%v", err)
	}
	if !filepath.IsAbs(s.python) {
		s.python = filepath.Join(s.root, s.python)
	}
	if !filepath.IsAbs(s.out) {
		s.out = filepath.Join(s.root, s.out)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fatalf("interrupted")
	}()
	defer killAll()

	rep := &report{settings: s, started: time.Now(), loadStart: loadavg()}
	// In process: one locked OS thread, so thread CPU time is this work's.
	if !s.skipIn {
		runtime.LockOSThread()
		rep.inproc = benchInProcess(context.Background(), s)
		runtime.UnlockOSThread()
	}
	if !s.skipHTTP {
		rep.http = benchHTTP(s)
	}
	rep.loadEnd = loadavg()
	rep.elapsed = time.Since(rep.started)

	var buf bytes.Buffer
	rep.write(&buf)
	os.Stdout.Write(buf.Bytes())
	if err := os.MkdirAll(filepath.Dir(s.out), 0o755); err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(s.out, buf.Bytes(), 0o644); err != nil {
		fatalf("%v", err)
	}
	logf("wrote %s", s.out)
}

// envInts reads a comma-separated list of positive integers.
func envInts(name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := bytes.Fields(b)
	if len(f) < 3 {
		return "?"
	}
	return string(bytes.Join(f[:3], []byte(" ")))
}

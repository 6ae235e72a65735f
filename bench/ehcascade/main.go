// Command ehcascade measures the people cascade in process: edgehost's engine on the shipped
// config's people pipeline (ssd, then pose per person and mobilenet per other object, in the
// sandboxed people-c plugin) against the same chain in Python (bench/people_chain.py: Pillow
// + ai-edge-litert, num_threads=1) in a long-lived worker, interleaved request by request on
// ssd_example.jpg. It reports p50/p99 wall time, the time inside model invokes, and the share
// of the request that is not invoke. The HTTP rows (edgehost serve against the FastAPI
// server) are ehbench's. Run it with `make bench-cascade` (part of `make bench`).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/hashicorp/go-hclog"
)

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "ehcascade: "+format+"\n", a...)
	os.Exit(1)
}

func pct(xs []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

func sum(xs []time.Duration) (t time.Duration) {
	for _, x := range xs {
		t += x
	}
	return t
}

type side struct {
	wall, invoke []time.Duration
}

func main() {
	root := flag.String("root", ".", "the repository root")
	python := flag.String("python", ".deps/bench-venv/bin/python", "the competitor venv's python")
	out := flag.String("out", ".deps/bench/cascade.md", "where to write the markdown table")
	n := flag.Int("n", 30, "requests per side")
	fast := flag.Int("decode-min", 0, "also run people with params.decode_min = N (0: the JPEG decoded at full size; N: at the smallest DCT scale >= N x N); -1: not")
	alt := flag.String("plugin-alt", "", "also run people with this build of people-c (say, one from an older commit): a baseline in the same run")
	flag.Parse()
	r, err := filepath.Abs(*root)
	if err != nil {
		fatalf("%v", err)
	}
	if !filepath.IsAbs(*python) {
		*python = filepath.Join(r, *python)
	}
	cfg, err := config.Load(filepath.Join(r, "config.toml"))
	if err != nil {
		fatalf("%v", err)
	}
	p, ok := cfg.Pipelines["people"]
	if !ok {
		fatalf("no people pipeline in config.toml")
	}
	cfg.Pipelines = map[string]config.Pipeline{"people": p}
	if *fast >= 0 {
		f := p
		f.Pre.Params = map[string]any{}
		for k, v := range p.Pre.Params {
			f.Pre.Params[k] = v
		}
		f.Pre.Params["decode_min"] = *fast
		f.Post = f.Pre
		cfg.Pipelines["people-fast"] = f
	}
	if *alt != "" {
		a := p
		a.Pre.Path = *alt
		a.Post = a.Pre
		cfg.Pipelines["people-alt"] = a
	}
	models := map[string]config.Model{}
	for _, m := range append([]string{p.Model}, p.Pre.Grants.Models...) {
		models[m] = cfg.Models[m]
	}
	cfg.Models = models
	cfg.Runtime.CacheDir = ""
	e, err := engine.New(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		fatalf("%v", err)
	}
	defer e.Close(context.Background())
	imgPath := filepath.Join(r, ".deps/models/ssd_example.jpg")
	img, err := os.ReadFile(imgPath)
	if err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(*python, filepath.Join(r, "bench/people_chain.py"), "--models", filepath.Join(r, ".deps/models"), "--worker", imgPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = io.Discard
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		fatalf("python: %v", err)
	}
	defer func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	runPy := func() (wall, invoke time.Duration, objects int) {
		if _, err := io.WriteString(in, "run\n"); err != nil {
			fatalf("python: %v", err)
		}
		if !sc.Scan() {
			fatalf("python worker ended: %v", sc.Err())
		}
		var v struct {
			Wall    float64 `json:"wall_ms"`
			Invoke  float64 `json:"invoke_ms"`
			Objects int     `json:"objects"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			fatalf("python: %v: %s", err, sc.Bytes())
		}
		return time.Duration(v.Wall * 1e6), time.Duration(v.Invoke * 1e6), v.Objects
	}
	pipes := map[string]*engine.Pipeline{}
	for name := range cfg.Pipelines {
		pipes[name], _ = e.Pipeline(name)
	}
	callNanos := func() (t int64) {
		for _, m := range p.Pre.Grants.Models {
			if cs := e.ModelCalls(m); cs != nil {
				t += cs.Nanos.Load()
			}
		}
		return t
	}
	var copied, calls int
	var callTime, callInvoke time.Duration
	var preTime, inferTime, postTime time.Duration // people, as shipped: where the request's time went
	runEH := func(name string) (wall, invoke time.Duration, objects int) {
		pipe := pipes[name]
		c0 := callNanos()
		t0 := time.Now()
		var res []byte
		st, err := pipe.Pipeline.Run(context.Background(), bytes.NewReader(img), len(img), func(b []byte, _ string) error {
			res = b
			return nil
		})
		wall = time.Since(t0)
		if err != nil {
			fatalf("edgehost: %v", err)
		}
		copied += st.CopiedBytes
		ci := time.Duration(callNanos() - c0)
		if name == "people" {
			calls += st.ModelCalls
			callTime += st.ModelTime
			callInvoke += ci
			preTime, inferTime, postTime = preTime+st.Pre, inferTime+st.Infer, postTime+st.Post
		}
		return wall, st.Infer + ci, strings.Count(string(res), `"label":`)
	}
	for range 3 {
		for name := range pipes {
			runEH(name)
		}
		runPy()
	}
	calls, callTime, callInvoke, copied = 0, 0, 0, 0 // not the warm-up's
	preTime, inferTime, postTime = 0, 0, 0
	var eh, ehFast, ehAlt, py side
	var ehObj, fastObj, altObj, pyObj int
	for i := range *n {
		order := []func(){
			func() {
				w, v, o := runEH("people")
				eh.wall, eh.invoke, ehObj = append(eh.wall, w), append(eh.invoke, v), o
			},
			func() { w, v, o := runPy(); py.wall, py.invoke, pyObj = append(py.wall, w), append(py.invoke, v), o },
		}
		if pipes["people-fast"] != nil {
			order = append(order, func() {
				w, v, o := runEH("people-fast")
				ehFast.wall, ehFast.invoke, fastObj = append(ehFast.wall, w), append(ehFast.invoke, v), o
			})
		}
		if pipes["people-alt"] != nil {
			order = append(order, func() {
				w, v, o := runEH("people-alt")
				ehAlt.wall, ehAlt.invoke, altObj = append(ehAlt.wall, w), append(ehAlt.invoke, v), o
			})
		}
		for k := range order {
			order[(k+i)%len(order)]()
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "### Cascade `people` in process (%s, %s, load %s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), tflite.Probe(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&b, "ssd_example.jpg (1920×1280): ssd, then pose per person and mobilenet per other object; %d requests per side, interleaved.\n\n", *n)
	fmt.Fprintf(&b, "| chain | objects | p50 ms | p99 ms | invoke ms (mean) | not invoke | bytes copied (guest↔TFLite) |\n|---|---|---|---|---|---|---|\n")
	share := func(s side) string {
		return fmt.Sprintf("%.0f %%", 100*(1-float64(sum(s.invoke))/float64(sum(s.wall))))
	}
	fmt.Fprintf(&b, "| edgehost people as shipped (people-c, Wasm) | %d | %s | %s | %s | %s | %d |\n", ehObj, ms(pct(eh.wall, 0.5)), ms(pct(eh.wall, 0.99)), ms(sum(eh.invoke)/time.Duration(len(eh.invoke))), share(eh), copied)
	if len(ehFast.wall) > 0 {
		fmt.Fprintf(&b, "| edgehost people, decode_min = %d instead of the shipped %v | %d | %s | %s | %s | %s | — |\n", *fast, p.Pre.Params["decode_min"], fastObj, ms(pct(ehFast.wall, 0.5)), ms(pct(ehFast.wall, 0.99)), ms(sum(ehFast.invoke)/time.Duration(len(ehFast.invoke))), share(ehFast))
	}
	if len(ehAlt.wall) > 0 {
		fmt.Fprintf(&b, "| edgehost people, plugin %s | %d | %s | %s | %s | %s | — |\n", filepath.Base(*alt), altObj, ms(pct(ehAlt.wall, 0.5)), ms(pct(ehAlt.wall, 0.99)), ms(sum(ehAlt.invoke)/time.Duration(len(ehAlt.invoke))), share(ehAlt))
	}
	fmt.Fprintf(&b, "| Python chain (Pillow + ai-edge-litert) | %d | %s | %s | %s | %s | — |\n", pyObj, ms(pct(py.wall, 0.5)), ms(pct(py.wall, 0.99)), ms(sum(py.invoke)/time.Duration(len(py.invoke))), share(py))
	if calls > 0 {
		fmt.Fprintf(&b, "\nModel calls (as shipped): %d, %.1f per request; a call's time outside binding + invoke (grant and buffer checks, the wait for an interpreter): %.0f µs on average.\n",
			calls, float64(calls)/float64(len(eh.wall)), float64(callTime-callInvoke)/float64(calls)/1e3)
		n := time.Duration(len(eh.wall))
		fmt.Fprintf(&b, "\nStages (as shipped, wall-clock means): pre (decode + the detector's resize) %s ms, SSD invoke %s ms, post %s ms, of which model calls %s ms (their invokes %s ms): the plugin's own work in post (crops, JSON) %s ms.\n",
			ms(preTime/n), ms(inferTime/n), ms(postTime/n), ms(callTime/n), ms(callInvoke/n), ms((postTime-callTime)/n))
	}
	fmt.Fprintf(&b, "\np50 ratio edgehost / Python: %.2f", float64(pct(eh.wall, 0.5))/float64(pct(py.wall, 0.5)))
	if len(ehAlt.wall) > 0 {
		fmt.Fprintf(&b, "; with %s: %.2f", filepath.Base(*alt), float64(pct(ehAlt.wall, 0.5))/float64(pct(py.wall, 0.5)))
	}
	if len(ehFast.wall) > 0 {
		fmt.Fprintf(&b, "; with decode_min = %d: %.2f", *fast, float64(pct(ehFast.wall, 0.5))/float64(pct(py.wall, 0.5)))
	}
	b.WriteString("\n")
	os.Stdout.WriteString(b.String())
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		_ = os.WriteFile(*out, []byte(b.String()), 0o644)
	}
}

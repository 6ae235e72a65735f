package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// The implementations compared in process.
const (
	implC      = iota // imagepre-c (+ post plugin) through host/plugin, TFLite via host/tflite
	implGo            // imagepre-go (+ post plugin)
	implNative        // native Go decode+resize, TFLite via host/tflite
	implPy            // Pillow with draft + numpy, ai-edge-litert, in the Python worker
	nImpl
)

var implNames = [nImpl]string{"imagepre-c", "imagepre-go", "native Go", "Pillow+draft"}

type caseResult struct {
	w               workload
	pre, inv, total [nImpl][]sample
	mad             [nImpl]float64 // mean |tensor − Pillow's| in pixel units
	pipelineChecked bool
	zeroCopy        bool
	inShape         []int
	inType          abi.DType
}

// Plugin settings for the bench: the Go plugin can take longer than the 1 s default budget on
// the 12 Mpx frame on a loaded machine, so the bench raises budgets to measure speed rather
// than budget enforcement (the shipped config keeps its own).
const (
	benchTimeout = 120 * time.Second
	preCMemory   = 256 << 20
	preGoMemory  = 512 << 20
	postMemory   = 64 << 20
)

func benchInProcess(ctx context.Context, s settings) []*caseResult {
	ws := workloads(s.root)
	if s.workloads != nil {
		ws = slices.DeleteFunc(ws, func(w workload) bool { return !s.workloads.MatchString(w.name) })
		if len(ws) == 0 {
			fatalf("-workloads %q matches no workload", s.workloads)
		}
	}
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		fatalf("%v", err)
	}
	defer rt.Close(ctx)
	wasm := func(name string) string { return filepath.Join(s.root, "plugins/examples", name, name+".wasm") }
	load := func(cfg plugin.Config) *plugin.Module {
		m, err := rt.Load(ctx, cfg)
		if err != nil {
			fatalf("%v", err)
		}
		return m
	}
	logf("loading plugins and models")
	preC := load(plugin.Config{Path: wasm("imagepre-c"), WantKind: abi.KindPre, MemoryLimit: preCMemory, Timeout: benchTimeout,
		Params: map[string]any{"mean": 127.5, "std": 127.5}})
	preGo := load(plugin.Config{Path: wasm("imagepre-go"), WantKind: abi.KindPre, MemoryLimit: preGoMemory, Timeout: benchTimeout,
		Params: map[string]any{"mean": 127.5, "std": 127.5}})
	posts := map[string]*plugin.Module{}
	post := func(w workload, name string) *plugin.Module {
		if name == "" {
			return nil
		}
		key := name + "/" + w.post
		if posts[key] == nil {
			posts[key] = load(plugin.Config{Path: wasm(name), WantKind: abi.KindPost, MemoryLimit: postMemory, Timeout: benchTimeout, Params: w.postParams})
		}
		return posts[key]
	}
	models := map[string]*tflite.Model{}
	sets := make([]setup, len(ws))
	ins := make([][]tflite.TensorInfo, len(ws))
	res := make([]*caseResult, len(ws))
	for i, w := range ws {
		st := &sets[i]
		if st.img, err = os.ReadFile(w.image); err != nil {
			fatalf("%v (run make bench-data)", err)
		}
		if models[w.model] == nil {
			// As the shipped config.toml: 1 thread, XNNPACK.
			if models[w.model], err = tflite.LoadModel(w.model, tflite.Options{Threads: 1, XNNPACK: true}); err != nil {
				fatalf("%v", err)
			}
		}
		st.m = models[w.model]
		ins[i] = st.m.Inputs
		st.postC, st.postG = post(w, w.postC), post(w, w.postGo)
		if st.c, err = newEHWorker(ctx, st.m, preC, st.postC); err != nil {
			fatalf("%s: %v", w.name, err)
		}
		if st.g, err = newEHWorker(ctx, st.m, preGo, st.postG); err != nil {
			fatalf("%s: %v", w.name, err)
		}
		if st.nat, err = st.m.NewInterpreter(); err != nil {
			fatalf("%v", err)
		}
		in := st.m.Inputs[0]
		res[i] = &caseResult{w: w, zeroCopy: st.c.zeroCopy, inShape: in.Shape, inType: in.Type}
	}
	defer func() {
		for _, st := range sets {
			st.c.close(ctx)
			st.g.close(ctx)
			st.nat.Close()
		}
		for _, m := range models {
			m.Close()
		}
	}()
	logf("starting the Python worker (Pillow + ai-edge-litert)")
	py, err := startPyWorker(s.python, s.root, ws, ins)
	if err != nil {
		fatalf("%v", err)
	}
	defer py.close()

	// Check that every implementation does the same job: tensors against Pillow's, and the
	// bench's worker against host/pipeline itself. These calls also warm everything up.
	tmp, err := os.MkdirTemp("", "ehbench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	for i, w := range ws {
		st, r := &sets[i], res[i]
		logf("checking %s", w.name)
		ref, err := py.dump(i, filepath.Join(tmp, "t.raw"))
		if err != nil {
			fatalf("%v", err)
		}
		if _, _, err := py.run(i, true); err != nil {
			fatalf("python %s: %v", w.name, err)
		}
		for impl, wk := range map[int]*ehWorker{implC: st.c, implGo: st.g} {
			t, err := wk.tensor(ctx, st.img)
			if err != nil {
				fatalf("%s %s: %v", implNames[impl], w.name, err)
			}
			r.mad[impl] = mad(t, ref, r.inType)
		}
		nb := make([]byte, st.m.Inputs[0].Bytes)
		if err := nativePre(st.img, r.inShape[2], r.inShape[1], w.float, nb); err != nil {
			fatalf("native %s: %v", w.name, err)
		}
		r.mad[implNative] = mad(nb, ref, r.inType)
		if w.post != "" {
			for _, x := range []struct {
				wk  *ehWorker
				pre *plugin.Module
			}{{st.c, preC}, {st.g, preGo}} {
				q, err := x.wk.run(ctx, st.img)
				if err != nil {
					fatalf("%s: %v", w.name, err)
				}
				postMod := st.postC
				if x.wk == st.g {
					postMod = st.postG
				}
				if err := checkAgainstPipeline(ctx, st.m, x.pre, postMod, st.img, q.res); err != nil {
					fatalf("%s: %v", w.name, err)
				}
			}
			r.pipelineChecked = true
		}
	}

	logf("in process: %d rounds × %d workloads × %d implementations, interleaved", s.rounds, len(ws), nImpl)
	for round := range s.rounds {
		t0 := time.Now()
		for i, w := range ws {
			st, r := &sets[i], res[i]
			for k := range nImpl {
				impl := (k + round + i) % nImpl // rotate the order every round
				var pre, inv, total sample
				var err error
				switch impl {
				case implC, implGo:
					wk := st.c
					if impl == implGo {
						wk = st.g
					}
					var q request
					q, err = wk.run(ctx, st.img)
					pre, inv, total = q.pre, q.inv, q.total
				case implNative:
					pre, inv, err = st.nativeRequest(w, r)
					total = pre.add(inv)
				case implPy:
					pre, inv, err = py.run(i, true)
					total = pre.add(inv)
				}
				if err != nil {
					fatalf("%s %s: %v", implNames[impl], w.name, err)
				}
				r.pre[impl] = append(r.pre[impl], pre)
				r.inv[impl] = append(r.inv[impl], inv)
				r.total[impl] = append(r.total[impl], total)
			}
		}
		logf("round %d/%d: %.1f s", round+1, s.rounds, time.Since(t0).Seconds())
	}
	return res
}

// setup is one workload's implementations, built once.
type setup struct {
	img          []byte
	m            *tflite.Model
	c, g         *ehWorker
	nat          *tflite.Interpreter
	postC, postG *plugin.Module
}

// nativeRequest: native Go pre-processing straight into a plain interpreter's input
// tensor, then invoke (no post: its cost is negligible next to these).
func (st *setup) nativeRequest(w workload, r *caseResult) (pre, inv sample, err error) {
	k := start()
	if err = nativePre(st.img, r.inShape[2], r.inShape[1], w.float, st.nat.Input(0)); err != nil {
		return
	}
	pre = k.stop()
	k = start()
	err = st.nat.Invoke()
	inv = k.stop()
	return
}

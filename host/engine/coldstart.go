package engine

import (
	"context"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
)

// Cold start on the interpreter (RATIONALE.md, "Cold start: interpreter first"): New builds a pipeline whose plugins are not in the compilation cache
// on wazero's interpreter, which is ready in milliseconds, and startUpgrades compiles them
// in the background and swaps each pipeline onto its compiled plugins as a hot reload does
// (Prepare, golden input, Commit): requests in flight finish on the interpreter version,
// which is closed once they drain.

// wasmEngine is the engine that runs p's plugins now: "interpreter" while one of them is
// on the provisional interpreter, else the runtime's engine.
func (p *Pipeline) wasmEngine(rt *plugin.Runtime) string {
	if p.Pre.Interpreted() || p.Post.Interpreted() {
		return plugin.EngineInterpreter
	}
	return rt.Engine()
}

// startUpgrades starts, for every pipeline of names running on the provisional
// interpreter, the compile of its plugins and the swap; at most one compile per core, the
// pipelines with the smallest plugins first (the most pipelines at full speed soonest).
func (e *Engine) startUpgrades(names []string) {
	e.upgraded = make(chan struct{})
	type job struct {
		p    *Pipeline
		size int64
	}
	var jobs []job
	for _, name := range names {
		p, ok := e.Pipeline(name)
		if !ok || (!p.Pre.Interpreted() && !p.Post.Interpreted()) {
			continue
		}
		var size int64
		for _, path := range []string{p.Config.Pre.Path, p.Config.Post.Path} {
			if fi, err := os.Stat(path); err == nil {
				size += fi.Size()
			}
		}
		jobs = append(jobs, job{p, size})
	}
	if len(jobs) == 0 {
		close(e.upgraded)
		return
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].size < jobs[j].size })
	ctx, cancel := context.WithCancel(context.Background())
	e.upgradeStop = cancel
	e.upgrading.Store(int32(len(jobs)))
	e.log.Info("serving on wazero's interpreter until the plugins are compiled", "pipelines", len(jobs))
	start := time.Now()
	// A channel of jobs in order, taken by one goroutine per core, keeps the order.
	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	for n := 0; n < min(len(jobs), max(1, runtime.GOMAXPROCS(0))); n++ {
		e.upgrades.Add(1)
		go func() {
			defer e.upgrades.Done()
			for j := range queue {
				e.upgrade(ctx, j.p)
				if e.upgrading.Add(-1) == 0 {
					e.log.Info("every pipeline runs compiled plugins", "after", time.Since(start).Round(time.Millisecond))
					close(e.upgraded)
				}
			}
		}()
	}
}

// upgrade compiles the plugins of p (as it was built on the interpreter) and swaps them in,
// unless a reload replaced them meanwhile (the reload's version is compiled already).
func (e *Engine) upgrade(ctx context.Context, p *Pipeline) {
	if ctx.Err() != nil {
		return
	}
	t0 := time.Now()
	// The same bytes and params as the interpreted version (a file changed meanwhile is a
	// reload's business, which replaces the version this would).
	recompile := func(m *plugin.Module) (*plugin.Module, error) {
		if !m.Interpreted() {
			m.Retain()
			return m, nil
		}
		return e.rt.Recompile(ctx, m)
	}
	pre, err := recompile(p.Pre)
	var post *plugin.Module
	if err == nil {
		if p.Post == p.Pre { // shared_instance: one module serves both calls
			pre.Retain()
			post = pre
		} else if post, err = recompile(p.Post); err != nil {
			pre.Release(context.Background())
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("compiling the plugins failed: the pipeline stays on the interpreter", "pipeline", p.Name, "error", err)
		}
		return
	}
	defer func() {
		// The installed version holds its own references.
		pre.Release(context.Background())
		post.Release(context.Background())
	}()
	if e.swapGate != nil {
		select {
		case <-e.swapGate:
		case <-ctx.Done():
			return
		}
	}
	closed, ok := e.swapCompiled(ctx, p, pre, post)
	if !ok {
		return
	}
	// WaitCompiled means the interpreter versions are gone too (serve then hands their
	// memory back): wait for their requests in flight to drain.
	select {
	case <-closed:
	case <-ctx.Done():
	}
	e.log.Info("pipeline runs compiled plugins", "pipeline", p.Name, "compile_and_swap", time.Since(t0).Round(time.Millisecond))
}

// swapCompiled installs pre and post in p, unless a reload replaced p's plugins meanwhile.
func (e *Engine) swapCompiled(ctx context.Context, p *Pipeline, pre, post *plugin.Module) (<-chan struct{}, bool) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if ctx.Err() != nil {
		return nil, false
	}
	cur, ok := e.Pipeline(p.Name)
	if !ok || cur.Pipeline != p.Pipeline || cur.Pre != p.Pre || cur.Post != p.Post {
		e.log.Debug("compiled plugins not swapped in: the pipeline was reloaded meanwhile", "pipeline", p.Name)
		return nil, false
	}
	m, ok := e.Model(cur.ModelName)
	if !ok {
		return nil, false
	}
	spec := e.spec(cur.Name, cur.Config, m, pre, post)
	// The same plugin bytes on another engine: no probation (the interpreter version would
	// be kept for rollback, memory for nothing).
	spec.Probation = pipeline.Probation{}
	closed, err := e.installSpec(ctx, cur, cur.Config, pre, post, spec)
	if err != nil {
		e.log.Warn("swapping in the compiled plugins failed: the pipeline stays on the interpreter", "pipeline", p.Name, "error", err)
		return nil, false
	}
	return closed, true
}

// stopUpgrades cancels the compiles in progress and waits for them.
func (e *Engine) stopUpgrades() {
	if e.upgradeStop != nil {
		e.upgradeStop()
	}
	e.upgrades.Wait()
}

// WaitCompiled waits until every pipeline that started on the interpreter runs compiled
// plugins (or failed to get them, which is logged), or ctx ends.
func (e *Engine) WaitCompiled(ctx context.Context) error {
	if e.upgraded == nil {
		return nil
	}
	select {
	case <-e.upgraded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Interpreted is the number of pipelines still waiting for their compiled plugins.
func (e *Engine) Interpreted() int { return int(e.upgrading.Load()) }

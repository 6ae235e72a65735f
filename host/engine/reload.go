package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/internal/safefile"
)

// Reloads go through one lock so that two changes never race; requests never take it.

// spec builds a pipeline spec from config with the given modules and model. The spec holds
// the current versions of the models its plugins may call (pipeline.Spec.Calls): the
// pipeline version built from it owns them.
func (e *Engine) spec(name string, pc config.Pipeline, m *Model, pre, post *plugin.Module) pipeline.Spec {
	var calls *pipeline.CallSet
	if g := grantedModels(pc); len(g) > 0 {
		calls = e.calls.Acquire(g)
	}
	return pipeline.Spec{Name: name, Model: m.Model, Pre: pre, Post: post, Workers: pc.Workers, Calls: calls,
		QueueTimeout: pc.QueueTimeout.Duration, MaxModelCalls: pc.MaxModelCalls, SharedInstance: pc.SharedInstance,
		Probation: pipeline.Probation{Requests: *pc.RollbackWindow, MaxFailShare: *pc.RollbackTrapShare},
		Sequences: pipeline.SequenceLimits{Max: pc.Sequences.Max, IdleTimeout: pc.Sequences.IdleTimeout.Duration}}
}

// grantedModels names the models a pipeline's plugins may call.
func grantedModels(pc config.Pipeline) []string {
	var out []string
	for _, n := range append(append([]string(nil), pc.Pre.Grants.Models...), pc.Post.Grants.Models...) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// callsCurrent reports whether p's serving version calls the current version of every
// model its plugins may call.
func (e *Engine) callsCurrent(p *Pipeline) bool {
	cs := p.Pipeline.Spec().Calls
	for _, n := range grantedModels(p.Config) {
		if cs.Model(n) != e.calls.Current(n) {
			return false
		}
	}
	return true
}

// golden runs the pipeline's golden input, if any, on a prepared version.
func golden(ctx context.Context, pc config.Pipeline, v *pipeline.Version) error {
	if pc.GoldenInput == "" {
		return nil
	}
	in, err := safefile.ReadFile(pc.GoldenInput, safefile.MaxGolden)
	if err != nil {
		return fmt.Errorf("golden input: %w", err)
	}
	var got []byte
	if _, err := v.Run(ctx, bytes.NewReader(in), len(in), func(b []byte, _ string) error {
		got = append(got, b...)
		return nil
	}); err != nil {
		return fmt.Errorf("golden input %s failed: %w", pc.GoldenInput, err)
	}
	if pc.GoldenExpectFile != "" {
		want, err := safefile.ReadFile(pc.GoldenExpectFile, safefile.MaxGolden)
		if err != nil {
			return fmt.Errorf("golden expect file: %w", err)
		}
		if !bytes.Equal(bytes.TrimRight(got, "\n"), bytes.TrimRight(want, "\n")) {
			return fmt.Errorf("golden input %s: result %.200q differs from %s", pc.GoldenInput, got, pc.GoldenExpectFile)
		}
	}
	if pc.GoldenExpectContains != "" && !strings.Contains(string(got), pc.GoldenExpectContains) {
		return fmt.Errorf("golden input %s: result %.200q does not contain %q", pc.GoldenInput, got, pc.GoldenExpectContains)
	}
	return nil
}

// install prepares, checks and commits a new version of pipeline p. On any error the
// current version keeps serving.
func (e *Engine) install(ctx context.Context, p *Pipeline, pc config.Pipeline, m *Model, pre, post *plugin.Module) (<-chan struct{}, error) {
	if err := checkFrames(pc, pre); err != nil {
		return nil, err
	}
	return e.installSpec(ctx, p, pc, pre, post, e.spec(p.Name, pc, m, pre, post))
}

// installSpec is install with the spec built (and the frames checked) by the caller.
func (e *Engine) installSpec(ctx context.Context, p *Pipeline, pc config.Pipeline, pre, post *plugin.Module, spec pipeline.Spec) (<-chan struct{}, error) {
	v, err := p.Pipeline.Prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := golden(ctx, pc, v); err != nil {
		v.Discard(ctx)
		return nil, err
	}
	closed := p.Pipeline.Commit(v)
	e.errs.set("pipeline:"+p.Name, nil) // a good version serves: earlier errors are history
	e.mu.Lock()
	np := *p
	np.Config, np.Pre, np.Post, np.ModelName = pc, pre, post, pc.Model
	e.pipelines[p.Name] = &np
	e.mu.Unlock()
	return closed, nil
}

// ReloadFile reacts to a change of a watched file: the config, a model, a plugin or a
// params file. It never breaks what serves: a failure is logged, counted and shown in
// Status, and the old version keeps serving.
func (e *Engine) ReloadFile(ctx context.Context, path string) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cfg := e.Config()
	if path == cfg.File {
		e.applyConfigFile(ctx)
		return
	}
	// A config that could not be applied in full (a file it names was missing or broken) is
	// applied again once any file it names changes: the file it waited for may be this one.
	defer func() {
		if e.incomplete.Load() {
			e.log.Info("retrying the config: a file it names changed", "file", path)
			e.applyConfigFile(ctx)
		}
	}()
	for _, name := range cfg.ModelNames() {
		if cfg.Models[name].Path == path {
			e.reloadModel(ctx, name)
		}
	}
	for _, p := range e.Pipelines() {
		if slices.Contains(p.Config.Files(), path) {
			e.reloadPipelinePlugins(ctx, p, path)
		}
	}
}

func (e *Engine) failed(key, what string, err error) {
	e.reloadFailures.Add(1)
	e.errs.set(key, err)
	e.log.Error("reload rejected; the previous version keeps serving", "what", what, "error", err)
}

// reloadPipelinePlugins reloads whichever of p's plugins changed (by content hash).
func (e *Engine) reloadPipelinePlugins(ctx context.Context, p *Pipeline, path string) {
	pc := p.Config
	requireSig := pc.RequireSignatures || e.Config().Trust.RequireSignatures
	load := func(cur *plugin.Module, c config.Plugin, kind abi.Kind) (*plugin.Module, bool, error) {
		if !slices.Contains(c.Files(), path) || path == c.Path && fileHash(path) == cur.Hash {
			return cur, false, nil // not this plugin's file, or touched with the same bytes
		}
		m, err := e.loadPlugin(ctx, c, kind, requireSig, false)
		if err != nil {
			return nil, false, err
		}
		return m, true, nil
	}
	preKind := abi.KindPre
	if pc.SharedInstance {
		preKind = abi.KindBoth
	}
	pre, newPre, err := load(p.Pre, pc.Pre, preKind)
	if err != nil {
		e.failed(pc.Pre.Path, "pipeline "+p.Name+" pre plugin", err)
		return
	}
	post, newPost := pre, false // a shared instance: the one module serves both calls
	if !pc.SharedInstance {
		post, newPost, err = load(p.Post, pc.Post, abi.KindPost)
	}
	if err != nil {
		if newPre {
			pre.Release(ctx)
		}
		e.failed(pc.Post.Path, "pipeline "+p.Name+" post plugin", err)
		return
	}
	if !newPre && !newPost && p.Config.GoldenInput != path && p.Config.GoldenExpectFile != path {
		return
	}
	m, ok := e.Model(pc.Model)
	if !ok {
		return
	}
	_, err = e.install(ctx, p, pc, m, pre, post)
	// install's generation holds its own references; drop the ones Load gave us.
	if newPre {
		pre.Release(ctx)
	}
	if newPost {
		post.Release(ctx)
	}
	if err != nil {
		e.failed(path, "pipeline "+p.Name, err)
		return
	}
	e.reloads.Add(1)
	e.errs.set(path, nil)
	e.errs.set(pc.Pre.Path, nil)
	e.errs.set(pc.Post.Path, nil)
	e.log.Info("plugin swapped in", "pipeline", p.Name, "pre", pre.Name(), "post", post.Name(), "pre_hash", pre.Hash[:12], "post_hash", post.Hash[:12])
}

// reloadModel loads a changed model and moves every pipeline that uses it onto it.
func (e *Engine) reloadModel(ctx context.Context, name string) {
	old, ok := e.Model(name)
	if !ok {
		return
	}
	if h := fileHash(old.Config.Path); h == old.Hash || h == "" {
		return
	}
	m, err := e.loadModel(name, old.Config)
	if err != nil {
		e.failed(old.Config.Path, "model "+name, err)
		return
	}
	e.likeOld(m, old)
	// Plugins' calls of the model move with the pipelines that make them: the new version
	// is current for the versions built from here on; each pipeline that calls it is
	// prepared on it, checked (golden) and swapped in like any other reload.
	e.setCalls(name, m)
	var waits []<-chan struct{}
	for _, p := range e.Pipelines() {
		if p.ModelName != name && !slices.Contains(grantedModels(p.Config), name) {
			continue
		}
		pm := m
		if p.ModelName != name {
			if pm, ok = e.Model(p.ModelName); !ok {
				continue
			}
		}
		closed, err := e.install(ctx, p, p.Config, pm, p.Pre, p.Post)
		if err != nil {
			// Pipelines already moved keep the new model; this one keeps the old, and so do
			// the pipelines built from here on.
			e.failed(old.Config.Path, "pipeline "+p.Name+" on the new model", err)
			e.errs.set("pipeline:"+p.Name, err)
			e.setCalls(name, old)
			m.Pool.Close()
			m.Model.Close()
			return
		}
		waits = append(waits, closed)
	}
	e.mu.Lock()
	e.models[name] = m
	e.mu.Unlock()
	e.reloads.Add(1)
	e.errs.set(old.Config.Path, nil)
	e.log.Info("model swapped in", "model", name, "hash", m.Hash[:12])
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		for _, w := range waits {
			<-w
		}
		old.Pool.Close()
		old.Model.Close()
	}()
}

// likeOld builds the idle interpreter of a new model version before it serves when the
// version it replaces had built one (it was serving requests alone): otherwise the first
// lone request after the swap would start building it, and that build (tens of ms of CPU)
// would compete with the requests that follow, a stream's frames say.
func (e *Engine) likeOld(m, old *Model) {
	if old.Model.HasIdle() {
		if err := m.Model.PrepareIdle(); err != nil {
			e.log.Warn("the new model version's idle interpreter could not be built", "model", m.Name, "error", err)
		}
	}
}

// applyConfigFile reads the config again and applies it pipeline by pipeline. A config
// that does not parse or validate changes nothing.
func (e *Engine) applyConfigFile(ctx context.Context) {
	cur := e.Config()
	next, err := config.Load(cur.File)
	if err != nil {
		e.failed(cur.File, "config", err)
		return
	}
	if err := e.syncSources(ctx, next); err != nil { // a failing source fails its pipeline below
		e.log.Error("registry artifacts of the new config", "error", err)
	}
	if !reflect.DeepEqual(next.Server, cur.Server) || !reflect.DeepEqual(next.Log, cur.Log) || !reflect.DeepEqual(next.Runtime, cur.Runtime) {
		e.log.Warn("changes to [server], [log] and [runtime] take effect at the next restart")
	}
	var errs []error
	// Models: new ones are loaded; changed ones reloaded (their pipelines move with them).
	for _, name := range next.ModelNames() {
		mc := next.Models[name]
		if old, ok := e.Model(name); ok && reflect.DeepEqual(old.Config, mc) {
			continue
		}
		m, err := e.loadModel(name, mc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if old, ok := e.Model(name); ok {
			e.likeOld(m, old)
		}
		e.mu.Lock()
		oldM := e.models[name]
		e.models[name] = m
		e.mu.Unlock()
		e.setCalls(name, m)
		if oldM != nil {
			defer e.closeModelWhenUnused(oldM)
		}
	}
	e.mu.Lock()
	e.cfg = next
	e.mu.Unlock()
	// Pipelines: removed ones drain and close; new and changed ones are built and checked.
	for _, p := range e.Pipelines() {
		if _, ok := next.Pipelines[p.Name]; !ok {
			e.mu.Lock()
			delete(e.pipelines, p.Name)
			e.mu.Unlock()
			e.background.Add(1)
			go func() {
				defer e.background.Done()
				p.Pipeline.Close(context.Background())
			}()
			e.log.Info("pipeline removed", "pipeline", p.Name)
		}
	}
	for _, name := range next.PipelineNames() {
		pc := next.Pipelines[name]
		old, exists := e.Pipeline(name)
		m, _ := e.Model(pc.Model)
		if exists && sameButStream(old.Config, pc) && m != nil && old.Pipeline.Spec().Model == m.Model && e.callsCurrent(old) {
			// Only the camera stream changed (or nothing): the pipeline serves on; the stream
			// is restarted by syncStreams below.
			if !reflect.DeepEqual(old.Config.Stream, pc.Stream) {
				if err := checkFrames(pc, old.Pre); err != nil {
					e.errs.set("pipeline:"+name, err)
					errs = append(errs, fmt.Errorf("pipeline %s: %w", name, err))
					continue
				}
				e.mu.Lock()
				np := *old
				np.Config = pc
				e.pipelines[name] = &np
				e.mu.Unlock()
			}
			continue
		}
		var err error
		if exists {
			err = e.rebuild(ctx, old, pc)
		} else {
			var np *Pipeline
			if np, err = e.buildPipeline(ctx, name, pc, false); err == nil {
				e.mu.Lock()
				e.pipelines[name] = np
				e.mu.Unlock()
			}
		}
		if err != nil {
			e.errs.set("pipeline:"+name, err)
			errs = append(errs, fmt.Errorf("pipeline %s: %w", name, err))
		} else {
			e.errs.set("pipeline:"+name, nil)
		}
	}
	e.mu.Lock()
	e.configLoaded = timeNow()
	e.mu.Unlock()
	e.syncStreams()
	e.incomplete.Store(len(errs) > 0)
	if len(errs) > 0 {
		e.failed(cur.File, "config (partly applied: the failing pipelines keep their old version)", errors.Join(errs...))
		return
	}
	e.reloads.Add(1)
	e.errs.set(cur.File, nil)
	e.log.Info("config applied", "file", cur.File)
}

// sameButStream reports whether two pipeline tables differ at most in their stream.
func sameButStream(a, b config.Pipeline) bool {
	a.Stream, b.Stream = nil, nil
	return reflect.DeepEqual(a, b)
}

// configDrops reports whether the config at path parses and removes a pipeline or a model
// that is serving now.
func (e *Engine) configDrops(path string) bool {
	next, err := config.Load(path)
	if err != nil {
		return false
	}
	for _, p := range e.Pipelines() {
		if _, ok := next.Pipelines[p.Name]; !ok {
			return true
		}
	}
	for _, m := range e.Models() {
		if _, ok := next.Models[m.Name]; !ok {
			return true
		}
	}
	return false
}

// rebuild loads a pipeline's plugins again from pc and installs them.
func (e *Engine) rebuild(ctx context.Context, p *Pipeline, pc config.Pipeline) error {
	m, ok := e.Model(pc.Model)
	if !ok {
		return fmt.Errorf("model %q is not loaded", pc.Model)
	}
	pre, post, err := e.loadPlugins(ctx, pc, false)
	if err != nil {
		return err
	}
	defer pre.Release(ctx)
	defer post.Release(ctx)
	_, err = e.install(ctx, p, pc, m, pre, post)
	return err
}

// setCalls moves plugins' model calls of name onto m: calls in flight finish on the old
// version (its interpreters close as they come back), new calls take m.
func (e *Engine) setCalls(name string, m *Model) {
	if err := e.calls.Set(name, m.Model, m.Config.Workers); err != nil {
		e.log.Error("model calls stay on the previous version", "model", name, "error", err)
	}
}

// closeModelWhenUnused closes a replaced model once no pipeline version uses it.
func (e *Engine) closeModelWhenUnused(m *Model) {
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		for {
			used := false
			for _, p := range e.Pipelines() {
				if p.Pipeline.UsesModel(m.Model) {
					used = true
				}
			}
			if !used {
				m.Pool.Close()
				m.Model.Close()
				return
			}
			sleep()
		}
	}()
}

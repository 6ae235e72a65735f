package engine

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/stream"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/edgehost/edgehost/internal/safefile"
	"github.com/hashicorp/go-hclog"
)

// Engine is the running set of models and pipelines. Its methods are safe for concurrent use.
type Engine struct {
	log hclog.Logger
	rt  *plugin.Runtime

	errs           errorLog
	src            sources // registry artifacts (oci.go)
	reloadMu       sync.Mutex
	background     sync.WaitGroup // closes of replaced pipelines and models
	reloads        atomic.Int64
	reloadFailures atomic.Int64
	rollbacks      atomic.Int64
	incomplete     atomic.Bool // the last config applied had failures: retried when a file changes
	configLoaded   time.Time

	// calls are the models plugins run themselves (ABI §5.9), each with its own interpreter
	// pool; the runtime's model-call imports use it.
	calls *pipeline.Models

	mu        sync.RWMutex
	cfg       *config.Config
	models    map[string]*Model
	pipelines map[string]*Pipeline

	streams streams // camera streams (streams.go)

	// Pipelines that started on the interpreter get compiled plugins in the background
	// (coldstart.go); Close stops that first.
	upgradeStop context.CancelFunc
	upgrades    sync.WaitGroup
	upgrading   atomic.Int32  // pipelines still waiting for their compiled plugins
	upgraded    chan struct{} // closed when none is left
	swapGate    <-chan struct{}

	// Start builds in the background: started closes when it is done (startErr then set);
	// starting holds the pipelines not yet built (guarded by mu).
	started  chan struct{}
	startErr error
	starting map[string]bool
}

// Model is a loaded model with a pool of interpreters for bare-model requests.
type Model struct {
	Name     string
	Config   config.Model
	Model    *tflite.Model
	Pool     *tflite.Pool
	LoadedAt time.Time
	Hash     string // sha256 of the bytes loaded (the private copy)
}

// Pipeline is a serving pipeline and the plugin versions it runs.
type Pipeline struct {
	Name      string
	Config    config.Pipeline
	Pipeline  *pipeline.Pipeline
	Pre, Post *plugin.Module
	ModelName string
}

// New loads every model and pipeline of cfg. Any failure is an error; nothing is left open.
func New(ctx context.Context, cfg *config.Config, log hclog.Logger) (*Engine, error) {
	return NewWith(ctx, cfg, log, Options{})
}

// Options change how New starts.
type Options struct {
	// InterpreterFirst (serve, with wasm_engine = "auto" where wazero has a compiler):
	// plugins missing from the compilation cache start on wazero's interpreter, so that
	// the pipelines serve seconds sooner, and are compiled and swapped in in the background
	// (coldstart.go; WaitCompiled). Without it, New returns with every plugin compiled.
	InterpreterFirst bool

	// swapGate, when set (tests), holds every swap onto compiled plugins until it closes.
	swapGate <-chan struct{}
	// buildGate (tests) holds the build of the named pipelines until their channel closes.
	buildGate map[string]<-chan struct{}
}

// NewWith is New with options.
func NewWith(ctx context.Context, cfg *config.Config, log hclog.Logger, o Options) (*Engine, error) {
	e, err := Start(ctx, cfg, log, o)
	if err != nil {
		return nil, err
	}
	if err := e.WaitStarted(); err != nil {
		e.Close(ctx)
		return nil, err
	}
	return e, nil
}

// Start is NewWith without waiting for the pipelines: it returns once the runtime exists
// and the models and pipelines are loading, and each pipeline is served (Pipeline finds it)
// as soon as it is built, while the others still are (RATIONALE.md, "Cold start:
// interpreter first", second round). Until then Starting reports it. WaitStarted returns
// when every one is built, or with the error NewWith would have returned; the caller then
// closes the engine (Close waits for the start to end first).
func Start(ctx context.Context, cfg *config.Config, log hclog.Logger, o Options) (*Engine, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	engine := cfg.Runtime.WasmEngine
	if engine == "auto" {
		engine = plugin.EngineAuto
	}
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{CacheDir: cfg.Runtime.CacheDir, CacheKeyFile: cfg.Runtime.CacheKeyFile, Logger: log, Engine: engine})
	if err != nil {
		return nil, err
	}
	e := &Engine{log: log, rt: rt, cfg: cfg, models: map[string]*Model{}, pipelines: map[string]*Pipeline{}, configLoaded: time.Now(),
		calls: pipeline.NewModels()}
	rt.SetModelRunner(e.calls)
	e.streams.hub = stream.NewHub()
	if err := e.syncSources(ctx, cfg); err != nil {
		_ = rt.Close(ctx)
		return nil, err
	}
	caps := tflite.Probe()
	log.Info("tflite library", "version", caps.Version, "xnnpack", caps.XNNPACK, "custom_allocation", caps.CustomAllocation)
	if !caps.CustomAllocation {
		log.Warn("this TFLite library cannot bind tensors in guest memory: pipelines copy each tensor once")
	}
	// Pipelines are independent: build them in parallel (compiling and instantiating plugins
	// is most of the start), at most one per core. Their plugins load while the models do
	// (a plugin needs no model, except one that may call models: its init may ask for them);
	// each pipeline is then built once every model is loaded.
	// The first error in config order wins and every pipeline that was built is closed.
	// A plugin whose compiled code is not in cache_dir may start on the interpreter and be
	// compiled in the background (coldstart.go): the first requests are answered seconds
	// sooner. Only with wasm_engine = "auto": "compiler" asks for compiled code from the start.
	quick := o.InterpreterFirst && cfg.Runtime.WasmEngine == "auto" && rt.Engine() == plugin.EngineCompiler
	names := cfg.PipelineNames()
	e.starting = map[string]bool{}
	for _, name := range names {
		e.starting[name] = true
	}
	e.started = make(chan struct{})
	e.swapGate = o.swapGate
	go func() {
		defer close(e.started)
		e.startErr = e.build(ctx, cfg, names, quick, o.buildGate)
	}()
	return e, nil
}

// build loads the models and builds the pipelines of a Start, publishing each pipeline as
// soon as it is built.
func (e *Engine) build(ctx context.Context, cfg *config.Config, names []string, quick bool, gate map[string]<-chan struct{}) error {
	defer func() {
		e.mu.Lock()
		e.starting = nil // built, or the start failed: nothing is starting any more
		e.mu.Unlock()
	}()
	built := make([]*Pipeline, len(names))
	errs := make([]error, len(names))
	// Each pipeline waits only for the models it uses (its own, and those its plugins may
	// call), not for every model: the first pipelines serve while later models load.
	type modelWait struct {
		done chan struct{} // closed once the model is loaded, or never will be
		ok   bool          // written before done closes
	}
	modelDone := map[string]*modelWait{} // not changed once the goroutines start
	for _, n := range cfg.ModelNames() {
		modelDone[n] = &modelWait{done: make(chan struct{})}
	}
	waitModels := func(names ...string) bool {
		for _, n := range names {
			w := modelDone[n]
			if w == nil {
				return false
			}
			<-w.done
			if !w.ok {
				return false
			}
		}
		return true
	}
	var modelsErr error // read once every goroutine is done
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := cfg.Pipelines[name]
			if g := gate[name]; g != nil {
				<-g
			}
			granted := grantedModels(pc)
			// The plugin's init may ask for the models it may call.
			if !waitModels(granted...) {
				errs[i] = fmt.Errorf("pipeline %s: a model its plugins may call did not load", name)
				return
			}
			sem <- struct{}{}
			pre, post, err := e.loadPlugins(ctx, pc, quick)
			<-sem
			if err != nil {
				errs[i] = fmt.Errorf("pipeline %s: %w", name, err)
				return
			}
			if !waitModels(append(granted, pc.Model)...) {
				pre.Release(ctx)
				post.Release(ctx)
				errs[i] = fmt.Errorf("pipeline %s: model %q did not load", name, pc.Model)
				return
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			built[i], errs[i] = e.assemblePipeline(ctx, name, pc, pre, post)
			if errs[i] == nil {
				e.mu.Lock()
				e.pipelines[name] = built[i] // served from now on
				delete(e.starting, name)
				e.mu.Unlock()
			}
		}()
	}
	for _, name := range cfg.ModelNames() {
		m, err := e.loadModel(name, cfg.Models[name])
		if err == nil {
			e.mu.Lock()
			e.models[name] = m
			e.mu.Unlock()
			if err = e.calls.Set(name, m.Model, m.Config.Workers); err != nil {
				err = fmt.Errorf("model %s: %w", name, err)
			}
		}
		if err != nil {
			modelsErr = err
			break
		}
		modelDone[name].ok = true
		close(modelDone[name].done)
	}
	for _, w := range modelDone {
		if !w.ok {
			close(w.done) // a model that failed, and those after it: never loaded
		}
	}
	wg.Wait()
	if modelsErr != nil {
		return modelsErr
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if n := e.rt.PruneCache(); n > 0 {
		e.log.Info("compilation cache pruned", "removed", n, "dir", cfg.Runtime.CacheDir)
	}
	e.startUpgrades(names)
	return nil
}

// WaitStarted waits until Start has built every pipeline; it returns the first error in
// config order (a model or a pipeline that failed), as NewWith would have. It may be
// called any number of times.
func (e *Engine) WaitStarted() error {
	if e.started == nil {
		return nil
	}
	<-e.started
	return e.startErr
}

// Starting reports whether name is a configured pipeline that Start is still building
// (not yet served).
func (e *Engine) Starting(name string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.starting[name]
}

func (e *Engine) loadModel(name string, mc config.Model) (*Model, error) {
	opts := tflite.Options{Threads: mc.Threads, IdleThreads: mc.IdleThreadCount(), XNNPACK: *mc.XNNPACK,
		Warn: func(msg string, kv ...any) { e.log.Warn(msg, append([]any{"model", name}, kv...)...) }}
	if mc.Delegate != nil {
		opts.Delegate = &tflite.ExternalOptions{Path: mc.Delegate.Path, Options: mc.Delegate.Options}
	}
	opts.LiteRT = LiteRTOptions(e.Config().Runtime, mc)
	if opts.LiteRT != nil {
		e.log.Info("compiling model for its accelerator", "model", name, "accelerator", mc.Accelerator, "cache_dir", opts.LiteRT.CacheDir)
	}
	m, err := tflite.LoadModel(mc.Path, opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	// The interpreters for bare-model requests are built on the first such request when a
	// pipeline uses the model (its workers have their own interpreters, built at start, and
	// the probe process built one): an idle bare pool would hold 7-14 MiB per interpreter.
	eager := 1
	for _, pn := range e.Config().PipelineNames() {
		if e.Config().Pipelines[pn].Model == name {
			eager = 0
			break
		}
	}
	pool, err := tflite.NewPool(m, mc.Workers, eager)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	kv := []any{"model", name, "path", mc.Path, "inputs", fmt.Sprint(m.Inputs), "outputs", fmt.Sprint(m.Outputs), "backend", m.Backend().String()}
	if eager == 0 {
		kv = append(kv, "bare_interpreters", "built on first request (the pipelines' log their delegates)")
	} else if it, err := pool.Get(context.Background()); err == nil {
		kv = append(kv, "delegates", fmt.Sprint(it.Delegates()))
		pool.Put(it)
	}
	e.log.Info("model loaded", kv...)
	return &Model{Name: name, Config: mc, Model: m, Pool: pool, LoadedAt: time.Now(), Hash: m.Hash}, nil
}

// loadPlugin compiles and validates one plugin of a pipeline.
// With quick, a plugin whose compiled code is not cached is compiled for the interpreter
// (plugin.Config.InterpretUncached).
func (e *Engine) loadPlugin(ctx context.Context, pc config.Plugin, kind abi.Kind, requireSig, quick bool) (*plugin.Module, error) {
	params, err := pc.ResolveParams()
	if err != nil {
		return nil, &plugin.LoadError{Path: pc.Path, Err: err}
	}
	keys, err := TrustedKeys(e.Config().Trust)
	if err != nil {
		return nil, err
	}
	b, err := safefile.ReadFile(pc.Path, safefile.MaxPlugin)
	if err != nil {
		return nil, &plugin.LoadError{Path: pc.Path, Err: err}
	}
	return e.rt.LoadBytes(ctx, plugin.Config{Path: pc.Path, Params: params, WantKind: kind,
		MemoryLimit: uint64(pc.MemoryLimitMB) << 20, Timeout: time.Duration(pc.TimeoutMS) * time.Millisecond,
		BudgetClock: budgetClock(pc.BudgetClock), InterpretUncached: quick,
		Grants: PluginGrants(pc.Grants), TrustedKeys: keys, RequireSignature: requireSig}, b)
}

// budgetClock maps the config's budget_clock ("wall", "cpu") to the plugin's.
func budgetClock(s string) plugin.BudgetClock {
	if s == "cpu" {
		return plugin.BudgetCPU
	}
	return plugin.BudgetWall
}

// PluginGrants converts config grants to plugin grants.
func PluginGrants(g config.Grants) plugin.Grants {
	return plugin.Grants{Dirs: g.Dirs, Env: g.Env, Clock: g.Clock, Random: g.Random, Stdout: g.Stdout, Models: g.Models}
}

// TrustedKeys reads the public keys of [trust].
func TrustedKeys(t config.Trust) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for i, k := range t.Keys {
		pk, err := plugin.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trust.keys[%d]: %w", i, err)
		}
		keys = append(keys, pk)
	}
	for _, f := range t.KeyFiles {
		b, err := safefile.ReadFile(f, safefile.MaxKey)
		if err != nil {
			return nil, fmt.Errorf("trust.key_files: %w", err)
		}
		pk, err := plugin.ParsePublicKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("trust.key_files: %s: %w", f, err)
		}
		keys = append(keys, pk)
	}
	return keys, nil
}

// loadPlugins loads both plugins of a pipeline; the caller releases them.
func (e *Engine) loadPlugins(ctx context.Context, pc config.Pipeline, quick bool) (pre, post *plugin.Module, err error) {
	requireSig := pc.RequireSignatures || e.Config().Trust.RequireSignatures
	if pc.SharedInstance {
		// One instance serves both calls: one module, kind "both", referenced twice.
		if pre, err = e.loadPlugin(ctx, pc.Pre, abi.KindBoth, requireSig, quick); err != nil {
			return nil, nil, fmt.Errorf("pre and post (shared_instance): %w", err)
		}
		pre.Retain()
		return pre, pre, nil
	}
	if pre, err = e.loadPlugin(ctx, pc.Pre, abi.KindPre, requireSig, quick); err != nil {
		return nil, nil, fmt.Errorf("pre: %w", err)
	}
	if post, err = e.loadPlugin(ctx, pc.Post, abi.KindPost, requireSig, quick); err != nil {
		pre.Release(ctx)
		return nil, nil, fmt.Errorf("post: %w", err)
	}
	return pre, post, nil
}

// buildPipeline loads a pipeline's plugins and builds it.
func (e *Engine) buildPipeline(ctx context.Context, name string, pc config.Pipeline, quick bool) (*Pipeline, error) {
	_, ok := e.Model(pc.Model)
	if !ok {
		return nil, fmt.Errorf("pipeline %s: model %q is not loaded", name, pc.Model)
	}
	pre, post, err := e.loadPlugins(ctx, pc, quick)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", name, err)
	}
	return e.assemblePipeline(ctx, name, pc, pre, post)
}

// assemblePipeline builds a pipeline from its loaded plugins; it takes over the caller's
// references to pre and post (released on error too).
func (e *Engine) assemblePipeline(ctx context.Context, name string, pc config.Pipeline, pre, post *plugin.Module) (*Pipeline, error) {
	m, ok := e.Model(pc.Model)
	if !ok {
		pre.Release(ctx)
		post.Release(ctx)
		return nil, fmt.Errorf("pipeline %s: model %q is not loaded", name, pc.Model)
	}
	if err := checkFrames(pc, pre); err != nil {
		pre.Release(ctx)
		post.Release(ctx)
		return nil, fmt.Errorf("pipeline %s: %w", name, err)
	}
	np := &Pipeline{Name: name, Config: pc, Pre: pre, Post: post, ModelName: pc.Model}
	spec := e.spec(name, pc, m, pre, post)
	if pre.Interpreted() || post.Interpreted() {
		// One worker until the compiled plugins are swapped in (with the configured
		// workers): each worker initialises its instances in the interpreter (0.3-0.5 s
		// for a Go plugin) and builds a TFLite interpreter, and a second worker adds little
		// while every request runs 30-70x slower; requests wait their turn (queue_timeout).
		spec.Workers = 1
	}
	p, err := pipeline.New(ctx, spec, e.log)
	pre.Release(ctx) // the pipeline holds its own references now
	post.Release(ctx)
	if err != nil {
		return nil, err
	}
	np.Pipeline = p
	if pc.GoldenInput != "" {
		v := pipeline.Current(p)
		if err := golden(ctx, pc, v); err != nil {
			p.Close(ctx)
			return nil, fmt.Errorf("pipeline %s: %w", name, err)
		}
	}
	p.OnRollback = func(reason string) {
		e.rollbacks.Add(1)
		e.errs.set("pipeline:"+name, fmt.Errorf("rolled back automatically: %s", reason))
		e.mu.Lock()
		if cur, ok := e.pipelines[name]; ok && cur.Pipeline == p {
			c := *cur
			c.Pre, c.Post = p.Modules()
			e.pipelines[name] = &c
		}
		e.mu.Unlock()
	}
	e.log.Info("pipeline ready", "pipeline", name, "model", pc.Model, "pre", pre.Name(), "post", post.Name(),
		"workers", pc.Workers, "zero_copy", np.Pipeline.ZeroCopy(), "delegates", fmt.Sprint(np.Pipeline.Delegates()),
		"wasm_engine", np.wasmEngine(e.rt))
	return np, nil
}

// Pipeline returns the named pipeline.
func (e *Engine) Pipeline(name string) (*Pipeline, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	p, ok := e.pipelines[name]
	return p, ok
}

// ModelCalls returns the call statistics of model name (nil if plugins cannot call it).
func (e *Engine) ModelCalls(name string) *pipeline.ModelStats { return e.calls.Stats(name) }

// Model returns the named model.
func (e *Engine) Model(name string) (*Model, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	m, ok := e.models[name]
	return m, ok
}

// Pipelines returns every pipeline, by name.
func (e *Engine) Pipelines() []*Pipeline {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*Pipeline, 0, len(e.pipelines))
	for _, p := range e.pipelines {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Models returns every model, by name.
func (e *Engine) Models() []*Model {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*Model, 0, len(e.models))
	for _, m := range e.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Config returns the config in force.
func (e *Engine) Config() *config.Config {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.cfg
}

// ErrNotFound is returned for an unknown pipeline or model.
var ErrNotFound = errors.New("not found")

// ErrStarting is returned for a pipeline that Start is still building (Starting): the
// client may retry in a moment.
var ErrStarting = errors.New("starting")

// StartingError is the error for pipeline name while Starting(name).
func StartingError(name string) error {
	return fmt.Errorf("pipeline %q is %w: its plugins and models are still loading (GET /v2/health/ready turns ready once every pipeline is)", name, ErrStarting)
}

// Close drains and releases everything.
func (e *Engine) Close(ctx context.Context) {
	_ = e.WaitStarted() // a Start still building (cancel its ctx to end it sooner)
	e.stopUpgrades()    // before the reload lock, which an upgrade takes to swap
	e.reloadMu.Lock()   // no reload runs meanwhile
	defer e.reloadMu.Unlock()
	e.rt.KeepCache() // a clean stop keeps the compiled plugins for the next start
	e.stopStreams()  // before the pipelines they run on
	e.mu.Lock()
	pipes := e.pipelines
	e.pipelines = nil
	e.mu.Unlock()
	for _, p := range pipes {
		p.Pipeline.Close(ctx)
	}
	e.background.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls.Close()
	for _, m := range e.models {
		m.Pool.Close()
		m.Model.Close()
	}
	e.models = nil
	_ = e.rt.Close(ctx)
}

// fileHash is the sha256 of a plugin or model file, read as a stream; "" when it cannot be
// read or is refused (see safefile: a FIFO or a device is never read).
func fileHash(path string) string {
	f, _, err := safefile.Open(path, safefile.MaxModel)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// LiteRTOptions are the LiteRT options of model mc under runtime rc: nil for the classic
// TFLite API. The accelerator cache is per model (a subdirectory named for the accelerator).
func LiteRTOptions(rc config.Runtime, mc config.Model) *tflite.LiteRTOptions {
	if mc.Accelerator == "" {
		return nil
	}
	o := &tflite.LiteRTOptions{Accelerator: mc.Accelerator, Dir: rc.LiteRTDir, Vendor: mc.Vendor, Options: mc.AcceleratorOptions}
	if rc.AcceleratorCacheDir != "" {
		o.CacheDir = filepath.Join(rc.AcceleratorCacheDir, mc.Accelerator)
	}
	return o
}

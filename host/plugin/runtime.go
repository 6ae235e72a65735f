package plugin

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/wasm"
	"github.com/edgehost/edgehost/internal/safefile"
	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Runtime compiles and instantiates plugins. It owns one wazero runtime with the WASI and
// edgehost host modules. It is safe for concurrent use.
type Runtime struct {
	rt        wazero.Runtime
	engine    string // EngineCompiler or EngineInterpreter
	cache     wazero.CompilationCache
	log       hclog.Logger
	instances sync.Map // api.Module -> *Instance, for host functions
	live      atomic.Int64
	mems      memories // the mapped guest memories (GuestResident)
	limits    wasm.Limits

	// private is wazero's own compilation cache directory (mode 0700, removed at Close);
	// disk keeps verified copies in runtime.cache_dir (cache.go). Both guarded by cacheMu.
	private string
	cacheMu sync.Mutex
	disk    *diskCache
	// privFiles: module key → the entries its compilation wrote in private, deleted with
	// the last module using the key (privLive counts them).
	privFiles map[string][]string
	privLive  map[string]int

	// compiling serialises CompileModule per module key (see compileOnce).
	compileMu sync.Mutex
	compiling map[string]*keyLock

	models atomic.Pointer[ModelRunner] // behind the model-call imports (SetModelRunner)

	// interp is a second wazero runtime, on its interpreter, for Config.InterpretUncached:
	// created on first use (nil until then), closed with the runtime.
	interpMu sync.Mutex
	interp   wazero.Runtime
}

// interpreter returns the runtime's provisional interpreter, creating it on first use.
func (r *Runtime) interpreter(ctx context.Context) (wazero.Runtime, error) {
	r.interpMu.Lock()
	defer r.interpMu.Unlock()
	if r.interp != nil {
		return r.interp, nil
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if err := r.instantiateHost(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	r.interp = rt
	return rt, nil
}

// keyLock is one module key's compile lock, shared by the loads of that key in progress.
type keyLock struct {
	sync.Mutex
	users int
}

// compileOnce compiles ib with no other compilation of the same bytes in progress in this
// runtime. wazero v1.12.0 is not safe for that: a module read from the file compilation
// cache is published to the engine's in-memory table before its entry preambles are
// compiled (upstream wazero issue 2547), so a second goroutine compiling the same bytes can
// get the half-built module and panic in NewFunction (a DATA RACE under -race). Loads of
// the same key wait for each other (the second then hits the in-memory table, a finished
// module); loads of different modules still compile in parallel. See RATIONALE.md,
// "Compiling the same module twice at once".
//
// It returns the entries wazero wrote for the module in the private directory (created) and
// those copied in from cache_dir for it (fetched).
func (r *Runtime) compileOnce(ctx context.Context, key string, ib []byte, interp wazero.Runtime) (compiled wazero.CompiledModule, created, fetched []string, err error) {
	if interp != nil {
		key = "interpreter:" + key // the same bytes compiled for the other engine: no conflict
	}
	r.compileMu.Lock()
	if r.compiling == nil {
		r.compiling = map[string]*keyLock{}
	}
	l := r.compiling[key]
	if l == nil {
		l = &keyLock{}
		r.compiling[key] = l
	}
	l.users++
	r.compileMu.Unlock()
	l.Lock()
	defer func() {
		l.Unlock()
		r.compileMu.Lock()
		if l.users--; l.users == 0 {
			delete(r.compiling, key)
		}
		r.compileMu.Unlock()
	}()
	if interp != nil {
		compiled, err = interp.CompileModule(ctx, ib)
		return compiled, nil, nil, err
	}
	var before map[string]bool
	if r.private != "" {
		r.cacheMu.Lock()
		if r.disk != nil {
			fetched = r.disk.fetch(key)
		}
		r.cacheMu.Unlock()
		before = privateEntries(r.private)
	}
	compiled, err = r.rt.CompileModule(ctx, ib)
	if err != nil || r.private == "" {
		return compiled, nil, nil, err
	}
	// What wazero wrote for it. A module compiled at the same time may add its own entry
	// to the list: recording an entry under a second key only copies it needlessly.
	for rel := range privateEntries(r.private) {
		if !before[rel] {
			created = append(created, rel)
		}
	}
	return compiled, created, fetched, nil
}

// cached reports whether cache_dir holds compiled code recorded for key (its MAC is checked
// only when it is used: a tampered entry makes that compile a slow one, never a wrong one).
func (r *Runtime) cached(key string) bool {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.disk == nil {
		return false
	}
	for rel, keys := range r.disk.records {
		if keys[key] && !isInstrumented(rel) {
			return true
		}
	}
	return false
}

// KeepCache makes every later release keep its compilation cache entries: call it before a
// clean stop, so that the next start finds the compiled code of the plugins it had (the
// next start's PruneCache then deletes whatever its own config does not use). Swaps while
// serving still delete the entries of the versions they replace.
func (r *Runtime) KeepCache() {
	r.cacheMu.Lock()
	if r.disk != nil {
		r.disk.keep = true
	}
	r.cacheMu.Unlock()
}

// PruneCache deletes the compiled entries in cache_dir that edgehost wrote and that no
// loaded module uses (versions replaced while edgehost was stopped), and the files of the
// layout before edgehost-compiled/ that its index recorded. It never deletes anything it
// did not write, nor anything while another edgehost process uses the directory.
func (r *Runtime) PruneCache() (removed int) {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.disk == nil {
		return 0
	}
	if !r.disk.exclusive() {
		r.log.Info("compilation cache not pruned: another edgehost process uses it", "dir", r.disk.dir)
		return 0
	}
	r.disk.loadRecords() // entries other processes wrote since this one started
	return r.disk.remove(nil) + r.disk.removeOldLayout()
}

// RuntimeOptions configure a Runtime. The zero value works.
type RuntimeOptions struct {
	// CacheDir keeps compiled plugins across restarts (verified copies, see cache.go); ""
	// keeps them in memory.
	CacheDir string
	// CacheKeyFile holds the secret that authenticates compiled code in CacheDir; "" is
	// DefaultCacheKeyFile(CacheDir). Created (mode 0600) when missing.
	CacheKeyFile string
	Logger       hclog.Logger // nil discards
	// Limits bound every module's structure before it compiles; zero fields mean
	// wasm.DefaultLimits.
	Limits wasm.Limits
	// Engine is EngineAuto (the compiler where wazero has one, else the interpreter, with
	// a warning), EngineCompiler or EngineInterpreter.
	Engine string
}

// NewRuntime creates a runtime. A CacheDir that cannot be used (read-only, full, unsafe)
// is logged and the runtime keeps compiled code in memory: it never fails the start.
func NewRuntime(ctx context.Context, o RuntimeOptions) (*Runtime, error) {
	r := &Runtime{log: o.Logger, limits: o.Limits}
	if r.log == nil {
		r.log = hclog.NewNullLogger()
	}
	var err error
	if r.engine, err = chooseEngine(o.Engine); err != nil {
		return nil, err
	}
	if r.engine == EngineInterpreter {
		if o.Engine == EngineAuto {
			r.log.Warn("wazero has no compiler for this architecture: plugins run in its interpreter, 30-70x slower than compiled (RATIONALE.md, \"ARM builds and the interpreter fallback\")", "arch", runtime.GOARCH)
		}
		o.CacheDir = "" // the interpreter compiles nothing worth keeping across restarts
	}
	r.cache = wazero.NewCompilationCache()
	if o.CacheDir != "" {
		if r.private, err = os.MkdirTemp("", "edgehost-compile-"); err == nil {
			r.cache, err = wazero.NewCompilationCacheWithDir(r.private)
		}
		if err != nil {
			r.log.Warn("no private compilation directory: compiled code kept in memory only", "error", err)
			if r.private != "" {
				os.RemoveAll(r.private)
			}
			r.private, r.cache = "", wazero.NewCompilationCache()
		} else {
			r.disk = openDiskCache(o.CacheDir, o.CacheKeyFile, r.private, r.log)
		}
	}
	cfg := wazero.NewRuntimeConfigCompiler()
	if r.engine == EngineInterpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	cfg = cfg.WithCompilationCache(r.cache)
	r.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.Close(ctx)
		return nil, err
	}
	if err := r.instantiateHost(ctx, r.rt); err != nil {
		r.Close(ctx)
		return nil, err
	}
	return r, nil
}

// Close closes every module of the runtime. No call may be running.
func (r *Runtime) Close(ctx context.Context) error {
	err := r.rt.Close(ctx)
	r.interpMu.Lock()
	if r.interp != nil {
		if ierr := r.interp.Close(ctx); err == nil {
			err = ierr
		}
		r.interp = nil
	}
	r.interpMu.Unlock()
	if cerr := r.cache.Close(ctx); err == nil {
		err = cerr
	}
	r.cacheMu.Lock()
	if r.disk != nil {
		r.disk.close() // releases the flock
		r.disk = nil
	}
	if r.private != "" {
		_ = os.RemoveAll(r.private)
		r.private = ""
	}
	r.cacheMu.Unlock()
	return err
}

// Engine is the wazero engine that runs the plugins: EngineCompiler or EngineInterpreter.
func (r *Runtime) Engine() string { return r.engine }

// LiveMemories is the number of guest memories currently mapped (for leak checks).
func (r *Runtime) LiveMemories() int64 { return r.live.Load() }

// GuestResident is the bytes of all guest memories resident in RAM now (pages a guest
// never touched are not counted, committed or not).
func (r *Runtime) GuestResident() uint64 { return r.mems.resident() }

// Config says how to load one plugin.
type Config struct {
	Path        string         // the .wasm file
	Params      map[string]any // passed to edgehost_init as JSON
	MemoryLimit uint64         // guest memory budget in bytes; 0 means DefaultMemoryLimit
	WantKind    abi.Kind       // "pre" or "post": the role the pipeline needs; "" accepts any
	Timeout     time.Duration  // time budget per guest call; 0 means DefaultTimeout
	// BudgetClock is what Timeout measures: BudgetWall (the default) or BudgetCPU, the
	// guest thread's CPU time (a busy machine does not spend it), with a wall-clock
	// ceiling of CPUWallFactor × Timeout so a starved or sleeping call still ends.
	BudgetClock BudgetClock
	Grants      Grants // what the plugin may touch; the zero value grants nothing

	// TrustedKeys verify the module's signature; RequireSignature rejects unsigned modules.
	TrustedKeys      []ed25519.PublicKey
	RequireSignature bool

	// InterpretUncached compiles the module for wazero's interpreter instead when the
	// runtime runs the compiler and cache_dir holds no compiled code for it: the module is
	// ready in milliseconds instead of seconds and runs 30-70x slower (Module.Interpreted).
	// The caller compiles it (Runtime.Recompile) off the request path and swaps the
	// compiled version in (RATIONALE.md, "Cold start: interpreter first"). Time budgets
	// hold on both engines (the fuel checks are in the module's code); the interpreted
	// module's is InterpreterBudgetFactor times Timeout, so that work that fits the budget
	// compiled is not cut while the compiler runs.
	InterpretUncached bool

	// Unmetered skips the time-budget instrumentation. It exists only to measure what the
	// instrumentation costs (see BenchmarkFuel); config.toml cannot set it.
	Unmetered bool
}

// Grants are the capabilities a plugin gets beyond pure computation. Deny by default.
type Grants struct {
	// Dirs maps a guest path (e.g. "/data") to a host directory mounted read-only. The
	// mount is an os.Root: symlinks and ".." cannot leave the directory.
	Dirs   map[string]string
	Env    map[string]string // environment variables the guest sees
	Clock  bool              // the real wall and monotonic clocks (default: a fixed fake clock)
	Random bool              // the host's cryptographic randomness (default: deterministic)
	Stdout bool              // the guest's stdout/stderr reach the host log at info/warn (default: at debug; bounded either way)
	// Models names the models the plugin may run through the model-call imports (ABI
	// §5.9); none by default.
	Models []string
}

// String describes the grants for humans ("none" when nothing is granted).
func (g Grants) String() string {
	var parts []string
	for guest, host := range g.Dirs {
		parts = append(parts, fmt.Sprintf("dir %s=%s (read-only)", guest, host))
	}
	for k := range g.Env {
		parts = append(parts, "env "+k)
	}
	if g.Clock {
		parts = append(parts, "clock")
	}
	if g.Random {
		parts = append(parts, "random")
	}
	if g.Stdout {
		parts = append(parts, "stdout")
	}
	for _, m := range g.Models {
		parts = append(parts, "model "+m)
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// BudgetClock says what a plugin's time budget measures.
type BudgetClock string

const (
	BudgetWall BudgetClock = ""    // wall-clock time from the call's start (default)
	BudgetCPU  BudgetClock = "cpu" // CPU time of the OS thread running the guest
)

// CPUWallFactor bounds a CPU-time budget in wall-clock time: Timeout × CPUWallFactor.
const CPUWallFactor = 10

// DefaultTimeout is the time budget of one guest call when the config names none.
const DefaultTimeout = time.Second

// DefaultMemoryLimit is the guest memory budget of a plugin whose config names none.
const DefaultMemoryLimit = 64 << 20

// MaxMemoryLimit is the largest guest memory budget: 65,535 pages, one page short of the 4 GiB
// a 32-bit memory addresses (wazero's memory size is a uint32, which 4 GiB wraps to 0).
const MaxMemoryLimit = 65535 * pageSize

// tableEntries is the cap on a plugin's table entries: 8 bytes of host memory each, at most
// 1/8 of its memory budget, and never more than the runtime's limit.
func tableEntries(memoryLimit uint64, l wasm.Limits) uint32 {
	max := l.TableEntries
	if max == 0 {
		max = wasm.DefaultLimits.TableEntries
	}
	return uint32(min(uint64(max), memoryLimit/64))
}

// Module is one compiled, validated version of a plugin. It is safe for concurrent use.
type Module struct {
	Manifest abi.Manifest
	Hash     string // sha256 of the module bytes, hex
	Path     string
	LoadedAt time.Time
	cfg      Config
	params   []byte
	rt       *Runtime
	compiled wazero.CompiledModule
	wrt      wazero.Runtime // the wazero runtime compiled was compiled by (r.rt or r.interp)
	log      hclog.Logger
	refs     atomic.Int32
	// src and srcCfg are what an interpreted module was loaded from, for Recompile.
	src    []byte
	srcCfg Config
	// cacheKey names this version's compiled code in the runtime's cache index; its cache
	// files are deleted when the last module using them is released.
	cacheKey string
}

// Interpreted reports whether the module runs on the provisional interpreter of a runtime
// whose engine is the compiler (Config.InterpretUncached): a compiled load of the same
// plugin would run 30-70x faster.
func (m *Module) Interpreted() bool { return m.wrt != m.rt.rt }

// InterpreterBudgetFactor multiplies the time budget of a module running on the
// provisional interpreter (Config.InterpretUncached): wazero's interpreter is 30-70x slower
// than its compiler on plugin code (RATIONALE.md, "ARM builds and the interpreter
// fallback"); a runaway is still stopped, ten budgets later.
const InterpreterBudgetFactor = 10

// Recompile loads m again, from the same bytes and config, compiled: for a module that
// runs on the provisional interpreter (Interpreted). The file is not read again, so the
// result is the same plugin version with the same params.
func (r *Runtime) Recompile(ctx context.Context, m *Module) (*Module, error) {
	if !m.Interpreted() {
		return nil, fmt.Errorf("plugin %s is not on the provisional interpreter", m.Name())
	}
	cfg := m.srcCfg
	cfg.InterpretUncached = false
	return r.LoadBytes(ctx, cfg, m.src)
}

// Retain adds a reference to the module. Load returns a module with one reference.
func (m *Module) Retain() { m.refs.Add(1) }

// Release drops a reference; the last one closes the compiled module and deletes its
// compilation cache entries in cache_dir (unless KeepCache was called, or another edgehost
// process uses the directory, or another loaded module uses them). Every instance must be
// closed by then.
func (m *Module) Release(ctx context.Context) {
	if m.refs.Add(-1) == 0 {
		m.compiled.Close(ctx)
		if m.Interpreted() {
			return // no compilation cache entries
		}
		r := m.rt
		r.cacheMu.Lock()
		defer r.cacheMu.Unlock()
		if r.private != "" {
			if r.privLive[m.cacheKey]--; r.privLive[m.cacheKey] <= 0 {
				for _, rel := range r.privFiles[m.cacheKey] {
					_ = os.Remove(filepath.Join(r.private, rel))
				}
				delete(r.privLive, m.cacheKey)
				delete(r.privFiles, m.cacheKey)
			}
		}
		if d := r.disk; d != nil {
			if d.live[m.cacheKey]--; d.live[m.cacheKey] <= 0 {
				delete(d.live, m.cacheKey)
				if !d.keep {
					d.remove(map[string]bool{m.cacheKey: true})
				}
			}
		}
	}
}

// Name is "name@version" from the manifest.
func (m *Module) Name() string { return m.Manifest.Name + "@" + m.Manifest.Version }

// Load reads, compiles and validates a plugin, then instantiates and initialises one
// instance to prove that init succeeds. Errors name the file and say what is wrong.
func (r *Runtime) Load(ctx context.Context, cfg Config) (*Module, error) {
	b, err := safefile.ReadFile(cfg.Path, safefile.MaxPlugin) // a FIFO, a device or an oversized file is refused unread
	if err != nil {
		return nil, &LoadError{Path: cfg.Path, Err: err}
	}
	return r.LoadBytes(ctx, cfg, b)
}

// LoadBytes is Load with the module bytes already read.
func (r *Runtime) LoadBytes(ctx context.Context, cfg Config, b []byte) (*Module, error) {
	fail := func(format string, a ...any) (*Module, error) {
		return nil, &LoadError{Path: cfg.Path, Err: fmt.Errorf(format, a...)}
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.BudgetClock != BudgetWall && cfg.BudgetClock != BudgetCPU {
		return fail("budget clock %q: want \"wall\" (the default) or \"cpu\"", cfg.BudgetClock)
	}
	if cfg.MemoryLimit > MaxMemoryLimit {
		return fail("memory limit of %d bytes exceeds the largest a 32-bit guest can address (%d bytes, 65535 pages)", cfg.MemoryLimit, uint64(MaxMemoryLimit))
	}
	if len(cfg.TrustedKeys) > 0 || cfg.RequireSignature {
		key, err := Verify(b, cfg.TrustedKeys)
		switch {
		case err == ErrUnsigned && !cfg.RequireSignature:
		case err == ErrUnsigned:
			return fail("rejected: unsigned, and signatures are required (sign it with `edgehost plugin sign`)")
		case err != nil:
			return fail("rejected: %v", err)
		default:
			r.log.Debug("plugin signature verified", "path", cfg.Path, "key", key)
		}
	}
	sum := sha256.Sum256(b)
	raw, ok, err := abi.CustomSection(b, abi.ManifestSection)
	if err != nil {
		return fail("%v", err)
	}
	if !ok {
		return fail("no %q custom section: embed a manifest (see abi/ABI.md §6)", abi.ManifestSection)
	}
	man, err := abi.ParseManifest(raw)
	if err != nil {
		return fail("%v", err)
	}
	if len(man.Unknown) > 0 {
		r.log.Warn("plugin manifest has keys this host does not know (ignored, ABI.md §9)", "path", cfg.Path, "keys", strings.Join(man.Unknown, ","))
	}
	if cfg.WantKind != "" && man.Kind != abi.KindBoth && man.Kind != cfg.WantKind {
		return fail("plugin %s is kind %q but is configured as a %s plugin", man.Name, man.Kind, cfg.WantKind)
	}
	params := []byte("{}")
	if cfg.Params != nil {
		if params, err = json.Marshal(cfg.Params); err != nil {
			return fail("params: %v", err)
		}
	}
	// The module as written must be valid and within the structural limits before it is
	// rewritten (Instrument validates first): the rewrite assumes valid input and adds
	// indices that a module must not name.
	ib := b
	var ikey [32]byte
	if cfg.Unmetered {
		_, err = wasm.Validate(ctx, b, r.limits, abi.HostModule)
		ikey = sum
	} else {
		// From cache_dir when this host validated and rewrote these bytes before (the
		// entry's MAC verifies: instrumented.go).
		ib, ikey, err = r.instrument(ctx, b, sum, wasm.Options{Limits: r.limits, HostModule: abi.HostModule,
			TableEntries: tableEntries(cfg.MemoryLimit, r.limits)})
	}
	if err != nil {
		return fail("rejected: %v", err)
	}
	cacheKey := hex.EncodeToString(ikey[:]) // sha256 of ib
	wrt := r.rt
	if cfg.InterpretUncached && r.engine == EngineCompiler && !r.cached(cacheKey) {
		if wrt, err = r.interpreter(ctx); err != nil {
			return fail("interpreter: %v", err)
		}
	}
	var interp wazero.Runtime
	if wrt != r.rt {
		interp = wrt
	}
	srcCfg := cfg
	if interp != nil {
		cfg.Timeout *= InterpreterBudgetFactor
	}
	compiled, created, fetched, err := r.compileOnce(ctx, cacheKey, ib, interp)
	if err != nil {
		return fail("compile: %v", err)
	}
	r.cacheMu.Lock()
	if interp != nil {
		// nothing to record: the interpreter writes no cache entries
	} else if r.disk != nil {
		r.disk.store(cacheKey, created)
		r.disk.live[cacheKey]++
	}
	if r.private != "" && interp == nil {
		if r.privFiles == nil {
			r.privFiles, r.privLive = map[string][]string{}, map[string]int{}
		}
		r.privFiles[cacheKey] = append(append(r.privFiles[cacheKey], created...), fetched...)
		r.privLive[cacheKey]++
	}
	r.cacheMu.Unlock()
	m := &Module{Manifest: man, Hash: hex.EncodeToString(sum[:]), Path: cfg.Path, LoadedAt: time.Now(),
		cfg: cfg, params: params, rt: r, compiled: compiled, wrt: wrt, cacheKey: cacheKey,
		log: r.log.Named("plugin").With("plugin", man.Name, "version", man.Version)}
	if interp != nil {
		m.src, m.srcCfg = b, srcCfg
	}
	if err := m.checkExports(); err != nil {
		m.refs.Store(1)
		m.Release(ctx) // closes the compiled module and drops its cache entry
		return fail("plugin %s: %v", man.Name, err)
	}
	inst, err := m.NewInstance(ctx)
	if err != nil {
		m.refs.Store(1)
		m.Release(ctx)
		return nil, err
	}
	inst.Close(ctx)
	m.refs.Store(1)
	return m, nil
}

var i32 = api.ValueTypeI32

func (m *Module) checkExports() error {
	type sig struct{ params, results int }
	want := map[string]sig{
		abi.ExportABIVersion: {0, 1},
		abi.ExportAlloc:      {2, 1},
		abi.ExportFree:       {1, 0},
		abi.ExportInit:       {2, 1},
	}
	if m.Manifest.Kind == abi.KindPre || m.Manifest.Kind == abi.KindBoth {
		want[abi.ExportPre] = sig{1, 1}
	}
	if m.Manifest.Kind == abi.KindPost || m.Manifest.Kind == abi.KindBoth {
		want[abi.ExportPost] = sig{1, 1}
	}
	exports := m.compiled.ExportedFunctions()
	if _, ok := exports["_start"]; ok {
		// A command module's _start would run main and, under WASI, exit: ABI.md §2.
		return fmt.Errorf("exports _start: it is a WASI command module, but a plugin must be a reactor (ABI.md §2): " +
			"build C with -mexec-model=reactor, Go with -buildmode=c-shared, Rust as a cdylib (crate-type = [\"cdylib\"]), not a bin")
	}
	for name, s := range want {
		def, ok := exports[name]
		if !ok {
			return fmt.Errorf("missing export %s (required by ABI v%d for kind %s)", name, abi.Version, m.Manifest.Kind)
		}
		p, res := def.ParamTypes(), def.ResultTypes()
		okSig := len(p) == s.params && len(res) == s.results
		for _, t := range append(append([]api.ValueType{}, p...), res...) {
			okSig = okSig && t == i32
		}
		if !okSig {
			return fmt.Errorf("export %s has signature %v -> %v, want %d i32 params and %d i32 results",
				name, typeNames(p), typeNames(res), s.params, s.results)
		}
	}
	for _, im := range m.compiled.ImportedMemories() {
		mod, name, _ := im.Import()
		return fmt.Errorf("imports its memory (%s.%s): a plugin must define its own memory and export it as \"memory\" (ABI.md §2); link without --import-memory", mod, name)
	}
	mem, ok := m.compiled.ExportedMemories()["memory"]
	if !ok {
		return fmt.Errorf("missing exported memory \"memory\" (ABI.md §2): export the module's linear memory under that name")
	}
	if min := uint64(mem.Min()) * pageSize; min > m.cfg.MemoryLimit {
		return fmt.Errorf("initial memory of %d bytes exceeds the plugin's memory budget of %d bytes (raise memory_limit)", min, m.cfg.MemoryLimit)
	}
	for _, imp := range m.compiled.ImportedFunctions() {
		mod, name, _ := imp.Import()
		if mod != abi.HostModule && mod != wasi_snapshot_preview1.ModuleName {
			return fmt.Errorf("imports %s.%s: only %q and %q imports are allowed", mod, name, abi.HostModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	return nil
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}

// Close drops the caller's reference (see Release).
func (m *Module) Close(ctx context.Context) { m.Release(ctx) }

// Instrument is the load-time rewrite with the default options (for tests and tools).
func Instrument(b []byte) ([]byte, error) {
	return wasm.Instrument(context.Background(), b, wasm.Options{HostModule: abi.HostModule})
}

// FuelImport is the host import the rewrite adds for fuel checks (see package wasm).
const FuelImport = wasm.FuelImport

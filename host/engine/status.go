package engine

import (
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/stream"
)

// Status is what GET /status reports: for every model, plugin and pipeline, the version in
// force, when it was loaded, and the last load or reload error.
type Status struct {
	// WasmEngine is wazero's engine that runs the plugins: "compiler", or "interpreter"
	// where wazero has no compiler (32-bit ARM) or [runtime] wasm_engine asks for it.
	WasmEngine string `json:"wasm_engine"`
	// Compiling is the number of pipelines that serve on wazero's interpreter while their
	// plugins compile (a start with plugins missing from the compilation cache).
	Compiling int                   `json:"compiling,omitempty"`
	Config    ItemStatus            `json:"config"`
	Models    map[string]ItemStatus `json:"models"`
	Pipelines map[string]PipeStatus `json:"pipelines"`
	Reloads   int64                 `json:"reloads"`
	Failures  int64                 `json:"reload_failures"`
	Rollbacks int64                 `json:"rollbacks"`
	// Sources are the plugins and models pulled from a registry, by reference.
	Sources map[string]SourceStatus `json:"sources,omitempty"`
	// Memory is where the process's resident memory is (Linux).
	Memory MemoryStatus `json:"memory"`
	// Streams are the running camera streams, by pipeline.
	Streams map[string]stream.Status `json:"streams,omitempty"`
}

// ItemStatus is the state of one loaded file.
type ItemStatus struct {
	Path      string    `json:"path"`
	Hash      string    `json:"hash,omitempty"`
	LoadedAt  time.Time `json:"loaded_at"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"last_error_at,omitzero"`
	// Backend (models only) is where the model runs: "tflite/cpu", "litert/cpu",
	// "litert/gpu" or "litert/npu"; Requested and FallbackReason say what was asked for
	// and why it is not what runs.
	Backend        string `json:"backend,omitempty"`
	Requested      string `json:"accelerator_requested,omitempty"`
	FallbackReason string `json:"accelerator_fallback,omitempty"`
	RunFallbacks   int64  `json:"accelerator_run_fallbacks,omitempty"`
	TransferBytes  int64  `json:"accelerator_transfer_bytes,omitempty"` // host<->GPU tensor bytes (LiteRT's copies)
	// IdleThreads (models only) is the thread count of the model's idle interpreter (0:
	// none), IdleBuilt whether it is built, IdleRuns how many requests ran alone on it
	// (tflite.Model.IdleInterpreter).
	IdleThreads int   `json:"idle_threads,omitempty"`
	IdleBuilt   bool  `json:"idle_interpreter_built,omitempty"`
	IdleRuns    int64 `json:"idle_runs,omitempty"`
	// Calls (models only) counts the runs plugins made of the model (ABI §5.9, cascades).
	Calls *CallStatus `json:"plugin_calls,omitempty"`
}

// CallStatus is what plugins' model calls of one model did, since start.
type CallStatus struct {
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	InvokeMS    float64 `json:"invoke_ms_total"`
	WaitMS      float64 `json:"wait_ms_total"` // waiting for a free interpreter of the model
	CopiedBytes int64   `json:"copied_bytes"`  // 0 when tensors are bound in guest memory
}

// PipeStatus is the state of one pipeline.
type PipeStatus struct {
	Model string `json:"model"`
	// WasmEngine is "interpreter" while the pipeline waits for its compiled plugins.
	WasmEngine string     `json:"wasm_engine"`
	Pre        ItemStatus `json:"pre"`
	PreName    string     `json:"pre_plugin"`
	Post       ItemStatus `json:"post"`
	PostName   string     `json:"post_plugin"`
	ZeroCopy   bool       `json:"zero_copy"`
	Requests   int64      `json:"requests"`
	Failures   int64      `json:"failures"`
	Traps      int64      `json:"traps"`
	// Retried: requests that failed on a version under probation and were answered by the
	// previous version (no client saw the failure).
	Retried int64 `json:"probation_retried"`
	// ModelCalls: models run by the pipeline's plugins (cascades), all requests together.
	ModelCalls int64  `json:"model_calls,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// Sequences: live sequences and counts since start (absent while none ever started).
	Sequences *SequenceStatus `json:"sequences,omitempty"`
}

// SequenceStatus counts a pipeline's sequences (README "Sequences").
type SequenceStatus struct {
	Live     int   `json:"live"`
	Started  int64 `json:"started"`
	Ended    int64 `json:"ended"`
	Expired  int64 `json:"expired"`
	Rejected int64 `json:"rejected_over_max"`
}

// errorLog remembers the last error per file path or pipeline name.
type errorLog struct {
	mu   sync.Mutex
	errs map[string]ItemStatus
}

func (l *errorLog) set(key string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errs == nil {
		l.errs = map[string]ItemStatus{}
	}
	if err == nil {
		delete(l.errs, key)
		return
	}
	l.errs[key] = ItemStatus{LastError: err.Error(), ErrorAt: time.Now()}
}

func (l *errorLog) get(key string) (string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.errs[key]
	return s.LastError, s.ErrorAt
}

// Status reports the engine's state.
func (e *Engine) Status() Status {
	st := Status{WasmEngine: e.rt.Engine(), Compiling: e.Interpreted(), Models: map[string]ItemStatus{}, Pipelines: map[string]PipeStatus{},
		Reloads: e.reloads.Load(), Failures: e.reloadFailures.Load(), Rollbacks: e.rollbacks.Load()}
	if src := e.src.snapshot(); len(src) > 0 {
		st.Sources = src
	}
	st.Streams = e.streamStatus()
	st.Memory = e.Memory()
	cfg := e.Config()
	st.Config = ItemStatus{Path: cfg.File, LoadedAt: e.configLoaded}
	st.Config.LastError, st.Config.ErrorAt = e.errs.get(cfg.File)
	for _, m := range e.Models() {
		b := m.Model.Backend()
		it := ItemStatus{Path: m.Config.Path, Hash: m.Hash, LoadedAt: m.LoadedAt,
			Backend: b.Active, Requested: b.Requested, FallbackReason: b.Reason, RunFallbacks: b.RunFallbacks, TransferBytes: b.TransferBytes,
			IdleThreads: m.Model.IdleThreads(), IdleBuilt: m.Model.HasIdle(), IdleRuns: m.Model.IdleRuns()}
		it.LastError, it.ErrorAt = e.errs.get(m.Config.Path)
		if cs := e.calls.Stats(m.Name); cs != nil && cs.Calls.Load()+cs.Errors.Load() > 0 {
			it.Calls = &CallStatus{Calls: cs.Calls.Load(), Errors: cs.Errors.Load(), InvokeMS: float64(cs.Nanos.Load()) / 1e6,
				WaitMS: float64(cs.WaitNano.Load()) / 1e6, CopiedBytes: cs.Copied.Load()}
		}
		st.Models[m.Name] = it
	}
	for _, p := range e.Pipelines() {
		ps := PipeStatus{Model: p.ModelName, WasmEngine: p.wasmEngine(e.rt), PreName: p.Pre.Name(), PostName: p.Post.Name(), ZeroCopy: p.Pipeline.ZeroCopy(),
			Requests: p.Pipeline.Requests.Load(), Failures: p.Pipeline.Failures.Load(), Traps: p.Pipeline.Traps.Load(),
			Retried: p.Pipeline.Retried.Load(), ModelCalls: p.Pipeline.ModelCalls.Load(),
			Pre:  ItemStatus{Path: p.Pre.Path, Hash: p.Pre.Hash, LoadedAt: p.Pre.LoadedAt},
			Post: ItemStatus{Path: p.Post.Path, Hash: p.Post.Hash, LoadedAt: p.Post.LoadedAt}}
		ps.Pre.LastError, ps.Pre.ErrorAt = e.errs.get(p.Pre.Path)
		ps.Post.LastError, ps.Post.ErrorAt = e.errs.get(p.Post.Path)
		ps.LastError, _ = e.errs.get("pipeline:" + p.Name)
		if sq := p.Pipeline.Sequences(); sq.Started+sq.Rejected > 0 {
			ps.Sequences = &SequenceStatus{Live: sq.Live, Started: sq.Started, Ended: sq.Ended, Expired: sq.Expired, Rejected: sq.Rejected}
		}
		st.Pipelines[p.Name] = ps
	}
	return st
}

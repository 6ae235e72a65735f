package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/edgehost/edgehost/internal/safefile"
)

// Config is the whole config.toml.
type Config struct {
	Server    Server              `toml:"server"`
	Log       Log                 `toml:"log"`
	Runtime   Runtime             `toml:"runtime"`
	Trust     Trust               `toml:"trust"`
	OCI       OCI                 `toml:"oci"`
	Models    map[string]Model    `toml:"models"`
	Pipelines map[string]Pipeline `toml:"pipelines"`

	// File is the absolute path of the file the config was read from; relative paths in
	// the config are resolved against its directory.
	File string `toml:"-"`
}

// Server configures the HTTP and KServe v2 gRPC servers.
type Server struct {
	Address         string   `toml:"address"`          // host:port; default 127.0.0.1:8080
	GRPCAddress     string   `toml:"grpc_address"`     // host:port of the KServe v2 gRPC service; "" = off
	MaxBodyBytes    int64    `toml:"max_body_bytes"`   // default 16 MiB
	RequestTimeout  Duration `toml:"request_timeout"`  // default 30s
	ShutdownTimeout Duration `toml:"shutdown_timeout"` // default 15s
	// A request body must arrive, and a result be taken, within TransferTimeout plus its
	// length at MinTransferRate bytes/s; a slower client is cut off (it never holds a worker).
	TransferTimeout Duration `toml:"transfer_timeout"`  // default 5s
	MinTransferRate int64    `toml:"min_transfer_rate"` // bytes per second; default 65536
	// TLS, when set, serves HTTP and gRPC over TLS (mutual TLS with client_ca_file).
	TLS *TLS `toml:"tls"`
	// Tokens, when any is set, are required on every route but health (see Token).
	Tokens []Token `toml:"tokens"`
	// MaxConnections bounds each listener's open connections; at the bound the idlest
	// connection is closed, so health and metrics always get one. Default 1024, and never
	// more than the file-descriptor limit allows.
	MaxConnections int `toml:"max_connections"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`  // trace, debug, info, warn, error; default info
	Format string `toml:"format"` // text or json; default text
}

// Runtime configures the Wasm runtime.
type Runtime struct {
	CacheDir string `toml:"cache_dir"` // compiled plugins kept across restarts; "" keeps them in memory
	// CacheKeyFile holds the secret that authenticates the compiled code in CacheDir
	// (created, mode 0600, at the first start); default CACHE_DIR.key, beside CacheDir.
	CacheKeyFile string `toml:"cache_key_file"`
	Watch        *bool  `toml:"watch"` // hot reload plugins, models and config; default true
	// LiteRTDir holds libLiteRt.so, its accelerator libraries and vendors/ (make deps-litert
	// unpacks them into .deps/litert/2.3.0/ai_edge_litert); needed by models.*.accelerator.
	LiteRTDir string `toml:"litert_dir"`
	// AcceleratorCacheDir keeps compiled GPU programs and NPU blobs across restarts, so
	// only the first start compiles; "" compiles at every start.
	AcceleratorCacheDir string `toml:"accelerator_cache_dir"`
	// WasmEngine is wazero's engine for the plugins: "auto" (default: the compiler where
	// wazero has one, amd64 and arm64; the interpreter elsewhere, such as 32-bit ARM),
	// "compiler" or "interpreter" (every architecture, 30-70x slower on the example plugins).
	WasmEngine string `toml:"wasm_engine"`
}

// Trust lists the keys plugin signatures are checked against.
type Trust struct {
	Keys              []string `toml:"keys"`               // base64 ed25519 public keys
	KeyFiles          []string `toml:"key_files"`          // files holding one such key each
	RequireSignatures bool     `toml:"require_signatures"` // every plugin must be signed by a trusted key
}

// OCI configures plugins and models pulled from an OCI registry (a `source = "oci://…"`).
type OCI struct {
	// CacheDir holds the pulled artifacts, each with a record of its digests and version;
	// default <runtime.cache_dir>/edgehost-oci, or .oci-cache beside the config file when
	// there is no runtime.cache_dir.
	CacheDir string `toml:"cache_dir"`
	// PollInterval is how often a tag is resolved again (a digest never is); default 60s,
	// "0s" turns polling off (a tag is then pulled at start and at config reloads only).
	PollInterval *Duration `toml:"poll_interval"`
	// PlainHTTP talks to every registry over plain HTTP; loopback registries (127.0.0.0/8,
	// ::1, localhost) always are, whatever this says.
	PlainHTTP bool `toml:"plain_http"`
	// MaxArtifactMB bounds the layer a manifest may declare (MiB); a larger one is refused
	// before a byte of it is read, and a registry sending more is cut off. Default 512,
	// at most 2048.
	MaxArtifactMB int `toml:"max_artifact_mb"`
	// RedirectHosts are the hosts a registry may redirect a request to besides itself (a
	// blob store or CDN): "host", "host:port" or "*.domain". A redirect to any other host,
	// and from https to http, is refused.
	RedirectHosts []string `toml:"redirect_hosts"`
}

// Grants are what one plugin may touch; everything is denied by default.
type Grants struct {
	Dirs   map[string]string `toml:"dirs"`   // guest path -> host directory, mounted read-only
	Env    map[string]string `toml:"env"`    // environment variables
	Clock  bool              `toml:"clock"`  // the real clock
	Random bool              `toml:"random"` // real randomness
	Stdout bool              `toml:"stdout"` // stdout/stderr to the log
	// Models the plugin may run itself (ABI §5.9, cascades): names under [models]; none by
	// default.
	Models []string `toml:"models"`
}

// DefaultThreads is the interpreter (and XNNPACK) thread count of a model that does not set
// threads: one, because the default pipeline has 2 workers and workers × threads above the
// core count made every model 1.2-7× slower on a busy 2-core machine (RATIONALE.md,
// "Threads"). host/tflite uses the same default for Options.Threads 0.
const DefaultThreads = 1

// Model is one .tflite model.
type Model struct {
	Path string `toml:"path"`
	// Source pulls the model from a registry: "oci://host:port/repo:tag" or "…@sha256:…".
	// Path is then the cached copy (set by Load, not written in the file).
	Source  string `toml:"source"`
	Threads int    `toml:"threads"` // default 1 (DefaultThreads)
	// IdleThreads is the thread count of one more interpreter of the model, which a request
	// running alone in the process uses instead of its own (RATIONALE.md, "Adaptive
	// parallelism"). 0 (the default): the cores the process may use (GOMAXPROCS); 1, or at
	// most threads: no such interpreter. See IdleThreadCount.
	IdleThreads int       `toml:"idle_threads"`
	XNNPACK     *bool     `toml:"xnnpack"` // default true
	Delegate    *Delegate `toml:"delegate"`
	Workers     int       `toml:"workers"` // interpreters for bare-model inference; default 1
	// Accelerator runs the model on LiteRT's CompiledModel API: "cpu", "gpu" or "npu"
	// (runtime.litert_dir must be set). "" (the default) keeps the classic TFLite C API.
	// A model whose accelerator cannot load, compile or run it is served on the CPU.
	Accelerator string `toml:"accelerator"`
	// Vendor is the NPU dispatch under litert_dir/vendors ("intel_openvino", ...).
	Vendor string `toml:"vendor"`
	// AcceleratorOptions are LiteRT's per-accelerator options: identifier ("xnnpack",
	// "gpu_options", "intel_openvino") -> TOML text, passed through unchanged.
	AcceleratorOptions map[string]string `toml:"accelerator_options"`
}

// IdleThreadCount is the thread count of the model's idle interpreter: idle_threads, or
// when 0 the cores the process may use (GOMAXPROCS, which follows the CPU affinity and a
// cgroup's CPU limit). A result not above threads means none.
func (m Model) IdleThreadCount() int {
	if m.IdleThreads > 0 {
		return m.IdleThreads
	}
	return runtime.GOMAXPROCS(0)
}

// Delegate is an external (vendor) delegate library.
type Delegate struct {
	Path    string            `toml:"path"`
	Options map[string]string `toml:"options"`
}

// Pipeline is pre plugin → model → post plugin.
type Pipeline struct {
	Model        string   `toml:"model"`
	Workers      int      `toml:"workers"`       // default 2
	QueueTimeout Duration `toml:"queue_timeout"` // default 5s
	// RequireSignatures rejects unsigned plugins in this pipeline (see [trust]).
	RequireSignatures bool `toml:"require_signatures"`
	// Golden input checked before a new version serves: the result must equal the file
	// GoldenExpectFile, or contain GoldenExpectContains.
	GoldenInput          string `toml:"golden_input"`
	GoldenExpectFile     string `toml:"golden_expect_file"`
	GoldenExpectContains string `toml:"golden_expect_contains"`
	// After a swap, roll back by itself if more than RollbackTrapShare of the first
	// RollbackWindow requests of the new version fail (traps, time budget, a non-zero plugin
	// status, inference errors; the key keeps its old name). Defaults 20 and 0.5; window 0
	// disables.
	RollbackWindow    *int     `toml:"rollback_window"`
	RollbackTrapShare *float64 `toml:"rollback_trap_share"`
	Pre               Plugin   `toml:"pre"`
	Post              Plugin   `toml:"post"`
	MQTT              *MQTT    `toml:"mqtt"`
	// Sequences bounds the pipeline's stateful streams (sequences.go).
	Sequences Sequences `toml:"sequences"`
	Stream    *Stream   `toml:"stream"` // a camera feeding the pipeline (stream.go)
	Cascade
}

// Cascade holds a pipeline's keys for plugins that run models themselves (ABI §5.9): the
// models each plugin may run are its grants.models.
type Cascade struct {
	// MaxModelCalls bounds the model calls of one request (default 32 when a plugin of the
	// pipeline is granted a model); past it a call fails and so does the request.
	MaxModelCalls int `toml:"max_model_calls"`
	// SharedInstance runs pre and post on one instance of the pre plugin (kind "both"), so
	// post reads what pre kept in its memory (the decoded image a cascade crops). post may
	// then be left out; if given it must name the same file.
	SharedInstance bool `toml:"shared_instance"`
}

// DefaultMaxModelCalls is max_model_calls when unset.
const DefaultMaxModelCalls = 32

// complete applies the cascade defaults and checks the grants of p's plugins against models.
func (c *Cascade) complete(p *Pipeline, models map[string]Model, bad func(string, ...string), name string) {
	if c.SharedInstance {
		switch {
		case p.Post.Path == "" && p.Post.Source == "":
			p.Post = p.Pre
		case p.Post.Path != p.Pre.Path || p.Post.Source != p.Pre.Source:
			bad("shared_instance runs one instance of the pre plugin: leave post out or name the same file", "pipelines", name, "post", "path")
		}
	}
	granted := false
	for _, role := range []string{"pre", "post"} {
		pl := p.Pre
		if role == "post" {
			pl = p.Post
		}
		for _, m := range pl.Grants.Models {
			granted = true
			if _, ok := models[m]; !ok {
				bad(fmt.Sprintf("model %q is not defined under [models]", m), "pipelines", name, role, "grants", "models")
			}
		}
	}
	switch {
	case c.MaxModelCalls < 0 || c.MaxModelCalls > 100000:
		bad(fmt.Sprintf("max_model_calls %d must be between 1 and 100000", c.MaxModelCalls), "pipelines", name, "max_model_calls")
	case c.MaxModelCalls == 0 && granted:
		c.MaxModelCalls = DefaultMaxModelCalls
	}
}

// Plugin is one plugin of a pipeline.
type Plugin struct {
	Path string `toml:"path"`
	// Source pulls the plugin from a registry: "oci://host:port/repo:tag" or "…@sha256:…".
	// Path is then the cached copy (set by Load, not written in the file).
	Source        string `toml:"source"`
	MemoryLimitMB int    `toml:"memory_limit_mb"` // default 64
	TimeoutMS     int    `toml:"timeout_ms"`      // per-call time budget; default 1000
	// BudgetClock is what timeout_ms measures: "wall" (default: elapsed time, what request
	// latency is) or "cpu" (CPU time of the thread running the guest, which a busy machine
	// does not inflate; a wall-clock ceiling of 10× the budget still applies).
	BudgetClock string            `toml:"budget_clock"`
	Params      map[string]any    `toml:"params"`
	ParamsFiles map[string]string `toml:"params_files"` // param name -> text file; its lines become a string array
	Grants      Grants            `toml:"grants"`
	// AllowDowngrade lets a tag source move to a lower plugin version than the one it
	// serves (a deliberate rollback); by default such a move is refused.
	AllowDowngrade bool `toml:"allow_downgrade"`
}

// Duration is a time.Duration written as a string such as "1.5s".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. \"500ms\", \"2s\")", b)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Error is a config problem, located as precisely as the TOML library allows.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key, "" when not about one key
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Load reads, checks and completes the config at path: defaults applied, paths absolute.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	data, err := safefile.ReadFile(abs, safefile.MaxConfig)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(abs, data)
}

// Parse is Load with the file's bytes already read; file names the source in errors.
func Parse(file string, data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Error{File: file, Line: line, Key: m[2], Msg: m[3]}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	var errs []error
	var reported []toml.Key
	for _, k := range md.Undecoded() {
		if isParams(k) || under(k, reported) {
			continue
		}
		reported = append(reported, k)
		errs = append(errs, &Error{File: file, Line: lineOf(data, k), Key: k.String(), Msg: "unknown key"})
	}
	c.File = file
	errs = append(errs, c.complete(data)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// decodeErrRE matches the library's type errors: toml: line 6 (last key "a.b"): msg.
var decodeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// under reports whether k lies inside a key already reported (an unknown table).
func under(k toml.Key, reported []toml.Key) bool {
	for _, r := range reported {
		if len(k) > len(r) && equalKey(r, k[:len(r)]) {
			return true
		}
	}
	return false
}

// isParams reports keys inside a plugin's free-form params table.
func isParams(k toml.Key) bool {
	return len(k) >= 5 && k[0] == "pipelines" && (k[2] == "pre" || k[2] == "post") && k[3] == "params"
}

// lineOf finds the line that defines key k: its own table header, its "key =" line inside
// its parent table, or the line of an inline table that contains it; failing those, the
// line of its parent. 0 when it cannot tell.
func lineOf(data []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	s := bufio.NewScanner(strings.NewReader(string(data)))
	var table []string
	inline := 0
	for n := 1; s.Scan(); n++ {
		line := stripComment(s.Text())
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			table = splitKey(strings.Trim(t, "[] \t"))
			if equalKey(table, k) {
				return n
			}
			continue
		}
		eq := strings.Index(t, "=")
		if eq <= 0 {
			continue
		}
		full := append(append([]string{}, table...), splitKey(strings.TrimSpace(t[:eq]))...)
		if equalKey(full, k) {
			return n
		}
		if inline == 0 && len(full) < len(k) && equalKey(full, k[:len(full)]) && strings.HasPrefix(strings.TrimSpace(t[eq+1:]), "{") {
			inline = n
		}
	}
	if inline > 0 {
		return inline
	}
	return lineOf(data, k[:len(k)-1])
}

func stripComment(line string) string {
	inStr := false
	for i, r := range line {
		switch {
		case r == '"':
			inStr = !inStr
		case r == '#' && !inStr:
			return line[:i]
		}
	}
	return line
}

// splitKey splits a dotted TOML key, honouring quotes.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	inStr := false
	for _, r := range s {
		switch {
		case r == '"':
			inStr = !inStr
		case r == '.' && !inStr:
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

func equalKey(a []string, b toml.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// complete applies defaults, resolves paths and validates values.
func (c *Config) complete(data []byte) []error {
	var errs []error
	bad := func(msg string, key ...string) {
		k := toml.Key(key)
		errs = append(errs, &Error{File: c.File, Line: lineOf(data, k), Key: k.String(), Msg: msg})
	}
	dir := filepath.Dir(c.File)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if c.Server.Address == "" {
		c.Server.Address = "127.0.0.1:8080"
	}
	if _, _, err := net.SplitHostPort(c.Server.Address); err != nil {
		bad(fmt.Sprintf("invalid address %q: %v", c.Server.Address, err), "server", "address")
	}
	if a := c.Server.GRPCAddress; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(fmt.Sprintf("invalid address %q: %v", a, err), "server", "grpc_address")
		} else if a == c.Server.Address {
			bad(fmt.Sprintf("%q is also server.address: HTTP and gRPC need their own ports", a), "server", "grpc_address")
		}
	}
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = 16 << 20
	} else if c.Server.MaxBodyBytes < 0 {
		bad("must be positive", "server", "max_body_bytes")
	}
	if c.Server.RequestTimeout.Duration == 0 {
		c.Server.RequestTimeout.Duration = 30 * time.Second
	}
	if c.Server.TransferTimeout.Duration == 0 {
		c.Server.TransferTimeout.Duration = 5 * time.Second
	} else if c.Server.TransferTimeout.Duration < 0 {
		bad("must be positive", "server", "transfer_timeout")
	}
	if c.Server.MinTransferRate == 0 {
		c.Server.MinTransferRate = 64 << 10
	} else if c.Server.MinTransferRate < 0 {
		bad("must be positive (bytes per second)", "server", "min_transfer_rate")
	}
	c.Server.completeSecurity(abs, bad)
	if c.Server.ShutdownTimeout.Duration == 0 {
		c.Server.ShutdownTimeout.Duration = 15 * time.Second
	}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "trace", "debug", "info", "warn", "error":
	default:
		bad(fmt.Sprintf("level %q must be one of trace, debug, info, warn, error", c.Log.Level), "log", "level")
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		bad(fmt.Sprintf("format %q must be text or json", c.Log.Format), "log", "format")
	}
	c.Runtime.CacheDir, c.Runtime.CacheKeyFile = abs(c.Runtime.CacheDir), abs(c.Runtime.CacheKeyFile)
	c.Runtime.LiteRTDir, c.Runtime.AcceleratorCacheDir = abs(c.Runtime.LiteRTDir), abs(c.Runtime.AcceleratorCacheDir)
	for i, f := range c.Trust.KeyFiles {
		c.Trust.KeyFiles[i] = abs(f)
	}
	switch c.Runtime.WasmEngine {
	case "", "auto":
		c.Runtime.WasmEngine = "auto"
	case "compiler", "interpreter":
	default:
		bad(fmt.Sprintf("wasm_engine %q must be auto, compiler or interpreter", c.Runtime.WasmEngine), "runtime", "wasm_engine")
	}
	if c.Runtime.Watch == nil {
		t := true
		c.Runtime.Watch = &t
	}
	c.OCI.complete(c.Runtime.CacheDir, abs, bad)
	for _, name := range sortedKeys(c.Models) {
		m := c.Models[name]
		if !nameRE.MatchString(name) {
			bad("model names may use letters, digits, '.', '_' and '-'", "models", name)
		}
		if m.Source != "" {
			if m.Path != "" {
				bad("path and source exclude each other (the path of a source is its cached copy)", "models", name, "path")
			}
			if r, err := ParseOCIRef(m.Source); err != nil {
				bad(err.Error(), "models", name, "source")
			} else {
				m.Path = r.CachePath(c.OCI.CacheDir, "model.tflite")
			}
		} else if m.Path == "" {
			bad("is required (or a source)", "models", name, "path")
		}
		m.Path = abs(m.Path)
		if m.Threads == 0 {
			m.Threads = DefaultThreads
		} else if m.Threads < 0 || m.Threads > 64 {
			bad(fmt.Sprintf("threads %d must be between 1 and 64", m.Threads), "models", name, "threads")
		}
		if m.IdleThreads < 0 || m.IdleThreads > 64 {
			bad(fmt.Sprintf("idle_threads %d must be between 0 (the cores) and 64", m.IdleThreads), "models", name, "idle_threads")
		}
		if m.XNNPACK == nil {
			t := true
			m.XNNPACK = &t
		}
		if m.Workers == 0 {
			m.Workers = 1
		} else if m.Workers < 0 {
			bad("must be positive", "models", name, "workers")
		}
		switch m.Accelerator {
		case "":
			if m.Vendor != "" {
				bad("vendor needs accelerator = \"npu\"", "models", name, "vendor")
			} else if len(m.AcceleratorOptions) > 0 {
				bad("accelerator_options need accelerator = \"cpu\", \"gpu\" or \"npu\"", "models", name, "accelerator_options")
			}
		case "cpu", "gpu", "npu":
			if c.Runtime.LiteRTDir == "" {
				bad(fmt.Sprintf("accelerator %q needs runtime.litert_dir (the LiteRT runtime directory)", m.Accelerator), "models", name, "accelerator")
			}
			if m.Accelerator == "npu" && m.Vendor == "" {
				bad("accelerator \"npu\" needs vendor (the dispatch under litert_dir/vendors, e.g. \"intel_openvino\")", "models", name, "vendor")
			}
			if m.Delegate != nil {
				bad("a vendor delegate runs on the classic TFLite API: drop accelerator or delegate", "models", name, "delegate")
			}
		default:
			bad(fmt.Sprintf("accelerator %q must be \"cpu\", \"gpu\" or \"npu\" (or absent for the classic TFLite API)", m.Accelerator), "models", name, "accelerator")
		}
		if m.Delegate != nil {
			if m.Delegate.Path == "" {
				bad("is required", "models", name, "delegate", "path")
			}
			m.Delegate.Path = abs(m.Delegate.Path)
		}
		c.Models[name] = m
	}
	if len(c.Pipelines) == 0 {
		errs = append(errs, &Error{File: c.File, Msg: "no [pipelines.NAME] defined: nothing to serve"})
	}
	for _, name := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[name]
		if !nameRE.MatchString(name) {
			bad("pipeline names may use letters, digits, '.', '_' and '-'", "pipelines", name)
		}
		if _, ok := c.Models[name]; ok {
			bad(fmt.Sprintf("a model is also called %q: pipeline and model names share one namespace", name), "pipelines", name)
		}
		if _, ok := c.Models[p.Model]; !ok {
			bad(fmt.Sprintf("model %q is not defined under [models]", p.Model), "pipelines", name, "model")
		}
		if p.Workers == 0 {
			p.Workers = 2
		} else if p.Workers < 0 || p.Workers > 256 {
			bad(fmt.Sprintf("workers %d must be between 1 and 256", p.Workers), "pipelines", name, "workers")
		}
		if p.QueueTimeout.Duration == 0 {
			p.QueueTimeout.Duration = 5 * time.Second
		}
		p.GoldenInput, p.GoldenExpectFile = abs(p.GoldenInput), abs(p.GoldenExpectFile)
		if p.GoldenInput == "" && (p.GoldenExpectFile != "" || p.GoldenExpectContains != "") {
			key := "golden_expect_file"
			if p.GoldenExpectFile == "" {
				key = "golden_expect_contains"
			}
			bad("needs golden_input", "pipelines", name, key)
		}
		if p.RollbackWindow == nil {
			w := 20
			p.RollbackWindow = &w
		} else if *p.RollbackWindow < 0 {
			bad("must not be negative", "pipelines", name, "rollback_window")
		}
		if p.RollbackTrapShare == nil {
			share := 0.5
			p.RollbackTrapShare = &share
		} else if *p.RollbackTrapShare < 0 || *p.RollbackTrapShare > 1 {
			bad("must be between 0 and 1", "pipelines", name, "rollback_trap_share")
		}
		p.Cascade.complete(&p, c.Models, bad, name)
		for _, role := range []string{"pre", "post"} {
			pl := &p.Pre
			if role == "post" {
				pl = &p.Post
			}
			if pl.Source != "" {
				if pl.Path != "" {
					bad("path and source exclude each other (the path of a source is its cached copy)", "pipelines", name, role, "path")
				}
				if r, err := ParseOCIRef(pl.Source); err != nil {
					bad(err.Error(), "pipelines", name, role, "source")
				} else {
					pl.Path = r.CachePath(c.OCI.CacheDir, "plugin.wasm")
				}
			} else if pl.Path == "" {
				bad("is required (or a source)", "pipelines", name, role, "path")
			}
			pl.Path = abs(pl.Path)
			if pl.MemoryLimitMB == 0 {
				pl.MemoryLimitMB = 64
			} else if pl.MemoryLimitMB < 1 || pl.MemoryLimitMB > 4095 {
				// 4096 MiB is the whole 32-bit address space: wazero's uint32 memory size wraps to 0.
				bad(fmt.Sprintf("memory_limit_mb %d must be between 1 and 4095 (a 32-bit guest addresses less than 4096 MiB)", pl.MemoryLimitMB), "pipelines", name, role, "memory_limit_mb")
			}
			if pl.TimeoutMS == 0 {
				pl.TimeoutMS = 1000
			} else if pl.TimeoutMS < 1 {
				bad("must be positive", "pipelines", name, role, "timeout_ms")
			}
			switch pl.BudgetClock {
			case "":
				pl.BudgetClock = "wall"
			case "wall", "cpu":
			default:
				bad(fmt.Sprintf("budget_clock %q must be \"wall\" or \"cpu\"", pl.BudgetClock), "pipelines", name, role, "budget_clock")
			}
			for k, f := range pl.ParamsFiles {
				pl.ParamsFiles[k] = abs(f)
			}
			for guest, host := range pl.Grants.Dirs {
				if !strings.HasPrefix(guest, "/") {
					bad(fmt.Sprintf("guest path %q must be absolute", guest), "pipelines", name, role, "grants", "dirs")
				}
				pl.Grants.Dirs[guest] = abs(host)
				if st, err := os.Stat(pl.Grants.Dirs[guest]); err != nil || !st.IsDir() {
					bad(fmt.Sprintf("%s is not a directory", pl.Grants.Dirs[guest]), "pipelines", name, role, "grants", "dirs")
				}
			}
		}
		if m := p.MQTT; m != nil {
			m.complete(name, p.Workers, abs, bad)
		}
		p.Sequences.complete(name, bad)
		if st := p.Stream; st != nil {
			st.complete(name, p.Workers, c.Server.MaxBodyBytes, abs, bad)
		}
		c.Pipelines[name] = p
	}
	return errs
}

// ResolveParams returns the plugin's params with each params_files entry read in as an
// array of its lines (trailing blank lines dropped).
func (p Plugin) ResolveParams() (map[string]any, error) {
	out := map[string]any{}
	for k, v := range p.Params {
		out[k] = v
	}
	for k, f := range p.ParamsFiles {
		b, err := safefile.ReadFile(f, safefile.MaxParams)
		if err != nil {
			return nil, fmt.Errorf("params_files.%s: %w", k, err)
		}
		lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
		arr := make([]any, len(lines))
		for i, l := range lines {
			arr[i] = strings.TrimSpace(l)
		}
		out[k] = arr
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PipelineNames returns the pipeline names in order.
func (c *Config) PipelineNames() []string { return sortedKeys(c.Pipelines) }

// ModelNames returns the model names in order.
func (c *Config) ModelNames() []string { return sortedKeys(c.Models) }

// Files returns the files a plugin reads at load: its module and its params files.
func (p Plugin) Files() []string {
	out := []string{p.Path}
	for _, f := range p.ParamsFiles {
		out = append(out, f)
	}
	return out
}

// Files returns every file a pipeline reads at load: both plugins' files and its golden
// files. A change to any of them rebuilds the pipeline.
func (p Pipeline) Files() []string {
	out := append(p.Pre.Files(), p.Post.Files()...)
	for _, f := range []string{p.GoldenInput, p.GoldenExpectFile} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

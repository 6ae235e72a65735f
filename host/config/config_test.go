package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
)

// minimal is the smallest valid config: one model, one pipeline. Line numbers matter: the
// error cases below append to it or edit it and assert the lines errors point at.
const minimal = `[models.m]
path = "m.tflite"

[pipelines.p]
model = "m"

[pipelines.p.pre]
path = "pre.wasm"

[pipelines.p.post]
path = "post.wasm"
`

// file is the name errors are expected to carry; Parse does not touch the file system
// except for grants dirs, so it need not exist.
const file = "/etc/edgehost/test.toml"

// configErrors flattens err (an *config.Error or an errors.Join of them) into its
// *config.Error parts; it fails the test on any other kind of error.
func configErrors(t *testing.T, err error) []*config.Error {
	t.Helper()
	var out []*config.Error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Errorf("error %q (%T) is not a *config.Error", e, e)
			return
		}
		out = append(out, ce)
	}
	walk(err)
	return out
}

func TestShippedConfigLoads(t *testing.T) {
	c, err := config.Load("../../config.toml")
	if err != nil {
		t.Fatalf("Load(config.toml): %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "config.toml"); c.File != want {
		t.Errorf("File = %q, want %q", c.File, want)
	}
	if got, want := c.PipelineNames(), []string{"animals", "classify", "classify-go", "detect", "people", "segment", "wakeword"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PipelineNames() = %q, want %q", got, want)
	}
	if got, want := c.ModelNames(), []string{"deeplab", "mobilenet", "okay_nabu", "pose", "ssd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ModelNames() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"server.address", c.Server.Address, "127.0.0.1:8080"},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, int64(16 << 20)},
		{"server.request_timeout", c.Server.RequestTimeout.Duration, 30 * time.Second},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout.Duration, 15 * time.Second},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"runtime.cache_dir", c.Runtime.CacheDir, filepath.Join(root, ".cache/wazero")},
		{"runtime.watch", *c.Runtime.Watch, true},
		{"runtime.wasm_engine", c.Runtime.WasmEngine, "auto"},
		{"models.mobilenet.path", c.Models["mobilenet"].Path, filepath.Join(root, ".deps/models/mobilenet_quant_v1_224.tflite")},
		{"models.mobilenet.threads", c.Models["mobilenet"].Threads, 1},
		{"models.mobilenet.workers", c.Models["mobilenet"].Workers, 1},
		{"models.ssd.workers", c.Models["ssd"].Workers, 1},
		{"pipelines.classify.model", c.Pipelines["classify"].Model, "mobilenet"},
		{"pipelines.classify.queue_timeout", c.Pipelines["classify"].QueueTimeout.Duration, 2 * time.Second},
		{"pipelines.detect.queue_timeout", c.Pipelines["detect"].QueueTimeout.Duration, 5 * time.Second},
		{"pipelines.classify.pre.path", c.Pipelines["classify"].Pre.Path, filepath.Join(root, "plugins/examples/imagepre-c/imagepre-c.wasm")},
		{"pipelines.classify.pre.params", c.Pipelines["classify"].Pre.Params, map[string]any{"mean": 127.5, "std": 127.5}},
		{"pipelines.classify.post.params_files", c.Pipelines["classify"].Post.ParamsFiles, map[string]string{"labels": filepath.Join(root, ".deps/models/mobilenet_labels.txt")}},
		{"pipelines.classify.pre.memory_limit_mb", c.Pipelines["classify"].Pre.MemoryLimitMB, 32},
		{"pipelines.classify.post.memory_limit_mb", c.Pipelines["classify"].Post.MemoryLimitMB, 16},
		{"pipelines.detect.post.params", c.Pipelines["detect"].Post.Params, map[string]any{"threshold": 0.5, "label_offset": int64(1)}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	// Every path the shipped config names exists (make deps and make plugins ran).
	for _, name := range c.PipelineNames() {
		p := c.Pipelines[name]
		for _, f := range []string{c.Models[p.Model].Path, p.Pre.Path, p.Post.Path} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("pipeline %s: %v", name, err)
			}
		}
		for _, pl := range []config.Plugin{p.Pre, p.Post} {
			if _, err := pl.ResolveParams(); err != nil {
				t.Errorf("pipeline %s: ResolveParams: %v", name, err)
			}
		}
	}
	params, err := c.Pipelines["classify"].Post.ResolveParams()
	if err != nil {
		t.Fatal(err)
	}
	labels, ok := params["labels"].([]any)
	if !ok || len(labels) < 1000 {
		t.Fatalf("classify post labels = %T with %d entries, want []any with >= 1000", params["labels"], len(labels))
	}
	if !contains(labels, "peacock") {
		t.Errorf("classify post labels lack %q", "peacock")
	}
	if params["top_k"] != int64(5) {
		t.Errorf("classify post top_k = %#v, want int64(5)", params["top_k"])
	}
}

func contains(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestDefaults(t *testing.T) {
	c, err := config.Parse(file, []byte(minimal))
	if err != nil {
		t.Fatalf("Parse(minimal): %v", err)
	}
	m, p := c.Models["m"], c.Pipelines["p"]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"File", c.File, file},
		{"server.address", c.Server.Address, "127.0.0.1:8080"},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, int64(16 << 20)},
		{"server.request_timeout", c.Server.RequestTimeout.Duration, 30 * time.Second},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout.Duration, 15 * time.Second},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"runtime.cache_dir", c.Runtime.CacheDir, ""},
		{"runtime.watch", *c.Runtime.Watch, true},
		{"trust.require_signatures", c.Trust.RequireSignatures, false},
		{"models.m.threads", m.Threads, config.DefaultThreads},
		{"models.m.xnnpack", *m.XNNPACK, true},
		{"models.m.workers", m.Workers, 1},
		{"models.m.delegate", m.Delegate, (*config.Delegate)(nil)},
		{"pipelines.p.workers", p.Workers, 2},
		{"pipelines.p.queue_timeout", p.QueueTimeout.Duration, 5 * time.Second},
		{"pipelines.p.require_signatures", p.RequireSignatures, false},
		{"pipelines.p.rollback_window", *p.RollbackWindow, 20},
		{"pipelines.p.rollback_trap_share", *p.RollbackTrapShare, 0.5},
		{"pipelines.p.golden_input", p.GoldenInput, ""},
		{"pipelines.p.pre.memory_limit_mb", p.Pre.MemoryLimitMB, 64},
		{"pipelines.p.pre.timeout_ms", p.Pre.TimeoutMS, 1000},
		{"pipelines.p.post.memory_limit_mb", p.Post.MemoryLimitMB, 64},
		{"pipelines.p.post.timeout_ms", p.Post.TimeoutMS, 1000},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestExplicitValuesKept(t *testing.T) {
	c, err := config.Parse(file, []byte(`
[server]
address = ":9000"
max_body_bytes = 1024
request_timeout = "1.5s"
shutdown_timeout = "250ms"
[log]
level = "debug"
format = "json"
[runtime]
watch = false
[models.m]
path = "m.tflite"
threads = 4
xnnpack = false
workers = 3
[pipelines.p]
model = "m"
workers = 7
queue_timeout = "100ms"
rollback_window = 0
rollback_trap_share = 0.25
[pipelines.p.pre]
path = "pre.wasm"
memory_limit_mb = 8
timeout_ms = 50
[pipelines.p.post]
path = "post.wasm"
params = { top_k = 3, nested = { a = [1, 2] } }
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	m, p := c.Models["m"], c.Pipelines["p"]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"server.address", c.Server.Address, ":9000"},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, int64(1024)},
		{"server.request_timeout", c.Server.RequestTimeout.Duration, 1500 * time.Millisecond},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout.Duration, 250 * time.Millisecond},
		{"log.level", c.Log.Level, "debug"},
		{"log.format", c.Log.Format, "json"},
		{"runtime.watch", *c.Runtime.Watch, false},
		{"models.m.threads", m.Threads, 4},
		{"models.m.xnnpack", *m.XNNPACK, false},
		{"models.m.workers", m.Workers, 3},
		{"pipelines.p.workers", p.Workers, 7},
		{"pipelines.p.queue_timeout", p.QueueTimeout.Duration, 100 * time.Millisecond},
		{"pipelines.p.rollback_window", *p.RollbackWindow, 0},
		{"pipelines.p.rollback_trap_share", *p.RollbackTrapShare, 0.25},
		{"pipelines.p.pre.memory_limit_mb", p.Pre.MemoryLimitMB, 8},
		{"pipelines.p.pre.timeout_ms", p.Pre.TimeoutMS, 50},
		{"pipelines.p.post.params", p.Post.Params, map[string]any{"top_k": int64(3), "nested": map[string]any{"a": []any{int64(1), int64(2)}}}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestRelativePathsResolved(t *testing.T) {
	dir := t.TempDir()
	grants := filepath.Join(dir, "data")
	if err := os.Mkdir(grants, 0o755); err != nil {
		t.Fatal(err)
	}
	src := `
[runtime]
cache_dir = "cache"
[trust]
key_files = ["keys/vendor.pub", "/abs/other.pub"]
[models.m]
path = "models/m.tflite"
delegate = { path = "lib/delegate.so", options = { device = "usb" } }
[models.abs]
path = "/opt/models/abs.tflite"
[pipelines.p]
model = "m"
golden_input = "golden/in.png"
golden_expect_file = "golden/out.json"
[pipelines.p.pre]
path = "plugins/pre.wasm"
grants = { dirs = { "/data" = "data" } }
[pipelines.p.post]
path = "../up/post.wasm"
params_files = { labels = "labels.txt", abs = "/abs/labels.txt" }
`
	cfgFile := filepath.Join(dir, "sub", "edgehost.toml")
	if err := os.MkdirAll(filepath.Dir(cfgFile), 0o755); err != nil {
		t.Fatal(err)
	}
	// Load resolves against the directory of the file, given a relative or absolute path.
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(src, `"data"`, `"../data"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgFile)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	sub := filepath.Dir(cfgFile)
	p := c.Pipelines["p"]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"File", c.File, cfgFile},
		{"runtime.cache_dir", c.Runtime.CacheDir, filepath.Join(sub, "cache")},
		{"trust.key_files", c.Trust.KeyFiles, []string{filepath.Join(sub, "keys/vendor.pub"), "/abs/other.pub"}},
		{"models.m.path", c.Models["m"].Path, filepath.Join(sub, "models/m.tflite")},
		{"models.m.delegate.path", c.Models["m"].Delegate.Path, filepath.Join(sub, "lib/delegate.so")},
		{"models.m.delegate.options", c.Models["m"].Delegate.Options, map[string]string{"device": "usb"}},
		{"models.abs.path", c.Models["abs"].Path, "/opt/models/abs.tflite"},
		{"pipelines.p.golden_input", p.GoldenInput, filepath.Join(sub, "golden/in.png")},
		{"pipelines.p.golden_expect_file", p.GoldenExpectFile, filepath.Join(sub, "golden/out.json")},
		{"pipelines.p.pre.path", p.Pre.Path, filepath.Join(sub, "plugins/pre.wasm")},
		{"pipelines.p.pre.grants.dirs", p.Pre.Grants.Dirs, map[string]string{"/data": grants}},
		{"pipelines.p.post.path", p.Post.Path, filepath.Join(dir, "up/post.wasm")},
		{"pipelines.p.post.params_files", p.Post.ParamsFiles, map[string]string{"labels": filepath.Join(sub, "labels.txt"), "abs": "/abs/labels.txt"}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}

	// Parse resolves against the directory of the file name it is given.
	c, err = config.Parse(filepath.Join(dir, "edgehost.toml"), []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := c.Models["m"].Path, filepath.Join(dir, "models/m.tflite"); got != want {
		t.Errorf("Parse: models.m.path = %q, want %q", got, want)
	}
	if got, want := c.Pipelines["p"].Pre.Grants.Dirs["/data"], grants; got != want {
		t.Errorf("Parse: grants dir = %q, want %q", got, want)
	}
}

func TestResolveParams(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name    string
		params  map[string]any
		files   map[string]string // param name -> file content
		want    map[string]any
		wantErr string
	}{
		{
			name: "no params",
			want: map[string]any{},
		},
		{
			name:   "params only",
			params: map[string]any{"top_k": int64(5), "mean": 127.5},
			want:   map[string]any{"top_k": int64(5), "mean": 127.5},
		},
		{
			name:  "lines become strings",
			files: map[string]string{"labels": "background\ntench\ngoldfish\n"},
			want:  map[string]any{"labels": []any{"background", "tench", "goldfish"}},
		},
		{
			name:  "CRLF, surrounding spaces and trailing blank lines",
			files: map[string]string{"labels": "  a \r\nb\r\n\r\n\n\n"},
			want:  map[string]any{"labels": []any{"a", "b"}},
		},
		{
			name:  "blank lines inside are kept (indices matter)",
			files: map[string]string{"labels": "a\n\nc"},
			want:  map[string]any{"labels": []any{"a", "", "c"}},
		},
		{
			name:   "file wins over a param of the same name, others kept",
			params: map[string]any{"labels": "inline", "top_k": int64(1)},
			files:  map[string]string{"labels": "x\ny\n", "names": "n\n"},
			want:   map[string]any{"labels": []any{"x", "y"}, "names": []any{"n"}, "top_k": int64(1)},
		},
		{
			name:    "missing file",
			files:   map[string]string{"labels": ""}, // replaced by a missing path below
			wantErr: "params_files.labels:",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := config.Plugin{Params: tc.params, ParamsFiles: map[string]string{}}
			for k, content := range tc.files {
				p.ParamsFiles[k] = write(fmt.Sprintf("%d-%s.txt", i, k), content)
				if tc.wantErr != "" {
					p.ParamsFiles[k] = filepath.Join(dir, "missing.txt")
				}
			}
			var before map[string]any
			if tc.params != nil {
				before = map[string]any{}
				for k, v := range tc.params {
					before[k] = v
				}
			}
			got, err := p.ResolveParams()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("ResolveParams() error = %v, want one containing %q and wrapping os.ErrNotExist", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveParams(): %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ResolveParams() = %#v, want %#v", got, tc.want)
			}
			if !reflect.DeepEqual(p.Params, before) {
				t.Errorf("ResolveParams modified Params: %#v, was %#v", p.Params, before)
			}
		})
	}

	// Through Parse: params_files in the TOML are resolved against the config's directory.
	write("labels.txt", "cat\ndog\n")
	c, err := config.Parse(filepath.Join(dir, "c.toml"), []byte(minimal+`params = { top_k = 2 }
params_files = { labels = "labels.txt" }
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Pipelines["p"].Post.ResolveParams()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"top_k": int64(2), "labels": []any{"cat", "dog"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveParams() = %#v, want %#v", got, want)
	}
}

// wantErr is one expected *config.Error.
type wantErr struct {
	line int
	key  string
	msg  string // a substring of the message
}

func TestErrors(t *testing.T) {
	missingDir := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		toml string
		want []wantErr
	}{
		{
			name: "unknown top-level key",
			toml: "colour = \"blue\"\n" + minimal,
			want: []wantErr{{1, "colour", "unknown key"}},
		},
		{
			name: "unknown top-level table",
			toml: minimal + "[metrics]\nenabled = true\n",
			want: []wantErr{{12, "metrics", "unknown key"}}, // keys inside an unknown table are not repeated
		},
		{
			name: "unknown key in pre",
			toml: strings.Replace(minimal, "path = \"pre.wasm\"\n", "path = \"pre.wasm\"\nmemory_limit = 3\n", 1),
			want: []wantErr{{9, "pipelines.p.pre.memory_limit", "unknown key"}},
		},
		{
			name: "typo in pipeline",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nworker = 2\n", 1),
			want: []wantErr{{6, "pipelines.p.worker", "unknown key"}},
		},
		{
			name: "same unknown key in two tables",
			toml: "[log]\nport = 1\n[server]\nport = 8080\n" + minimal,
			want: []wantErr{{2, "log.port", "unknown key"}, {4, "server.port", "unknown key"}},
		},
		{
			name: "unknown key in grants table",
			toml: minimal + "[pipelines.p.post.grants]\nnetwork = true\n",
			want: []wantErr{{13, "pipelines.p.post.grants.network", "unknown key"}},
		},
		{
			name: "unknown key in grants inline table",
			toml: minimal + "grants = { network = true }\n",
			want: []wantErr{{12, "pipelines.p.post.grants.network", "unknown key"}},
		},
		{
			name: "free-form params keys are not unknown",
			toml: minimal + "params = { anything = 1, deep = { x = [1] } }\n[pipelines.p.pre.params]\nalso = true\n[pipelines.p.post.bogus]\nx = 1\n",
			want: []wantErr{{15, "pipelines.p.post.bogus", "unknown key"}},
		},
		{
			name: "negative pipeline workers",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nworkers = -3\n", 1),
			want: []wantErr{{6, "pipelines.p.workers", "workers -3 must be between 1 and 256"}},
		},
		{
			name: "too many pipeline workers",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nworkers = 257\n", 1),
			want: []wantErr{{6, "pipelines.p.workers", "workers 257 must be between 1 and 256"}},
		},
		{
			name: "negative model workers",
			toml: strings.Replace(minimal, "path = \"m.tflite\"\n", "path = \"m.tflite\"\nworkers = -1\n", 1),
			want: []wantErr{{3, "models.m.workers", "must be positive"}},
		},
		{
			name: "threads 100",
			toml: strings.Replace(minimal, "path = \"m.tflite\"\n", "path = \"m.tflite\"\nthreads = 100\n", 1),
			want: []wantErr{{3, "models.m.threads", "threads 100 must be between 1 and 64"}},
		},
		{
			name: "unknown accelerator",
			toml: "[runtime]\nlitert_dir = \"lrt\"\n" + strings.Replace(minimal, "path = \"m.tflite\"\n", "path = \"m.tflite\"\naccelerator = \"tpu\"\n", 1),
			want: []wantErr{{5, "models.m.accelerator", `accelerator "tpu" must be "cpu", "gpu" or "npu"`}},
		},
		{
			name: "accelerator without litert_dir",
			toml: strings.Replace(minimal, "path = \"m.tflite\"\n", "path = \"m.tflite\"\naccelerator = \"gpu\"\n", 1),
			want: []wantErr{{3, "models.m.accelerator", `accelerator "gpu" needs runtime.litert_dir`}},
		},
		{
			name: "npu without vendor",
			toml: "[runtime]\nlitert_dir = \"lrt\"\n" + strings.Replace(minimal, "path = \"m.tflite\"\n", "path = \"m.tflite\"\naccelerator = \"npu\"\n", 1),
			want: []wantErr{{3, "models.m.vendor", `accelerator "npu" needs vendor`}},
		},
		{
			name: "vendor without accelerator",
			toml: strings.Replace(minimal, "path = \"m.tflite\"\n", "path = \"m.tflite\"\nvendor = \"intel_openvino\"\n", 1),
			want: []wantErr{{3, "models.m.vendor", `vendor needs accelerator = "npu"`}},
		},
		{
			name: "log level loud",
			toml: "[log]\nlevel = \"loud\"\n" + minimal,
			want: []wantErr{{2, "log.level", `level "loud" must be one of trace, debug, info, warn, error`}},
		},
		{
			name: "wasm engine jit",
			toml: "[runtime]\nwasm_engine = \"jit\"\n" + minimal,
			want: []wantErr{{2, "runtime.wasm_engine", `wasm_engine "jit" must be auto, compiler or interpreter`}},
		},
		{
			name: "log format xml",
			toml: "[log]\nformat = \"xml\"\n" + minimal,
			want: []wantErr{{2, "log.format", `format "xml" must be text or json`}},
		},
		{
			name: "bad address",
			toml: "[server]\naddress = \"localhost\"\n" + minimal,
			want: []wantErr{{2, "server.address", `invalid address "localhost"`}},
		},
		{
			name: "bad grpc address",
			toml: "[server]\ngrpc_address = \"8001\"\n" + minimal,
			want: []wantErr{{2, "server.grpc_address", `invalid address "8001"`}},
		},
		{
			name: "grpc address same as address",
			toml: "[server]\naddress = \"127.0.0.1:9000\"\ngrpc_address = \"127.0.0.1:9000\"\n" + minimal,
			want: []wantErr{{3, "server.grpc_address", "HTTP and gRPC need their own ports"}},
		},
		{
			name: "negative max body",
			toml: "[server]\nmax_body_bytes = -1\n" + minimal,
			want: []wantErr{{2, "server.max_body_bytes", "must be positive"}},
		},
		{
			name: "bad duration",
			toml: "[server]\nrequest_timeout = \"5 parsecs\"\n" + minimal,
			want: []wantErr{{2, "server.request_timeout", `invalid duration "5 parsecs"`}},
		},
		{
			name: "negative duration",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nqueue_timeout = \"-1s\"\n", 1),
			want: []wantErr{{6, "pipelines.p.queue_timeout", `duration "-1s" is negative`}},
		},
		{
			name: "wrong type",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nworkers = \"two\"\n", 1),
			want: []wantErr{{6, "pipelines.p.workers", "incompatible types"}},
		},
		{
			name: "rollback_trap_share 2",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nrollback_trap_share = 2.0\n", 1),
			want: []wantErr{{6, "pipelines.p.rollback_trap_share", "must be between 0 and 1"}},
		},
		{
			name: "negative rollback_window",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\nrollback_window = -1\n", 1),
			want: []wantErr{{6, "pipelines.p.rollback_window", "must not be negative"}},
		},
		{
			name: "undefined model",
			toml: strings.Replace(minimal, "model = \"m\"", "model = \"resnet\"", 1),
			want: []wantErr{{5, "pipelines.p.model", `model "resnet" is not defined under [models]`}},
		},
		{
			name: "missing model key",
			toml: strings.Replace(minimal, "model = \"m\"", "", 1),
			want: []wantErr{{4, "pipelines.p.model", `model "" is not defined`}},
		},
		{
			name: "pipeline and model with the same name",
			toml: minimal + "\n[models.p]\npath = \"p.tflite\"\n",
			want: []wantErr{{4, "pipelines.p", `a model is also called "p"`}},
		},
		{
			name: "no pipelines",
			toml: "[models.m]\npath = \"m.tflite\"\n",
			want: []wantErr{{0, "", "no [pipelines.NAME] defined"}},
		},
		{
			name: "empty file",
			toml: "",
			want: []wantErr{{0, "", "no [pipelines.NAME] defined"}},
		},
		{
			name: "model without path",
			toml: strings.Replace(minimal, "path = \"m.tflite\"\n", "threads = 1\n", 1),
			want: []wantErr{{1, "models.m.path", "is required"}},
		},
		{
			name: "plugin without path",
			toml: strings.Replace(minimal, "path = \"post.wasm\"\n", "timeout_ms = 5\n", 1),
			want: []wantErr{{10, "pipelines.p.post.path", "is required"}},
		},
		{
			name: "bad model name",
			toml: strings.Replace(strings.Replace(minimal, "[models.m]", "[models._m]", 1), "model = \"m\"", "model = \"_m\"", 1),
			want: []wantErr{{1, "models._m", "model names may use letters, digits"}},
		},
		{
			name: "bad pipeline name (quoted key)",
			toml: "[models.m]\npath = \"m.tflite\"\n" +
				"[pipelines.\"a b\"]\nmodel = \"m\"\n[pipelines.\"a b\".pre]\npath = \"pre.wasm\"\n[pipelines.\"a b\".post]\npath = \"post.wasm\"\n",
			want: []wantErr{{3, `pipelines."a b"`, "pipeline names may use letters, digits"}},
		},
		{
			name: "table header with a comment",
			toml: "[models.m]\npath = \"m.tflite\"\n" +
				"[pipelines.a]\nmodel = \"m\"\nworkers = 1\n[pipelines.a.pre]\npath = \"pre.wasm\"\n[pipelines.a.post]\npath = \"post.wasm\"\n" +
				"[pipelines.b]  # the second pipeline\nmodel = \"m\"\nworkers = -1\n[pipelines.b.pre]\npath = \"pre.wasm\"\n[pipelines.b.post]\npath = \"post.wasm\"\n",
			want: []wantErr{{12, "pipelines.b.workers", "workers -1 must be between 1 and 256"}},
		},
		{
			name: "memory limit too large",
			toml: minimal + "memory_limit_mb = 5000\n",
			want: []wantErr{{12, "pipelines.p.post.memory_limit_mb", "memory_limit_mb 5000 must be between 1 and 4095"}},
		},
		{
			// 4096 MiB wrapped wazero's 32-bit memory size to 0 ("outside memory (0 bytes)").
			name: "memory limit of 4 GiB",
			toml: minimal + "memory_limit_mb = 4096\n",
			want: []wantErr{{12, "pipelines.p.post.memory_limit_mb", "memory_limit_mb 4096 must be between 1 and 4095"}},
		},
		{
			name: "negative timeout_ms",
			toml: minimal + "timeout_ms = -5\n",
			want: []wantErr{{12, "pipelines.p.post.timeout_ms", "must be positive"}},
		},
		{
			name: "unknown budget clock",
			toml: minimal + "budget_clock = \"monotonic\"\n",
			want: []wantErr{{12, "pipelines.p.post.budget_clock", `budget_clock "monotonic" must be "wall" or "cpu"`}},
		},
		{
			name: "golden expectation without input",
			toml: strings.Replace(minimal, "model = \"m\"\n", "model = \"m\"\ngolden_expect_contains = \"peacock\"\n", 1),
			want: []wantErr{{6, "pipelines.p.golden_expect_contains", "needs golden_input"}},
		},
		{
			name: "grants dir does not exist",
			toml: minimal + "\n[pipelines.p.post.grants]\ndirs = { \"/data\" = \"" + missingDir + "\" }\n",
			want: []wantErr{{14, "pipelines.p.post.grants.dirs", missingDir + " is not a directory"}},
		},
		{
			name: "grants dir is a file",
			toml: minimal + "\n[pipelines.p.post.grants.dirs]\n\"/data\" = \"/etc/hostname\"\n",
			want: []wantErr{{13, "pipelines.p.post.grants.dirs", "/etc/hostname is not a directory"}},
		},
		{
			name: "grants dir does not exist, inline table",
			toml: minimal + "grants = { dirs = { \"/data\" = \"" + missingDir + "\" } }\n",
			want: []wantErr{{12, "pipelines.p.post.grants.dirs", missingDir + " is not a directory"}},
		},
		{
			name: "relative guest path",
			toml: minimal + "\n[pipelines.p.post.grants]\ndirs = { \"data\" = \"/\" }\n",
			want: []wantErr{{14, "pipelines.p.post.grants.dirs", `guest path "data" must be absolute`}},
		},
		{
			name: "syntax error",
			toml: strings.Replace(minimal, "model = \"m\"", "model = \"m", 1),
			want: []wantErr{{5, "pipelines.p.model", ""}},
		},
		{
			name: "syntax error: duplicate key",
			toml: strings.Replace(minimal, "path = \"pre.wasm\"\n", "path = \"pre.wasm\"\npath = \"other.wasm\"\n", 1),
			want: []wantErr{{9, "pipelines.p.pre.path", "has already been defined"}},
		},
		{
			name: "several errors are all reported",
			toml: `[server]
address = "nope"
[log]
level = "loud"
[models.m]
path = "m.tflite"
threads = 100
[pipelines.p]
model = "m"
worker = 2
rollback_trap_share = 2.0
[pipelines.p.pre]
path = "pre.wasm"
colour = "red"
[pipelines.p.post]
path = "post.wasm"
[pipelines.q]
model = "nothing"
[pipelines.q.pre]
path = "pre.wasm"
[pipelines.q.post]
path = "post.wasm"
`,
			want: []wantErr{
				{10, "pipelines.p.worker", "unknown key"},
				{14, "pipelines.p.pre.colour", "unknown key"},
				{2, "server.address", "invalid address"},
				{4, "log.level", `level "loud"`},
				{7, "models.m.threads", "threads 100"},
				{11, "pipelines.p.rollback_trap_share", "must be between 0 and 1"},
				{18, "pipelines.q.model", `model "nothing" is not defined`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse(file, []byte(tc.toml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors %+v", c, tc.want)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with error %v", err)
			}
			text := err.Error()
			// Always: one error per expectation, each naming the file and its message.
			got := configErrors(t, err)
			if len(got) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(tc.want), text)
			}
			for _, g := range got {
				if g.File != file || !strings.HasPrefix(g.Error(), file) {
					t.Errorf("error %q does not name the file %s", g, file)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w.msg) {
					t.Errorf("error text lacks %q:\n%s", w.msg, text)
				}
			}
			// Exact: line and dotted key, as fields and as "file:line: key: " in the text.
			var strict []string
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					if g.Line == w.line && g.Key == w.key && strings.Contains(g.Msg, w.msg) {
						found = true
					}
				}
				prefix := file
				if w.line > 0 {
					prefix += fmt.Sprintf(":%d", w.line)
				}
				if w.key != "" {
					prefix += ": " + w.key
				}
				prefix += ": "
				if !found || !strings.Contains(text, prefix) {
					strict = append(strict, fmt.Sprintf("no error %q with message containing %q", prefix, w.msg))
				}
			}
			if len(strict) > 0 {
				t.Errorf("%s\ngot:\n%s", strings.Join(strict, "\n"), text)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  config.Error
		want string
	}{
		{config.Error{File: "c.toml", Line: 12, Key: "pipelines.classify.workers", Msg: "workers -3 must be between 1 and 256"},
			"c.toml:12: pipelines.classify.workers: workers -3 must be between 1 and 256"},
		{config.Error{File: "c.toml", Key: "a.b", Msg: "bad"}, "c.toml: a.b: bad"},
		{config.Error{File: "c.toml", Line: 3, Msg: "bad"}, "c.toml:3: bad"},
		{config.Error{File: "c.toml", Msg: "bad"}, "c.toml: bad"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")
	if _, err := config.Load(missing); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) error = %v, want a not-exist error naming %s", err, missing)
	}
	// Load reports the absolute path of the file, even when given a relative one.
	f := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(f, []byte("[log]\nlevel = \"loud\"\n"+minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(rel)
	if want := f + ":2: log.level: "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load(%s) error = %v, want one containing %q", rel, err, want)
	}
}

// TestCascadeKeys: grants.models must name defined models; shared_instance takes the pre
// plugin for post (or the same file); max_model_calls defaults when a model is granted.
func TestCascadeKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) (*config.Config, error) {
		p := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(p, []byte("[models.m]\npath = \"m.tflite\"\n[models.pose]\npath = \"p.tflite\"\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return config.Load(p)
	}
	c, err := write("[pipelines.p]\nmodel = \"m\"\nshared_instance = true\n[pipelines.p.pre]\npath = \"x.wasm\"\ngrants = { models = [\"pose\"] }\n")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipelines["p"]
	if p.Post.Path != p.Pre.Path || p.MaxModelCalls != config.DefaultMaxModelCalls || !p.SharedInstance {
		t.Errorf("post %q (pre %q), max_model_calls %d", p.Post.Path, p.Pre.Path, p.MaxModelCalls)
	}
	for _, tc := range []struct{ body, want string }{
		{"[pipelines.p]\nmodel = \"m\"\n[pipelines.p.pre]\npath = \"x.wasm\"\ngrants = { models = [\"nope\"] }\n[pipelines.p.post]\npath = \"y.wasm\"\n",
			`pipelines.p.pre.grants.models: model "nope" is not defined under [models]`},
		{"[pipelines.p]\nmodel = \"m\"\nshared_instance = true\n[pipelines.p.pre]\npath = \"x.wasm\"\n[pipelines.p.post]\npath = \"y.wasm\"\n",
			"shared_instance runs one instance of the pre plugin"},
		{"[pipelines.p]\nmodel = \"m\"\nmax_model_calls = -1\n[pipelines.p.pre]\npath = \"x.wasm\"\n[pipelines.p.post]\npath = \"y.wasm\"\n",
			"max_model_calls -1 must be between 1 and 100000"},
	} {
		if _, err := write(tc.body); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

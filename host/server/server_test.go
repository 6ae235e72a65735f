package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
)

// start serves cfg on a free loopback port and returns its base URL.
func start(t testing.TB, cfg *config.Config) string {
	t.Helper()
	_, url := serve(t, cfg)
	return url
}

// serve is start, also returning the engine; both stop when the test ends.
func serve(t testing.TB, cfg *config.Config) (*engine.Engine, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := engine.New(ctx, cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(e, cfg.Server, hclog.NewNullLogger())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		e.Close(context.Background())
	})
	return e, "http://" + l.Addr().String()
}

var (
	shippedOnce sync.Once
	shippedURL  string
)

// shipped serves the repository's config.toml as shipped (one server for the package).
func shipped(t testing.TB) string {
	shippedOnce.Do(func() {
		cfg, err := config.Load(filepath.Join(testplugins.Root, "config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		relax(cfg)
		ctx := context.Background()
		e, err := engine.New(ctx, cfg, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go server.New(e, cfg.Server, hclog.NewNullLogger()).Serve(ctx, l)
		shippedURL = "http://" + l.Addr().String()
	})
	if shippedURL == "" {
		t.Fatal("shipped config did not start")
	}
	return shippedURL
}

func peacock(t testing.TB) []byte {
	b, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t testing.TB, url, ct string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func top1(t testing.TB, result []byte) string {
	t.Helper()
	var r struct {
		Top []struct{ Label string } `json:"top"`
	}
	if err := json.Unmarshal(result, &r); err != nil || len(r.Top) == 0 {
		t.Fatalf("result %q: %v", result, err)
	}
	return r.Top[0].Label
}

func TestShippedConfigClassifies(t *testing.T) {
	url := shipped(t)
	img := peacock(t)
	t.Run("raw", func(t *testing.T) {
		for _, p := range []string{"classify", "classify-go"} {
			code, h, b := post(t, url+"/v1/pipelines/"+p, "image/png", img, nil)
			if code != 200 || h.Get("Content-Type") != "application/json" || top1(t, b) != "peacock" {
				t.Fatalf("%s: %d %s %s", p, code, h.Get("Content-Type"), b)
			}
		}
	})
	t.Run("kserve json", func(t *testing.T) {
		data := make([]int, len(img))
		for i, v := range img {
			data[i] = int(v)
		}
		body, _ := json.Marshal(map[string]any{"id": "r1", "inputs": []any{map[string]any{
			"name": "input", "shape": []int{len(img)}, "datatype": "UINT8", "data": data}}})
		code, _, b := post(t, url+"/v2/models/classify/infer", "application/json", body, nil)
		var resp struct {
			ID      string `json:"id"`
			Outputs []struct {
				Name, Datatype string
				Data           []string
			} `json:"outputs"`
		}
		if code != 200 || json.Unmarshal(b, &resp) != nil || len(resp.Outputs) != 1 || resp.ID != "r1" {
			t.Fatalf("%d %s", code, b)
		}
		if l := top1(t, []byte(resp.Outputs[0].Data[0])); l != "peacock" {
			t.Fatalf("label %s", l)
		}
	})
	t.Run("kserve binary", func(t *testing.T) {
		hdr, _ := json.Marshal(map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{1}, "datatype": "BYTES", "parameters": map[string]any{"binary_data_size": len(img) + 4}}},
			"outputs": []any{map[string]any{"name": "result", "parameters": map[string]any{"binary_data": true}}}})
		body := append(append(append([]byte{}, hdr...), binary.LittleEndian.AppendUint32(nil, uint32(len(img)))...), img...)
		code, h, b := post(t, url+"/v2/models/classify/infer", "application/octet-stream", body, map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))})
		if code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		n, _ := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
		var resp struct {
			Outputs []struct {
				Parameters map[string]int `json:"parameters"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(b[:n], &resp); err != nil {
			t.Fatal(err)
		}
		bin := b[n:]
		if len(bin) != resp.Outputs[0].Parameters["binary_data_size"] || int(binary.LittleEndian.Uint32(bin)) != len(bin)-4 {
			t.Fatalf("binary output framing: %d bytes, header %s", len(bin), b[:n])
		}
		if l := top1(t, bin[4:]); l != "peacock" {
			t.Fatalf("label %s", l)
		}
	})
	t.Run("kserve bare model", func(t *testing.T) {
		// The bare model takes the 224x224 RGB tensor itself.
		in := make([]byte, 224*224*3)
		hdr, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "Placeholder", "shape": []int{1, 224, 224, 3},
			"datatype": "UINT8", "parameters": map[string]any{"binary_data_size": len(in)}}}})
		code, _, b := post(t, url+"/v2/models/mobilenet/infer", "application/octet-stream", append(hdr, in...),
			map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))})
		if code != 200 || !strings.Contains(string(b), `"shape":[1,1001]`) {
			t.Fatalf("%d %.300s", code, b)
		}
	})
	t.Run("health and metadata", func(t *testing.T) {
		for path, want := range map[string]string{
			"/v2/health/live": `"live":true`, "/v2/health/ready": `"ready":true`, "/v2": `"binary_tensor_data"`,
			"/v2/models/classify": `"platform":"edgehost_pipeline"`, "/v2/models/classify/ready": `"ready":true`,
			"/v2/models/ssd": `"TFLite_Detection_PostProcess"`, "/v1/pipelines": `"zero_copy":true`,
			"/status": `"classify-go"`, "/metrics": "edgehost_stage_seconds_bucket",
			"/metrics#reloads": `edgehost_reloads_total{result="rejected"} 0`,
		} {
			resp, err := http.Get(url + strings.Split(path, "#")[0])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
				t.Errorf("GET %s: %d %.200s (want %s)", path, resp.StatusCode, b, want)
			}
		}
	})
}

// TestConcurrentClients: 16 clients × 200 requests on the shipped config, no errors.
func TestConcurrentClients(t *testing.T) {
	url := shipped(t)
	img := peacock(t)
	clients, requests := 16, 200
	if testing.Short() {
		requests = 20
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			pipeline := []string{"classify", "classify-go"}[c%2]
			for i := 0; i < requests; i++ {
				resp, err := http.Post(url+"/v1/pipelines/"+pipeline, "image/png", bytes.NewReader(img))
				if err != nil {
					mu.Lock()
					failures++
					mu.Unlock()
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"label":"peacock"`)) {
					mu.Lock()
					failures++
					mu.Unlock()
					t.Errorf("client %d request %d: %d %s", c, i, resp.StatusCode, b)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	if failures != 0 {
		t.Fatalf("%d failures", failures)
	}
}

// errorConfig is the shipped config with small limits and hostile pipelines added.
func errorConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
[pipelines.trap]
model = "mobilenet"
workers = 1
rollback_window = 0
[pipelines.trap.pre]
path = %q
[pipelines.trap.post]
path = %q

[pipelines.slow]
model = "mobilenet"
workers = 1
queue_timeout = "1ms"
[pipelines.slow.pre]
path = %q
timeout_ms = 300
[pipelines.slow.post]
path = %q
`, testplugins.Hostile(t, "TRAP_PRE", abi.KindBoth), testplugins.Hostile(t, "GOOD", abi.KindBoth),
		testplugins.Hostile(t, "LOOP_PRE", abi.KindBoth), testplugins.Hostile(t, "GOOD", abi.KindBoth))
	text := strings.ReplaceAll(string(src), "max_body_bytes = 16777216", "max_body_bytes = 100000")
	text = strings.ReplaceAll(text, `cache_dir = ".cache/wazero"`, `cache_dir = ""`)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(text+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	// Relative paths in the shipped config are relative to the repository.
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text+extra))
	if err != nil {
		t.Fatal(err)
	}
	relax(cfg)
	return cfg
}

// relax gives the shipped config's pipelines time budgets and queue timeouts that hold on a
// machine ten times slower than a quiet one (CI runs the suite with every core kept busy):
// these tests are about serving, not about budgets. The hostile pipelines of errorConfig keep
// their tight values, and host/pipeline's hostile tests check that budgets stop runaways.
func relax(cfg *config.Config) {
	for _, name := range []string{"classify", "classify-go", "detect"} {
		p, ok := cfg.Pipelines[name]
		if !ok {
			continue
		}
		p.QueueTimeout.Duration = 2 * time.Minute
		p.Pre.TimeoutMS, p.Post.TimeoutMS = 60000, 60000
		cfg.Pipelines[name] = p
	}
}

type errResp struct {
	Error string `json:"error"`
	Class string `json:"class"`
}

// TestErrorClasses: each error class gets its status and a JSON body that says what is wrong.
func TestErrorClasses(t *testing.T) {
	url := start(t, errorConfig(t))
	img := peacock(t)
	cases := []struct {
		name, path, ct string
		body           []byte
		code           int
		class, want    string
	}{
		{"empty body", "/v1/pipelines/classify", "image/png", nil, 400, "bad_input", "empty request body"},
		{"corrupt image", "/v1/pipelines/classify-go", "image/png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...), 400, "bad_input", "imagepre-go@"},
		{"unknown pipeline", "/v1/pipelines/nope", "image/png", img, 404, "not_found", `pipeline "nope"`},
		{"unknown model", "/v2/models/nope/infer", "application/json", []byte(`{}`), 404, "not_found", `model "nope"`},
		{"too large", "/v1/pipelines/classify", "image/png", make([]byte, 200000), 413, "too_large", "request body too large"},
		{"unsupported format", "/v1/pipelines/classify-go", "text/plain", []byte("hello, not an image"), 415, "unsupported", "not a JPEG or PNG"},
		{"plugin trap", "/v1/pipelines/trap", "image/png", img, 500, "plugin_trap", "hostile-trap-pre@1.0.0: edgehost_pre trapped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, h, b := post(t, url+c.path, c.ct, c.body, nil)
			var e errResp
			if json.Unmarshal(b, &e) != nil || code != c.code || e.Class != c.class || !strings.Contains(e.Error, c.want) {
				t.Fatalf("got %d %s, want %d %s containing %q", code, b, c.code, c.class, c.want)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", h.Get("Content-Type"))
			}
		})
	}
	t.Run("overloaded and time budget", func(t *testing.T) {
		// One worker stuck in a runaway loop until its 300 ms budget stops it; others
		// waiting more than the 1 ms queue timeout get 503.
		var wg sync.WaitGroup
		codes := make(chan int, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, _ := post(t, url+"/v1/pipelines/slow", "image/png", img, nil)
				codes <- code
			}()
		}
		wg.Wait()
		close(codes)
		seen := map[int]int{}
		for c := range codes {
			seen[c]++
		}
		if seen[503] == 0 || seen[500] == 0 {
			t.Fatalf("statuses %v, want some 503 (overloaded) and a 500 (time budget)", seen)
		}
		// The host still serves.
		if code, _, b := post(t, url+"/v1/pipelines/classify", "image/png", img, nil); code != 200 || top1(t, b) != "peacock" {
			t.Fatalf("after overload: %d %s", code, b)
		}
	})
}

// TestBodyOverPluginMemory: a body within max_body_bytes that the pre plugin cannot hold in
// its memory budget is the client's input being too large for that pipeline (413 too_large,
// naming the budget), not an internal error; the pipeline keeps serving smaller inputs.
func TestBodyOverPluginMemory(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
[pipelines.small]
model = "mobilenet"
workers = 1
[pipelines.small.pre]
path = %q
memory_limit_mb = 2
[pipelines.small.post]
path = %q
params_files = { labels = %q }
`, testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"), testplugins.Model("mobilenet_labels.txt"))
	text := strings.ReplaceAll(string(src), `cache_dir = ".cache/wazero"`, `cache_dir = ""`)
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text+extra))
	if err != nil {
		t.Fatal(err)
	}
	url := start(t, cfg)
	body := append(peacock(t), make([]byte, 3<<20)...) // a PNG with 3 MiB of trailing bytes
	code, _, b := post(t, url+"/v1/pipelines/small", "image/png", body, nil)
	var e errResp
	if json.Unmarshal(b, &e) != nil || code != 413 || e.Class != "too_large" || !strings.Contains(e.Error, "does not fit its memory budget of 2 MiB") {
		t.Fatalf("got %d %s, want 413 too_large naming the 2 MiB budget", code, b)
	}
	if code, _, b := post(t, url+"/v1/pipelines/small", "image/png", peacock(t), nil); code != 200 || top1(t, b) != "peacock" {
		t.Fatalf("after the oversized body: %d %s", code, b)
	}
}

// TestAllocatorFailureBlamesThePlugin: a pre plugin whose edgehost_alloc returns 0 for a
// 2 MB body while 32 MiB of budget are free is a plugin error (500 plugin_error naming its
// allocator), not a 413 blaming the request's size.
func TestAllocatorFailureBlamesThePlugin(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
[pipelines.badalloc]
model = "mobilenet"
workers = 1
rollback_window = 0
[pipelines.badalloc.pre]
path = %q
memory_limit_mb = 32
[pipelines.badalloc.post]
path = %q
`, testplugins.Hostile(t, "NULL_BIG_ALLOC", abi.KindPre), testplugins.Hostile(t, "GOOD", abi.KindPost))
	text := strings.ReplaceAll(string(src), `cache_dir = ".cache/wazero"`, `cache_dir = ""`)
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text+extra))
	if err != nil {
		t.Fatal(err)
	}
	url := start(t, cfg)
	code, _, b := post(t, url+"/v1/pipelines/badalloc", "image/png", make([]byte, 2<<20), nil)
	var e errResp
	if json.Unmarshal(b, &e) != nil || code != 500 || e.Class != "plugin_error" || !strings.Contains(e.Error, "allocator failed") {
		t.Fatalf("got %d %s, want 500 blaming the plugin's allocator", code, b)
	}
	t.Logf("%d %s", code, b)
}

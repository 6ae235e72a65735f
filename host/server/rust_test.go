package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
)

// TestRustPluginsOverHTTP: the shipped segment pipeline (Rust post plugin) answers over
// HTTP, and a Rust plugin's panic message reaches both the HTTP error and the server log.
func TestRustPluginsOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race run): the Rust example end to end; the full run has it")
	}
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	panicWasm := filepath.Join(testplugins.Root, "sdk/rust/testdata/panic.wasm")
	if _, err := os.Stat(panicWasm); err != nil {
		t.Fatalf("%v: run make plugins", err)
	}
	extra := fmt.Sprintf(`
[pipelines.rust-panic]
model = "mobilenet"
workers = 1
[pipelines.rust-panic.pre]
path = "plugins/examples/imagepre-c/imagepre-c.wasm"
[pipelines.rust-panic.post]
path = %q
`, panicWasm)
	text := strings.ReplaceAll(string(src), `cache_dir = ".cache/wazero"`, `cache_dir = ""`) + extra
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range cfg.Pipelines {
		p.QueueTimeout.Duration = 2 * time.Minute
		p.Pre.TimeoutMS, p.Post.TimeoutMS = 60000, 60000
		cfg.Pipelines[name] = p
	}
	var logs testservers.LogBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logs})
	ctx, cancel := context.WithCancel(context.Background())
	e, err := engine.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- server.New(e, cfg.Server, log).Serve(ctx, l) }()
	defer func() {
		cancel()
		<-done
		e.Close(context.Background())
	}()
	base := "http://" + l.Addr().String()

	img, _ := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	code, _, body := post(t, base+"/v1/pipelines/segment", "image/jpeg", img, nil)
	var seg struct {
		Classes []struct{ Label string }
	}
	if code != http.StatusOK || json.Unmarshal(body, &seg) != nil || len(seg.Classes) == 0 || seg.Classes[0].Label != "person" {
		t.Fatalf("segment: %d %s, want 200 with person the largest class", code, body)
	}

	code, _, body = post(t, base+"/v1/pipelines/rust-panic", "image/png", peacock(t), nil)
	var er errResp
	_ = json.Unmarshal(body, &er)
	const want = "segment index 7 is past the 3 classes"
	if code != http.StatusInternalServerError || er.Class != "plugin_trap" || !strings.Contains(er.Error, want) {
		t.Fatalf("rust-panic: %d %s, want 500 plugin_trap carrying the panic message", code, body)
	}
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the panic message is not in the server log:\n%s", logs.String())
	}
	t.Logf("HTTP error: %s", body)
}

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestBareRequestAcrossModelSwap: a bare-model request that looked the model up before a
// hot reload replaced it (here: a slow upload, its body finished after the swap) is served
// by the new version. It used to ask the old, closed pool for an interpreter, which built
// one from the closed model: a nil-pointer panic in the handler and a dropped connection.
func TestBareRequestAcrossModelSwap(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile(testplugins.Model("mobilenet_quant_v1_224.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	modelPath := filepath.Join(dir, "m.tflite")
	if err := os.WriteFile(modelPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`
[runtime]
cache_dir = ""
watch = true

[models.m]
path = %q
workers = 2

[pipelines.p]
model = "m"
workers = 1
rollback_window = 0
[pipelines.p.pre]
path = %q
[pipelines.p.post]
path = %q
params = { top_k = 1 }
`, modelPath, testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgPath, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	e, url := serve(t, cfg)
	w, err := e.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() }) // before the engine closes (cleanups run last first)
	modelHash := func() string { return e.Status().Models["m"].Hash }
	// One bare request first: the pool then holds an interpreter of the old version.
	hdr := []byte(`{"inputs":[{"name":"Placeholder","datatype":"UINT8","shape":[1,224,224,3],"parameters":{"binary_data_size":150528}}],"parameters":{"binary_data_output":true}}`)
	body := append(append([]byte(nil), hdr...), make([]byte, 150528)...)
	hl := map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))}
	if code, _, b := post(t, url+"/v2/models/m/infer", "", body, hl); code != 200 {
		t.Fatalf("first bare request: %d %s", code, b)
	}

	for swap := 1; swap <= 2; swap++ {
		c, err := net.Dial("tcp", url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nInference-Header-Content-Length: %d\r\n\r\n", len(body), len(hdr))
		if _, err := c.Write(body[:1000]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the handler has looked the model up

		before := modelHash()
		next := append([]byte(nil), orig...)
		next[len(next)/2] ^= byte(swap) // another version (a weight's low bits)
		tmp := modelPath + ".tmp"
		if err := os.WriteFile(tmp, next, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, modelPath); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for modelHash() == before {
			if time.Now().After(deadline) {
				t.Fatal("the model was not swapped in")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // the old pipeline version drains, the old model closes

		if _, err := c.Write(body[1000:]); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("swap %d: bare request begun on the old model: no answer: %v", swap, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("swap %d: bare request begun on the old model: %d %s", swap, resp.StatusCode, b)
		}
		if code, _, b := post(t, url+"/v2/models/m/infer", "", body, hl); code != 200 {
			t.Fatalf("swap %d: bare request on the new model: %d %s", swap, code, b)
		}
	}
}

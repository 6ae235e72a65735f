package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/hashicorp/go-hclog"
)

// TestWasmEngineStatus: [runtime] wasm_engine = "interpreter" (what armhf gets with no
// setting) runs the shipped classify plugins, Status says which engine runs, and the answer
// is byte for byte the compiler's (peacock.png: class 85). The interpreter is 33-38× slower
// (RATIONALE.md), more under -race on a busy machine: the budgets here are 60 s (the
// interpreter's budgets are TestInterpreterBudgets' business).
func TestWasmEngineStatus(t *testing.T) {
	if !plugin.CompilerSupported() {
		t.Skip("no wazero compiler here: nothing to compare the interpreter with")
	}
	img, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string][]byte{}
	for _, eng := range []string{"", "interpreter", "compiler"} {
		dir := t.TempDir()
		cfg := fmt.Sprintf(`
[runtime]
wasm_engine = %q
[models.mobilenet]
path = %q
[pipelines.classify]
model = "mobilenet"
[pipelines.classify.pre]
path = %q
params = { mean = 127.5, std = 127.5 }
timeout_ms = 60000
[pipelines.classify.post]
path = %q
params = { top_k = 3 }
timeout_ms = 60000
`, eng, testplugins.Model("mobilenet_quant_v1_224.tflite"), testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"))
		p := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(context.Background(), c, hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}))
		if err != nil {
			t.Fatal(err)
		}
		want := eng
		if want == "" {
			want = plugin.EngineCompiler
		}
		if got := e.Status().WasmEngine; got != want {
			t.Errorf("wasm_engine %q: status says %q", eng, got)
		}
		pl, _ := e.Pipeline("classify")
		var out []byte
		if _, err := pl.Pipeline.Run(context.Background(), bytes.NewReader(img), len(img), func(b []byte, _ string) error {
			out = bytes.Clone(b)
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		e.Close(context.Background())
		answers[want] = out
	}
	if !bytes.Contains(answers["interpreter"], []byte(`"index":85`)) || !bytes.Equal(answers["interpreter"], answers["compiler"]) {
		t.Errorf("interpreter %s\ncompiler %s", answers["interpreter"], answers["compiler"])
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
)

type segmentation struct {
	Pixels  int
	Classes []struct {
		Index int
		Label string
		Share float64
	}
}

// TestSegmentRust: the DeepLab v3 pipeline with the Rust post plugin built from sdk/rust
// (make plugins) finds the children of ssd_example.jpg (person is the largest class) and the
// peacock of peacock.png (bird); the shares of all classes add up to 1.
func TestSegmentRust(t *testing.T) {
	f := newFixture(t, "deeplabv3_257_mv_gpu.tflite")
	p, err := pipeline.New(context.Background(), pipeline.Spec{
		Name: "segment", Model: f.model, Workers: 1,
		Pre:  f.load(t, "imagepre-c", "pre", map[string]any{"mean": 127.5, "std": 127.5}),
		Post: f.load(t, "segment-rust", "post", map[string]any{"min_share": 0}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for _, c := range []struct{ image, top, has string }{
		{"ssd_example.jpg", "person", "person"},
		{"peacock.png", "background", "bird"},
	} {
		img, _ := os.ReadFile(models + c.image)
		out, _ := run(t, p, img)
		var r segmentation
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: %v: %s", c.image, err, out)
		}
		if r.Pixels != 257*257 || len(r.Classes) == 0 || r.Classes[0].Label != c.top {
			t.Fatalf("%s: want %d pixels, %s the largest class: %s", c.image, 257*257, c.top, out)
		}
		sum, found := 0.0, false
		for _, cl := range r.Classes {
			sum += cl.Share
			found = found || (cl.Label == c.has && cl.Share > 0.1)
		}
		if !found || math.Abs(sum-1) > 0.002 {
			t.Fatalf("%s: want %s over 10%% and shares summing to 1 (sum %.4f): %s", c.image, c.has, sum, out)
		}
		t.Logf("%s: %s", c.image, out)
	}
}

// TestRustPanic: a Rust plugin's panic traps the instance, and the error and the host log
// carry the panic message and where it happened, not only "unreachable"; the pipeline keeps
// serving with a fresh instance.
func TestRustPanic(t *testing.T) {
	f := newFixture(t, "deeplabv3_257_mv_gpu.tflite")
	var logs testservers.LogBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})
	rt, err := plugin.NewRuntime(context.Background(), plugin.RuntimeOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	load := func(path, kind string, params map[string]any) *plugin.Module {
		m, err := rt.Load(context.Background(), plugin.Config{Path: path, Params: params, WantKind: abiKind(kind), Timeout: workBudget})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	p, err := pipeline.New(context.Background(), pipeline.Spec{
		Name: "panics", Model: f.model, Workers: 1,
		Pre:  load(wasm(t, "imagepre-c"), "pre", map[string]any{"mean": 127.5, "std": 127.5}),
		Post: load(root+"sdk/rust/testdata/panic.wasm", "post", nil),
	}, log)
	if err != nil {
		t.Fatalf("%v (is sdk/rust/testdata/panic.wasm built? make plugins)", err)
	}
	defer p.Close(context.Background())
	img, _ := os.ReadFile(models + "peacock.png")
	const want = "segment index 7 is past the 3 classes"
	for n := 0; n < 2; n++ {
		_, err = p.Run(context.Background(), bytes.NewReader(img), len(img), func([]byte, string) error { return nil })
		var trap *plugin.TrapError
		if !errors.As(err, &trap) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "panic.rs:") {
			t.Fatalf("request %d: err %v, want a trap carrying the panic message %q and its location", n, err, want)
		}
	}
	l := logs.String()
	if strings.Count(l, want) < 4 { // per request: the SDK's log line and the pipeline's trap line
		t.Errorf("the panic message is not in the log twice per request:\n%s", l)
	}
	t.Logf("error: %v", err)
}

// TestRustAllocator: the Rust SDK's edgehost_free(ptr), which gets no size, returns blocks to
// Rust's allocator: 1,000 blocks of 1 MiB at every alignment the ABI allows would need far
// more than the plugin's 16 MiB budget if one leaked.
func TestRustAllocator(t *testing.T) {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, plugin.Config{Path: wasm(t, "segment-rust"), MemoryLimit: 16 << 20, Timeout: workBudget})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	for n := 0; n < 1000; n++ {
		align := uint32(1) << (n % 13) // 1 … 4096
		p, err := inst.Alloc(ctx, 1<<20, align)
		if err != nil {
			t.Fatalf("block %d (align %d): %v", n, align, err)
		}
		b, ok := inst.Bytes(p, 1<<20)
		if !ok {
			t.Fatalf("block %d outside memory", n)
		}
		b[0], b[len(b)-1] = 1, 2 // the whole block is usable
		inst.Free(ctx, p)
	}
}

package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

const (
	root   = "../../"
	models = root + ".deps/models/"
)

func labels(t testing.TB, path string) []any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []any
	s := bufio.NewScanner(f)
	for s.Scan() {
		out = append(out, strings.TrimSpace(s.Text()))
	}
	return out
}

func wasm(t testing.TB, name string) string {
	t.Helper()
	p := root + "plugins/examples/" + name + "/" + name + ".wasm"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run `make plugins` (%v)", p, err)
	}
	return p
}

type fixture struct {
	rt    *plugin.Runtime
	model *tflite.Model
}

var (
	sharedOnce sync.Once
	sharedRT   *plugin.Runtime
)

// newFixture loads a model; all fixtures share one plugin runtime, so each plugin is
// compiled once per test binary (compiling is the slow part, above all under -race).
func newFixture(t testing.TB, modelFile string) *fixture {
	t.Helper()
	sharedOnce.Do(func() {
		rt, err := plugin.NewRuntime(context.Background(), plugin.RuntimeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sharedRT = rt
	})
	m, err := tflite.LoadModel(models+modelFile, tflite.Options{Threads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &fixture{rt: sharedRT, model: m}
}

func (f *fixture) load(t testing.TB, name string, kind string, params map[string]any) *plugin.Module {
	t.Helper()
	// A generous budget: these tests check results, not speed, and the Go pre plugin takes
	// 0.8 s on ssd_example.jpg on a quiet 2-core machine (more than 1 s on a busy one).
	m, err := f.rt.Load(context.Background(), plugin.Config{Path: wasm(t, name), Params: params, WantKind: abiKind(kind),
		Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) pipeline(t testing.TB, pre, post string, postParams map[string]any, oneCopy bool, workers int) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.New(context.Background(), pipeline.Spec{
		Name: pre + "+" + post, Model: f.model, Workers: workers, OneCopy: oneCopy,
		Pre:  f.load(t, pre, "pre", nil),
		Post: f.load(t, post, "post", postParams),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func run(t testing.TB, p *pipeline.Pipeline, input []byte) ([]byte, pipeline.Stats) {
	t.Helper()
	var out []byte
	st, err := p.Run(context.Background(), bytes.NewReader(input), len(input), func(b []byte, ct string) error {
		out = append(out, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

type classification struct {
	Top []struct {
		Index int     `json:"index"`
		Label string  `json:"label"`
		Score float32 `json:"score"`
	} `json:"top"`
}

func TestClassifyPeacock(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	img, _ := os.ReadFile(models + "peacock.png")
	params := map[string]any{"labels": labels(t, models+"mobilenet_labels.txt"), "top_k": 3}
	for _, pre := range []string{"imagepre-go", "imagepre-c"} {
		for _, post := range []string{"classify-go", "classify-c"} {
			t.Run(pre+"/"+post, func(t *testing.T) {
				p := f.pipeline(t, pre, post, params, false, 1)
				out, st := run(t, p, img)
				var c classification
				if err := json.Unmarshal(out, &c); err != nil {
					t.Fatalf("result %q: %v", out, err)
				}
				if len(c.Top) != 3 || c.Top[0].Label != "peacock" {
					t.Fatalf("top-1 is not peacock: %s", out)
				}
				t.Logf("%s zero_copy=%v copied=%d pre=%v infer=%v post=%v", out, p.ZeroCopy(), st.CopiedBytes, st.Pre, st.Infer, st.Post)
			})
		}
	}
}

// TestZeroCopy asserts that, with a TFLite library that has custom allocation, no byte is
// copied between guest memory and TFLite, and that the one-copy mode gives the same bytes.
func TestZeroCopy(t *testing.T) {
	if !tflite.Probe().CustomAllocation {
		t.Skipf("%v has no custom allocation: only the one-copy mode exists", tflite.Probe())
	}
	for _, c := range []struct{ model, image, post string }{
		{"mobilenet_quant_v1_224.tflite", "peacock.png", "classify-go"},
		{"ssd_detect.tflite", "ssd_example.jpg", "ssd-go"},
	} {
		t.Run(c.model, func(t *testing.T) {
			f := newFixture(t, c.model)
			img, _ := os.ReadFile(models + c.image)
			params := map[string]any{"top_k": 1001, "threshold": 0.0}
			if c.post == "ssd-go" {
				params = map[string]any{"threshold": 0.0}
			}
			zc := f.pipeline(t, "imagepre-go", c.post, params, false, 1)
			oc := f.pipeline(t, "imagepre-go", c.post, params, true, 1)
			if !zc.ZeroCopy() || oc.ZeroCopy() {
				t.Fatalf("modes: zero-copy pipeline %v, one-copy pipeline %v", zc.ZeroCopy(), oc.ZeroCopy())
			}
			a, sa := run(t, zc, img)
			b, sb := run(t, oc, img)
			if sa.CopiedBytes != 0 {
				t.Errorf("zero-copy mode copied %d bytes", sa.CopiedBytes)
			}
			want := 0
			for _, ti := range f.model.Inputs {
				want += ti.Bytes
			}
			for _, ti := range f.model.Outputs {
				want += ti.Bytes
			}
			if sb.CopiedBytes != want {
				t.Errorf("one-copy mode copied %d bytes, want exactly one copy per tensor = %d", sb.CopiedBytes, want)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("results differ:\nzero-copy %s\none-copy  %s", a[:min(200, len(a))], b[:min(200, len(b))])
			}
			t.Logf("zero-copy copied %d B, one-copy copied %d B, results equal (%d B)", sa.CopiedBytes, sb.CopiedBytes, len(a))
		})
	}
}

func TestSSDFindsPerson(t *testing.T) {
	f := newFixture(t, "ssd_detect.tflite")
	img, _ := os.ReadFile(models + "ssd_example.jpg")
	p := f.pipeline(t, "imagepre-go", "ssd-go", map[string]any{
		"labels": labels(t, models+"ssd_labelmap.txt"), "label_offset": 1, "threshold": 0.5}, false, 1)
	out, _ := run(t, p, img)
	if !strings.Contains(string(out), `"label":"person"`) {
		t.Fatalf("no person in %s", out)
	}
	t.Logf("%s", out)
}

func TestConcurrentRequests(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	img, _ := os.ReadFile(models + "peacock.png")
	p := f.pipeline(t, "imagepre-go", "classify-go", map[string]any{"labels": labels(t, models+"mobilenet_labels.txt")}, false, 2)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5; n++ {
				var out []byte
				_, err := p.Run(context.Background(), bytes.NewReader(img), len(img), func(b []byte, _ string) error {
					out = append(out, b...)
					return nil
				})
				if err != nil || !strings.Contains(string(out), "peacock") {
					t.Errorf("err %v out %s", err, out)
				}
			}
		}()
	}
	wg.Wait()
}

func abiKind(k string) abi.Kind { return abi.Kind(k) }

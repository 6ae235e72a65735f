package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
	"github.com/hashicorp/go-hclog"
)

// Cascades (issue 25): the shipped people-c plugin against the same chain in Python, and the
// model-call guarantees under hostile plugins and hot swaps. Real TFLite, real models, real
// Wasm built from the C SDK.

// hostileCascade builds testdata/cascade_hostile.c with the C SDK (model calls included).
func hostileCascade(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "hostile.raw")
	sdk := filepath.Join(testplugins.Root, "sdk/c")
	testplugins.BuildC(t, true, "-O1", "-I", sdk, "-o", raw, filepath.Join(testplugins.Root, "host/engine/testdata/cascade_hostile.c"),
		filepath.Join(sdk, "edgehost.c"), filepath.Join(sdk, "heap.c"), filepath.Join(sdk, "model.c"))
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = abi.SetCustomSection(b, abi.ManifestSection, []byte(`{"name":"cascade-hostile","version":"1.0.0","abi":1,"kind":"both"}`)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cascade-hostile.wasm")
	writeFile(t, out, b)
	return out
}

// cascadeConfig is the people pipeline as shipped (on copies of the plugin and the pose model in dir, so
// that tests may replace them), the hostile pipelines named in modes, and a neighbour.
func cascadeConfig(t *testing.T, dir string, hostile string, modes ...string) (cfgPath, peoplePlugin, poseModel string) {
	t.Helper()
	peoplePlugin, poseModel = filepath.Join(dir, "people-c.wasm"), filepath.Join(dir, "pose.tflite")
	for src, dst := range map[string]string{testplugins.Example(t, "people-c"): peoplePlugin, testplugins.Model("pose_landmark_full.tflite"): poseModel} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("%v (make deps plugins)", err)
		}
		writeFile(t, dst, b)
	}
	s := fmt.Sprintf(`[runtime]
cache_dir = %q
[models.ssd]
path = %q
[models.mobilenet]
path = %q
workers = 2
[models.pose]
path = %q
workers = 2
[pipelines.people]
model = "ssd"
workers = 2
shared_instance = true
max_model_calls = 32
queue_timeout = "30s"
[pipelines.people.pre]
path = %q
timeout_ms = 30000
params = { threshold = 0.5, label_offset = 1, decode_min = 640 }
params_files = { labels = %q, class_labels = %q }
grants = { models = ["pose", "mobilenet"] }
[pipelines.neighbour]
model = "mobilenet"
workers = 1
[pipelines.neighbour.pre]
path = %q
timeout_ms = 30000
[pipelines.neighbour.post]
path = %q
timeout_ms = 30000
params_files = { labels = %q }
`, filepath.Join(dir, "cache"), testplugins.Model("ssd_detect.tflite"), testplugins.Model("mobilenet_quant_v1_224.tflite"), poseModel,
		peoplePlugin, testplugins.Model("ssd_labelmap.txt"), testplugins.Model("mobilenet_labels.txt"),
		testplugins.Example(t, "imagepre-c"), testplugins.Example(t, "classify-c"), testplugins.Model("mobilenet_labels.txt"))
	for _, m := range modes {
		s += fmt.Sprintf("[pipelines.hostile-%s]\nmodel = \"mobilenet\"\nworkers = 1\nshared_instance = true\nmax_model_calls = 32\n[pipelines.hostile-%s.pre]\npath = %q\ntimeout_ms = 30000\nparams = { mode = %q }\ngrants = { models = [\"mobilenet\"] }\n",
			m, m, hostile, m)
	}
	cfgPath = filepath.Join(dir, "edgehost.toml")
	writeFile(t, cfgPath, []byte(s))
	return cfgPath, peoplePlugin, poseModel
}

func newCascadeEngine(t *testing.T, cfgPath string) *engine.Engine {
	t.Helper()
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(context.Background(), c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func runPipe(ctx context.Context, e *engine.Engine, name string, in []byte) ([]byte, pipeline.Stats, error) {
	p, ok := e.Pipeline(name)
	if !ok {
		return nil, pipeline.Stats{}, fmt.Errorf("no pipeline %s", name)
	}
	var out []byte
	st, err := p.Pipeline.Run(ctx, bytes.NewReader(in), len(in), func(b []byte, _ string) error {
		out = append([]byte(nil), b...)
		return nil
	})
	return out, st, err
}

type peopleAnswer struct {
	Image struct {
		Width, Height float64
	}
	Objects []struct {
		Label     string
		Score     float64
		Box       [4]float64
		Keypoints [][2]float64
		Class     string
	}
}

func iou(a, b [4]float64) float64 {
	ih := math.Min(a[2], b[2]) - math.Max(a[0], b[0])
	iw := math.Min(a[3], b[3]) - math.Max(a[1], b[1])
	if ih <= 0 || iw <= 0 {
		return 0
	}
	in := ih * iw
	return in / ((a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - in)
}

// TestPeopleMatchesPython: on ssd_example.jpg the people pipeline's keypoints lie within 3%
// of the image diagonal of the Python chain's (median over the 33, for every person both
// find), the best laptop gets the same mobilenet label, and no byte is copied between guest
// memory and TFLite in any model call (TFLite 2.17).
func TestPeopleMatchesPython(t *testing.T) {
	py := filepath.Join(testplugins.Root, ".deps/bench-venv/bin/python")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("the Python chain needs the pinned venv: run `make bench-venv` (%v)", err)
	}
	dir := t.TempDir()
	cfgPath, _, _ := cascadeConfig(t, dir, "")
	e := newCascadeEngine(t, cfgPath)
	img, err := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	out, st, err := runPipe(context.Background(), e, "people", img)
	if err != nil {
		t.Fatal(err)
	}
	var got, want peopleAnswer
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cmd := exec.Command(py, filepath.Join(testplugins.Root, "bench/people_chain.py"), "--models", filepath.Join(testplugins.Root, ".deps/models"), testplugins.Model("ssd_example.jpg"))
	pyOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("python chain: %v", err)
	}
	if err := json.Unmarshal(pyOut, &want); err != nil {
		t.Fatalf("%v: %s", err, pyOut)
	}
	if st.ModelCalls != len(got.Objects) || st.ModelCalls == 0 {
		t.Errorf("%d model calls for %d objects", st.ModelCalls, len(got.Objects))
	}
	if tflite.Probe().CustomAllocation && st.CopiedBytes != 0 {
		t.Errorf("%d bytes copied between guest memory and TFLite, want 0 (%v)", st.CopiedBytes, tflite.Probe())
	}
	diag := math.Hypot(want.Image.Width, want.Image.Height)
	persons := 0
	for _, w := range want.Objects {
		if w.Label != "person" {
			continue
		}
		best, bi := 0.0, -1
		for i, g := range got.Objects {
			if g.Label == "person" && iou(g.Box, w.Box) > best {
				best, bi = iou(g.Box, w.Box), i
			}
		}
		if best < 0.7 {
			continue // a detection only one side made (the scores sit at the threshold)
		}
		g := got.Objects[bi]
		if len(g.Keypoints) != 33 || len(w.Keypoints) != 33 {
			t.Fatalf("keypoints: %d and %d, want 33", len(g.Keypoints), len(w.Keypoints))
		}
		var d []float64
		for k := range 33 {
			d = append(d, math.Hypot(g.Keypoints[k][0]-w.Keypoints[k][0], g.Keypoints[k][1]-w.Keypoints[k][1]))
		}
		sort.Float64s(d)
		med := d[16] / diag
		t.Logf("person at %v (IoU %.2f with Python's): median keypoint distance %.2f px = %.2f%% of the diagonal", g.Box, best, d[16], 100*med)
		if med > 0.03 {
			t.Errorf("person %v: median keypoint distance %.1f%% of the diagonal, want <= 3%%", g.Box, 100*med)
		}
		persons++
	}
	if persons == 0 {
		t.Fatalf("no person found by both chains:\nedgehost %s\npython %s", out, pyOut)
	}
	laptop := func(a peopleAnswer) string {
		best, label := -1.0, ""
		for _, o := range a.Objects {
			if o.Label == "laptop" && o.Score > best {
				best, label = o.Score, o.Class
			}
		}
		return label
	}
	if g, w := laptop(got), laptop(want); g == "" || g != w {
		t.Errorf("the laptop's label: edgehost %q, Python %q", g, w)
	} else {
		t.Logf("the laptop's label: %q in both", g)
	}
}

// TestCascadeHostile: a plugin that runs an ungranted model, fans out 10,000 calls, passes a
// bad buffer or runs models past the request's deadline gets a clear error of the right
// class; the host stays up and a neighbour pipeline keeps serving meanwhile.
func TestCascadeHostile(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, _ := cascadeConfig(t, dir, hostileCascade(t), "ok", "ungranted", "fanout", "forever", "badbuf")
	e := newCascadeEngine(t, cfgPath)
	peacock, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	// The neighbour's p50 alone, then while the hostile requests run (reported: on a shared
	// 2-core machine the hostile fan-out's 32 real model runs take CPU from it, which is not a
	// failure of the host).
	p50 := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	var alone []time.Duration
	for range 8 {
		t0 := time.Now()
		if _, _, err := runPipe(context.Background(), e, "neighbour", peacock); err != nil {
			t.Fatal(err)
		}
		alone = append(alone, time.Since(t0))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var nerr error
	var during []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			out, _, err := runPipe(context.Background(), e, "neighbour", peacock)
			during = append(during, time.Since(t0))
			if err != nil || !strings.Contains(string(out), "peacock") {
				nerr = fmt.Errorf("neighbour: %v %s", err, out)
				return
			}
		}
	}()
	out, st, err := runPipe(context.Background(), e, "hostile-ok", []byte("x"))
	if err != nil || st.ModelCalls != 1 || !strings.Contains(string(out), `"calls":1,"last":0`) {
		t.Fatalf("the granted call: %v %s (%d calls)", err, out, st.ModelCalls)
	}
	cases := []struct {
		mode    string
		timeout time.Duration
		want    string
		status  int32
	}{
		{"ungranted", 0, `model call "ssd": the model is not granted to this plugin`, abi.ModelCallNotGranted},
		{"fanout", 0, "the request's 32 model calls (max_model_calls) are spent", abi.ModelCallLimit},
		{"badbuf", 0, "buffer of 150527 bytes, the tensor has 150528", abi.ModelCallBadBuffers},
		{"forever", 300 * time.Millisecond, "no model runs after it", abi.ModelCallDeadline},
	}
	for _, c := range cases {
		ctx := context.Background()
		if c.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
		t0 := time.Now()
		out, st, err := runPipe(ctx, e, "hostile-"+c.mode, []byte("x"))
		var mce *plugin.ModelCallError
		if !errors.As(err, &mce) || !strings.Contains(err.Error(), c.want) || mce.Status != c.status {
			t.Errorf("%s: got %v (answer %s), want a model-call error status %d saying %q", c.mode, err, out, c.status, c.want)
			continue
		}
		t.Logf("%s: %d calls, %v: %v", c.mode, st.ModelCalls, time.Since(t0).Round(time.Millisecond), err)
		if c.mode == "fanout" && st.ModelCalls != 32 {
			t.Errorf("fanout: %d models ran, want the 32 of max_model_calls", st.ModelCalls)
		}
		if c.mode == "forever" && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("forever: %v does not wrap context.DeadlineExceeded (class timeout)", err)
		}
	}
	// The instances that failed stay in service: the ok pipeline and a second run still work.
	if _, _, err := runPipe(context.Background(), e, "hostile-ok", []byte("x")); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if nerr != nil || len(during) == 0 {
		t.Fatalf("%v after %d neighbour requests", nerr, len(during))
	}
	t.Logf("neighbour p50: %v alone, %v during the hostile requests (%d requests, all answered)", p50(alone), p50(during), len(during))
	if st := e.Status(); st.Models["mobilenet"].Calls == nil || st.Models["mobilenet"].Calls.Calls < 33 {
		t.Errorf("status: mobilenet plugin calls %+v, want >= 33", st.Models["mobilenet"].Calls)
	}
}

// TestCascadeHotSwap: the crop plugin and the pose model are replaced twice each while 8
// clients run the people pipeline: no request fails, and every answer is complete.
func TestCascadeHotSwap(t *testing.T) {
	if testing.Short() {
		t.Skip("8 clients through swaps (about 15 s)")
	}
	dir := t.TempDir()
	cfgPath, plug, pose := cascadeConfig(t, dir, "")
	e := newCascadeEngine(t, cfgPath)
	img, err := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(8, func() error {
		out, _, err := runPipe(context.Background(), e, "people", img)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), `"keypoints":[[`) || !strings.Contains(string(out), `"class":"laptop"`) {
			return fmt.Errorf("incomplete answer %.200s", out)
		}
		return nil
	})
	plugBytes, _ := os.ReadFile(plug)
	poseBytes, _ := os.ReadFile(pose)
	for i := 1; i <= 2; i++ {
		time.Sleep(time.Second)
		b, err := abi.SetCustomSection(plugBytes, abi.ManifestSection, fmt.Appendf(nil, `{"name":"people-c","version":"1.0.%d","abi":1,"kind":"both"}`, i))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, plug, b)
		e.ReloadFile(context.Background(), plug)
		time.Sleep(time.Second)
		// Another version of the model file: the same weights, trailing bytes the flatbuffer ignores.
		writeFile(t, pose, append(append([]byte(nil), poseBytes...), make([]byte, 64*i)...))
		e.ReloadFile(context.Background(), pose)
	}
	time.Sleep(time.Second)
	l.end(t)
	st := e.Status()
	if st.Failures != 0 || st.Reloads < 4 {
		t.Fatalf("reloads %d, rejected %d (%+v)", st.Reloads, st.Failures, st.Models["pose"])
	}
	if p := st.Pipelines["people"]; p.PreName != "people-c@1.0.2" || p.Failures != 0 {
		t.Fatalf("people serves %s, %d failures", p.PreName, p.Failures)
	}
	t.Logf("%d requests through 2 plugin and 2 pose model swaps, %d model calls", l.n.Load(), st.Pipelines["people"].ModelCalls)

	// A pose "model" the plugin cannot use (mobilenet's bytes): the people version prepared
	// on it fails its init (the plugin checks the model's tensors), so the reload is refused
	// and the version on the previous pose model keeps serving.
	mb, err := os.ReadFile(testplugins.Model("mobilenet_quant_v1_224.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pose, mb)
	e.ReloadFile(context.Background(), pose)
	st = e.Status()
	if st.Failures != 1 || !strings.Contains(st.Pipelines["people"].LastError, "pose model") {
		t.Fatalf("a broken pose model: %d reload failures, pipeline error %q", st.Failures, st.Pipelines["people"].LastError)
	}
	if out, _, err := runPipe(context.Background(), e, "people", img); err != nil || !strings.Contains(string(out), `"keypoints":[[`) {
		t.Fatalf("after the refused reload: %v %.200s", err, out)
	}
	t.Logf("refused: %s", st.Pipelines["people"].LastError)
}

// TestCropMatchesPillow: the C SDK's eh_crop_resize_rgb (a hand-written resampler) gives the
// same bytes as Pillow's Image.crop + resize(BILINEAR), the Python chain's, on random images
// and boxes inside, across and outside the image edges, down- and upscaled; built with and
// without -msimd128 (its horizontal pass has a Wasm SIMD128 version).
func TestCropMatchesPillow(t *testing.T) {
	py := filepath.Join(testplugins.Root, ".deps/bench-venv/bin/python")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("Pillow comes from the pinned venv: run `make bench-venv` (%v)", err)
	}
	for _, simd := range []bool{false, true} { // the scalar loops, and the Wasm SIMD128 ones people-c runs
		t.Run(fmt.Sprintf("simd=%v", simd), func(t *testing.T) { cropMatchesPillow(t, py, simd) })
	}
}

func cropMatchesPillow(t *testing.T, py string, simd bool) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "crop.raw")
	sdk := filepath.Join(testplugins.Root, "sdk/c")
	flags := []string{"-O2"}
	if simd {
		flags = append(flags, "-msimd128")
	}
	testplugins.BuildC(t, true, append(flags, "-I", sdk, "-o", raw, filepath.Join(testplugins.Root, "host/engine/testdata/crop_diff.c"),
		filepath.Join(sdk, "edgehost.c"), filepath.Join(sdk, "heap.c"), filepath.Join(sdk, "model.c"))...)
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = abi.SetCustomSection(b, abi.ManifestSection, []byte(`{"name":"crop-diff","version":"1.0.0","abi":1,"kind":"both"}`)); err != nil {
		t.Fatal(err)
	}
	plug := filepath.Join(dir, "crop.wasm")
	writeFile(t, plug, b)
	cfg := filepath.Join(dir, "c.toml")
	writeFile(t, cfg, fmt.Appendf(nil, "[models.m]\npath = %q\n[pipelines.crop]\nmodel = \"m\"\nworkers = 1\nshared_instance = true\n[pipelines.crop.pre]\npath = %q\nmemory_limit_mb = 128\ntimeout_ms = 30000\n",
		testplugins.Model("mobilenet_quant_v1_224.tflite"), plug))
	e := newCascadeEngine(t, cfg)
	type tc struct {
		W, H           int
		X0, Y0, X1, Y1 float64
		OW, OH         int
	}
	cases := []tc{
		{640, 480, 0, 0, 640, 480, 300, 300},            // the whole image, downscaled
		{640, 480, 100.4, 50.6, 400.5, 420.5, 224, 224}, // inside; .5 rounds half to even
		{640, 480, -80, -60, 300, 320, 256, 256},        // across the top-left edge: padded
		{640, 480, 500, 300, 900, 700, 256, 256},        // across the bottom-right edge
		{200, 150, 10, 10, 60, 40, 224, 224},            // upscaled
		{333, 517, -1000, -1000, -900, -900, 32, 32},    // wholly outside: all pad
	}
	r := rand.New(rand.NewSource(1))
	var got [][]byte
	for i, c := range cases {
		img := make([]byte, c.W*c.H*3)
		r.Read(img)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("img%d.rgb", i)), img)
		hdr := binary.LittleEndian.AppendUint32(nil, uint32(c.W))
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(c.H))
		for _, v := range []float64{c.X0, c.Y0, c.X1, c.Y1} {
			hdr = binary.LittleEndian.AppendUint64(hdr, math.Float64bits(v))
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(c.OW))
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(c.OH))
		out, _, err := runPipe(context.Background(), e, "crop", append(hdr, img...))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out)
	}
	js, _ := json.Marshal(cases)
	script := `
import json, sys
from PIL import Image
cases = json.loads(sys.argv[1])
for i, c in enumerate(cases):
    im = Image.frombytes("RGB", (c["W"], c["H"]), open("%s/img%d.rgb" % (sys.argv[2], i), "rb").read())
    box = (round(c["X0"]), round(c["Y0"]), round(c["X1"]), round(c["Y1"]))
    open("%s/want%d.rgb" % (sys.argv[2], i), "wb").write(im.crop(box).resize((c["OW"], c["OH"]), Image.Resampling.BILINEAR).tobytes())
`
	if out, err := exec.Command(py, "-c", script, string(js), dir).CombinedOutput(); err != nil {
		t.Fatalf("pillow: %v\n%s", err, out)
	}
	for i := range cases {
		want, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("want%d.rgb", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i], want) {
			diff, maxd := 0, 0
			for k := range min(len(got[i]), len(want)) {
				if d := int(got[i][k]) - int(want[k]); d != 0 {
					diff++
					maxd = max(maxd, d, -d)
				}
			}
			t.Errorf("case %+v: %d of %d bytes differ from Pillow's (at most by %d; lengths %d, %d)", cases[i], diff, len(want), maxd, len(got[i]), len(want))
		}
	}
}

// TestAnimalsRoutes: the shipped animals pipeline routes by class: a bird goes on to
// mobilenet (peacock.png: "peacock"), and an image without animals (ssd_example.jpg: people
// and laptops) is answered with no model call at all.
func TestAnimalsRoutes(t *testing.T) {
	c, err := config.Load(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipelines["animals"]
	p.Pre.TimeoutMS, p.Post.TimeoutMS = 30000, 30000
	c.Pipelines = map[string]config.Pipeline{"animals": p}
	c.Models = map[string]config.Model{"ssd": c.Models["ssd"], "mobilenet": c.Models["mobilenet"]}
	c.Runtime.CacheDir = ""
	e, err := engine.New(context.Background(), c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	for _, tc := range []struct {
		image, want string
		calls       int
	}{{"peacock.png", `"label":"bird"`, -1}, {"ssd_example.jpg", `"label":"person"`, 0}} {
		img, err := os.ReadFile(testplugins.Model(tc.image))
		if err != nil {
			t.Fatal(err)
		}
		out, st, err := runPipe(context.Background(), e, "animals", img)
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Fatalf("%s: %v %.300s", tc.image, err, out)
		}
		if tc.calls == 0 && (st.ModelCalls != 0 || strings.Contains(string(out), `"class"`)) {
			t.Errorf("%s: %d model calls for no animal: %.300s", tc.image, st.ModelCalls, out)
		}
		if tc.calls < 0 && (st.ModelCalls == 0 || !strings.Contains(string(out), `"class":"peacock"`)) {
			t.Errorf("%s: %d model calls, want the bird classified as a peacock: %.300s", tc.image, st.ModelCalls, out)
		}
		t.Logf("%s: %d model calls: %.200s", tc.image, st.ModelCalls, out)
	}
}

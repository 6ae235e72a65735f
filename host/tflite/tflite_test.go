package tflite_test

import (
	"bufio"
	"context"
	"errors"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/tflite"
)

const models = "../../.deps/models/"

// rgbResize decodes an image file and resizes it (bilinear) to w×h packed RGB bytes.
func rgbResize(t testing.TB, path string, w, h int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	out := make([]byte, 0, w*h*3)
	for y := 0; y < h; y++ {
		sy := b.Min.Y + (y*b.Dy())/h
		for x := 0; x < w; x++ {
			sx := b.Min.X + (x*b.Dx())/w
			r, g, bb, _ := img.At(sx, sy).RGBA()
			out = append(out, byte(r>>8), byte(g>>8), byte(bb>>8))
		}
	}
	return out
}

func lines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		out = append(out, strings.TrimSpace(s.Text()))
	}
	return out
}

func TestProbe(t *testing.T) {
	c := tflite.Probe()
	t.Log(c)
	if c.Version == "" {
		t.Fatal("no TFLite version")
	}
}

func TestMobilenetPeacock(t *testing.T) {
	for _, xnn := range []bool{false, true} {
		m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 2, XNNPACK: xnn})
		if err != nil {
			t.Fatal(err)
		}
		in := m.Inputs[0]
		if in.Type != abi.UInt8 || len(in.Shape) != 4 || in.Shape[1] != 224 || in.Scale == 0 {
			t.Fatalf("unexpected input %v", in)
		}
		it, err := m.NewInterpreter()
		if err != nil {
			t.Fatal(err)
		}
		copy(it.Input(0), rgbResize(t, models+"peacock.png", 224, 224))
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		out := it.Output(0)
		best := 0
		for i, v := range out {
			if v > out[best] {
				best = i
			}
		}
		labels := lines(t, models+"mobilenet_labels.txt")
		if labels[best] != "peacock" {
			t.Errorf("xnnpack=%v: top-1 %q (score %d), want peacock", xnn, labels[best], out[best])
		}
		t.Logf("xnnpack=%v delegates=%v top-1 %s %d/255", xnn, it.Delegates(), labels[best], out[best])
		it.Close()
		m.Close()
	}
}

func TestSSDFindsPerson(t *testing.T) {
	m, err := tflite.LoadModel(models+"ssd_detect.tflite", tflite.Options{Threads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Outputs) != 4 {
		t.Fatalf("outputs %v", m.Outputs)
	}
	it, err := m.NewInterpreter()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	copy(it.Input(0), rgbResize(t, models+"ssd_example.jpg", m.Inputs[0].Shape[2], m.Inputs[0].Shape[1]))
	if err := it.Invoke(); err != nil {
		t.Fatal(err)
	}
	f32 := func(b []byte) []float32 { return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4) }
	classes, scores, count := f32(it.Output(1)), f32(it.Output(2)), f32(it.Output(3))
	labels := lines(t, models+"ssd_labelmap.txt")
	found := false
	for i := 0; i < int(count[0]); i++ {
		label := labels[int(classes[i])+1]
		t.Logf("%s %.2f", label, scores[i])
		if label == "person" && scores[i] > 0.5 {
			found = true
		}
	}
	if !found {
		t.Error("no person found with score > 0.5")
	}
}

func TestBadModels(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(models + "mobilenet_quant_v1_224.tflite")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := append([]byte(nil), good...)
	for i := 64; i < 4096; i++ {
		corrupt[i] ^= 0xA5
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.tflite"), "no such file"},
		{"empty", write("empty.tflite", nil), "too short"},
		{"directory", dir, "is a directory"},
		{"not tflite", write("peacock.tflite", lines2bytes(t, models+"peacock.png")), "not a TFLite model"},
		{"truncated", write("trunc.tflite", good[:len(good)/3]), ""},
		{"corrupt", write("corrupt.tflite", corrupt), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := tflite.LoadModel(c.path, tflite.Options{})
			if err == nil {
				m.Close()
				t.Fatal("loaded a bad model")
			}
			if !errors.Is(err, tflite.ErrBadModel) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want ErrBadModel containing %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

func lines2bytes(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildTestDelegate compiles testdata/testdelegate.c into a shared library.
func buildTestDelegate(t *testing.T) string {
	t.Helper()
	so := filepath.Join(t.TempDir(), "libtestdelegate.so")
	cmd := exec.Command("cc", "-shared", "-fPIC", "-O2", "-I../../.deps/tflite/include", "-o", so, "testdata/testdelegate.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building test delegate: %v\n%s", err, out)
	}
	return so
}

func TestExternalDelegate(t *testing.T) {
	so := buildTestDelegate(t)
	marker := filepath.Join(t.TempDir(), "prepared")
	var warnings []string
	var mu sync.Mutex
	warn := func(msg string, kv ...any) { mu.Lock(); warnings = append(warnings, msg); mu.Unlock() }

	t.Run("applied", func(t *testing.T) {
		m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{
			Delegate: &tflite.ExternalOptions{Path: so, Options: map[string]string{"marker": marker}}, Warn: warn})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		it, err := m.NewInterpreter()
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		got, err := os.ReadFile(marker)
		if err != nil {
			t.Fatalf("delegate Prepare did not run: %v", err)
		}
		if !strings.HasPrefix(string(got), "prepared nodes=31") {
			t.Errorf("marker %q", got)
		}
		if d := it.Delegates(); len(d) != 1 || !strings.HasPrefix(d[0], "external:") {
			t.Errorf("delegates %v", d)
		}
		if len(warnings) != 0 {
			t.Errorf("warnings %v", warnings)
		}
	})
	for _, c := range []struct {
		name, path string
		opts       map[string]string
	}{
		{"prepare fails", so, map[string]string{"fail": "prepare"}},
		{"create fails", so, map[string]string{"fail": "create"}},
		{"missing library", "/nonexistent/libvendor.so", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			warnings = nil
			m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{
				Delegate: &tflite.ExternalOptions{Path: c.path, Options: c.opts}, Warn: warn})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			it, err := m.NewInterpreter()
			if err != nil {
				t.Fatalf("no CPU fallback: %v", err)
			}
			defer it.Close()
			if len(it.Delegates()) != 0 || len(warnings) != 1 {
				t.Fatalf("delegates %v warnings %v", it.Delegates(), warnings)
			}
			if err := it.Invoke(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPoolConcurrent(t *testing.T) {
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := tflite.NewPool(m, 2, 0) // interpreters built on demand
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n := p.Created(); n != 0 {
		t.Fatalf("%d interpreters before the first Get, want 0", n)
	}
	it, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.Put(it)
	if it2, _ := p.Get(context.Background()); it2 != it || p.Created() != 1 {
		t.Fatalf("a free interpreter was not reused (%d created)", p.Created())
	} else {
		p.Put(it2)
	}
	img := rgbResize(t, models+"peacock.png", 224, 224)
	labels := lines(t, models+"mobilenet_labels.txt")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 3; n++ {
				it, err := p.Get(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				copy(it.Input(0), img)
				err = it.Invoke()
				out := it.Output(0)
				best := 0
				for i, v := range out {
					if v > out[best] {
						best = i
					}
				}
				p.Put(it)
				if err != nil || labels[best] != "peacock" {
					t.Errorf("err %v label %s", err, labels[best])
				}
			}
		}()
	}
	wg.Wait()
}

// TestModelFileRewrittenInPlace: a loaded model and its interpreters read a private copy,
// so truncating and rewriting the file (cp over it: same inode, O_TRUNC) while they run
// never crashes them (with a shared mapping of the file this was SIGBUS) nor changes
// their results; the model closed before its interpreters stays valid until they close.
func TestModelFileRewrittenInPlace(t *testing.T) {
	good, err := os.ReadFile(models + "mobilenet_quant_v1_224.tflite")
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(models + "ssd_detect.tflite")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.tflite")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	img := rgbResize(t, models+"peacock.png", 224, 224)
	for _, xnn := range []bool{false, true} {
		m, err := tflite.LoadModel(path, tflite.Options{Threads: 1, XNNPACK: xnn})
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != len(good) || m.Hash == "" {
			t.Fatalf("size %d hash %q", m.Size, m.Hash)
		}
		it, err := m.NewInterpreter()
		if err != nil {
			t.Fatal(err)
		}
		m.Close() // the interpreter keeps the private copy alive
		run := func() string {
			copy(it.Input(0), img)
			if err := it.Invoke(); err != nil {
				t.Fatal(err)
			}
			return string(it.Output(0))
		}
		want := run()
		for i := 0; i < 6; i++ {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := run(); got != want { // the file is empty now
				t.Fatal("results changed while the file was empty")
			}
			next := [][]byte{other, good}[i%2]
			f.Write(next[:len(next)/2])
			if got := run(); got != want {
				t.Fatal("results changed while the file was half written")
			}
			f.Write(next[len(next)/2:])
			f.Close()
		}
		it.Close()
	}
}

// TestTornModelRejected: every prefix of a model file is refused with ErrBadModel.
func TestTornModelRejected(t *testing.T) {
	good, err := os.ReadFile(models + "mobilenet_quant_v1_224.tflite")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "torn.tflite")
	for _, n := range []int{0, 7, 8, 100, 4096, len(good) / 2, len(good) - 4096, len(good) - 1} {
		if err := os.WriteFile(path, good[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := tflite.LoadModel(path, tflite.Options{})
		if err == nil {
			m.Close()
			t.Fatalf("a %d-byte prefix of a %d-byte model loaded", n, len(good))
		}
		if !errors.Is(err, tflite.ErrBadModel) {
			t.Fatalf("prefix %d: %v does not wrap ErrBadModel", n, err)
		}
	}
}

// TestGraph: the probe delegate reads mobilenet_quant's graph as the runtime built it: its
// operators (all taken by XNNPACK when it is applied, none without), and its tensors with
// uint8 affine quantisation, including the input's known scale and zero point.
func TestGraph(t *testing.T) {
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	plain, err := m.Graph(false)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, c := range plain.OpCounts() {
		counts[c.Name] = c.Count
		if c.Delegated != 0 {
			t.Errorf("%s: %d ops delegated without a delegate", c.Name, c.Delegated)
		}
	}
	// MobileNet v1: 15 convolutions, 13 depthwise, one average pool, reshape and softmax.
	for name, want := range map[string]int{"CONV_2D": 15, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1, "RESHAPE": 1, "SOFTMAX": 1} {
		if counts[name] != want {
			t.Errorf("%s: %d ops, want %d (all: %v)", name, counts[name], want, plain.OpCounts())
		}
	}
	in := plain.Tensors[0]
	for _, tt := range plain.Tensors {
		if tt.Name == m.Inputs[0].Name {
			in = tt
		}
	}
	if in.Quant == nil || in.Type != "uint8" || in.Quant.Scales[0] != m.Inputs[0].Scale || in.Quant.ZeroPoints[0] != m.Inputs[0].ZeroPoint {
		t.Errorf("input tensor %+v (quant %+v), want uint8 scale %g zero %d", in, in.Quant, m.Inputs[0].Scale, m.Inputs[0].ZeroPoint)
	}
	quantised := 0
	for _, tt := range plain.Tensors {
		if tt.Quant != nil {
			quantised++
		}
	}
	if quantised < len(plain.Tensors)*9/10 {
		t.Errorf("%d of %d tensors quantised", quantised, len(plain.Tensors))
	}
	if !tflite.Probe().XNNPACK {
		t.Skip("no XNNPACK in this library")
	}
	xnn, err := m.Graph(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(xnn.Ops) != len(plain.Ops) || xnn.Delegate != "xnnpack" || (xnn.Partitions < 1) != (xnn.DelegatedOps() == 0) {
		t.Errorf("XNNPACK graph: %d ops (plain %d), %d partitions", len(xnn.Ops), len(plain.Ops), xnn.Partitions)
	}
	for _, c := range xnn.OpCounts() {
		// TFLite 2.9's XNNPACK takes no uint8 op (it cannot prepare them with qu8 forced on).
		if (c.Name == "CONV_2D" || c.Name == "DEPTHWISE_CONV_2D") && c.Delegated != c.Count && !strings.HasPrefix(tflite.Probe().Version, "2.9") {
			t.Errorf("XNNPACK took %d of %d %s", c.Delegated, c.Count, c.Name)
		}
		if c.Delegated != c.Count {
			t.Logf("on TFLite's kernels: %d of %d %s", c.Count-c.Delegated, c.Count, c.Name)
		}
	}
	t.Logf("mobilenet_quant: %d ops, %d tensors (%d quantised); XNNPACK: %d ops in %d partitions", len(plain.Ops), len(plain.Tensors), quantised, xnn.DelegatedOps(), xnn.Partitions)
}

// TestGraphSubgraphs: a model with more than one subgraph (okay_nabu: CALL_ONCE runs an
// initialisation subgraph for its resource variables) is probed without a heap overrun, the
// primary subgraph's operators reported (the probe delegate is prepared once per subgraph).
func TestGraphSubgraphs(t *testing.T) {
	m, err := tflite.LoadModel(models+"okay_nabu.tflite", tflite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, xnn := range []bool{false, true} {
		g, err := m.Graph(xnn)
		if err != nil && strings.HasPrefix(tflite.Probe().Version, "2.9") {
			t.Logf("TFLite 2.9 does not prepare the probe delegate on this model: %v (an error, not a crash)", err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, c := range g.OpCounts() {
			counts[c.Name] = c.Count
		}
		if counts["CALL_ONCE"] != 1 || counts["READ_VARIABLE"] == 0 || counts["ASSIGN_VARIABLE"] == 0 {
			t.Errorf("xnnpack=%v: ops %v, want the primary subgraph's CALL_ONCE and variable ops", xnn, g.OpCounts())
		}
	}
}

// TestPoolClose: closing a pool (its model replaced) with an interpreter in use leaves that
// interpreter working until it is put back, which closes it; Get then fails with
// ErrPoolClosed, also for a Get already waiting, instead of building an interpreter of a
// closed model.
func TestPoolClose(t *testing.T) {
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tflite.NewPool(m, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	it, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := p.Get(context.Background())
		waiting <- err
	}()
	time.Sleep(50 * time.Millisecond)
	p.Close()
	m.Close()
	if err := <-waiting; !errors.Is(err, tflite.ErrPoolClosed) {
		t.Fatalf("waiting Get after Close: %v, want ErrPoolClosed", err)
	}
	if err := it.Invoke(); err != nil { // still ours: not closed under us
		t.Fatal(err)
	}
	p.Put(it)
	if n := p.Created(); n != 0 {
		t.Fatalf("%d interpreters left after Put on a closed pool", n)
	}
	if _, err := p.Get(context.Background()); !errors.Is(err, tflite.ErrPoolClosed) {
		t.Fatalf("Get after Close: %v, want ErrPoolClosed", err)
	}
}

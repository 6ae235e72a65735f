package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
	"golang.org/x/sys/unix"
)

// callBuffers maps one buffer per tensor of m outside the Go heap (as guest memory is),
// 64-byte aligned; the inputs are filled from seed.
func callBuffers(t testing.TB, m *tflite.Model, seed int64) ([]plugin.TensorBuffer, [][]byte) {
	t.Helper()
	var bufs []plugin.TensorBuffer
	var views [][]byte
	r := rand.New(rand.NewSource(seed))
	for k, ti := range append(append([]tflite.TensorInfo(nil), m.Inputs...), m.Outputs...) {
		b, err := unix.Mmap(-1, 0, (ti.Bytes+4095)&^4095, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Munmap(b) })
		b = b[:ti.Bytes]
		if k < len(m.Inputs) {
			r.Read(b)
		}
		bufs = append(bufs, plugin.TensorBuffer{Data: unsafe.Pointer(unsafe.SliceData(b)), Bytes: ti.Bytes})
		views = append(views, b)
	}
	return bufs, views
}

// TestModelCallRebind: one interpreter of the call pool is bound to the buffers of
// different callers in turn (as plugins' memories are); each call reads its own inputs and
// writes its own outputs, exactly as the one-copy path computes them, with 0 bytes copied.
// It also measures what rebinding costs against copying.
func TestModelCallRebind(t *testing.T) {
	if !tflite.Probe().CustomAllocation {
		t.Skipf("%v: no custom allocation", tflite.Probe())
	}
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	zc, oc := pipeline.NewModels(), pipeline.NewModels()
	oc.OneCopy = true
	defer zc.Close()
	defer oc.Close()
	if err := zc.Set("m", m, 1); err != nil {
		t.Fatal(err)
	}
	if err := oc.Set("m", m, 1); err != nil {
		t.Fatal(err)
	}
	nin := len(m.Inputs)
	ctx := context.Background()
	far := time.Now().Add(time.Minute)
	a, av := callBuffers(t, m, 1)
	b, bv := callBuffers(t, m, 2)
	a2, a2v := callBuffers(t, m, 1) // same inputs as a, other buffers
	ref, refv := callBuffers(t, m, 1)
	for _, bufs := range [][]plugin.TensorBuffer{a, b, a2} {
		run, err := zc.RunModel(ctx, "m", bufs, far)
		if err != nil || run.Copied != 0 {
			t.Fatalf("zero-copy call: %v, %d bytes copied", err, run.Copied)
		}
	}
	if run, err := oc.RunModel(ctx, "m", ref, far); err != nil || run.Copied == 0 {
		t.Fatalf("one-copy call: %v, %d bytes copied", err, run.Copied)
	}
	if string(av[nin]) != string(refv[nin]) || string(a2v[nin]) != string(refv[nin]) {
		t.Fatal("a call bound to other buffers differs from the one-copy result on the same input")
	}
	if string(bv[nin]) == string(av[nin]) {
		t.Fatal("the second caller's output equals the first's: its input buffer was not read")
	}
	// Cost, interleaved: the same caller every time (no pointer moves), two callers in turn
	// (a rebinding on every call), and the one-copy path.
	const n = 25
	var same, alt, cp time.Duration
	for range n {
		for k, c := range []struct {
			ms   *pipeline.Models
			x, y []plugin.TensorBuffer
			d    *time.Duration
		}{{zc, a, a, &same}, {zc, a, b, &alt}, {oc, a, b, &cp}} {
			for i, bufs := range [][]plugin.TensorBuffer{c.x, c.y} {
				t0 := time.Now()
				if _, err := c.ms.RunModel(ctx, "m", bufs, far); err != nil {
					t.Fatal(k, i, err)
				}
				*c.d += time.Since(t0)
			}
		}
	}
	t.Logf("per call (mobilenet, %s): bound, same buffers %v; bound, rebinding every call %v; copying in and out %v",
		tflite.Probe(), same/(2*n), alt/(2*n), cp/(2*n))
}

// TestModelCallSwap: calls from 4 goroutines while the model is replaced 6 times: none
// fails; calls in flight finish on the version they took (its interpreters closed after).
func TestModelCallSwap(t *testing.T) {
	load := func() *tflite.Model {
		m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, XNNPACK: true})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ms := pipeline.NewModels()
	defer ms.Close()
	first := load()
	if err := ms.Set("m", first, 2); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 4 {
		bufs, _ := callBuffers(t, first, int64(g))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ms.RunModel(context.Background(), "m", bufs, time.Now().Add(time.Minute)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var old []*tflite.Model
	for range 6 {
		time.Sleep(50 * time.Millisecond)
		m := load()
		if err := ms.Set("m", m, 2); err != nil {
			t.Fatal(err)
		}
		old = append(old, m)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := ms.Stats("m")
	t.Logf("%d calls, %d errors through 6 swaps", st.Calls.Load(), st.Errors.Load())
	if st.Errors.Load() != 0 || st.Calls.Load() == 0 {
		t.Fatalf("%d calls, %d errors", st.Calls.Load(), st.Errors.Load())
	}
	ms.Close()
	first.Close()
	for _, m := range old {
		m.Close()
	}
}

// TestModelCallBusy: with every interpreter of the model taken, a call waits until its
// waitUntil and then fails with ErrModelBusy: it never waits on itself or forever.
func TestModelCallBusy(t *testing.T) {
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ms := pipeline.NewModels()
	defer ms.Close()
	if err := ms.Set("m", m, 1); err != nil {
		t.Fatal(err)
	}
	bufs, _ := callBuffers(t, m, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keeps the one interpreter busy
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = ms.RunModel(context.Background(), "m", bufs, time.Now().Add(time.Minute))
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for range 200 {
		t0 := time.Now()
		_, err := ms.RunModel(context.Background(), "m", bufs, time.Now().Add(time.Millisecond))
		if err != nil {
			if !errors.Is(err, plugin.ErrModelBusy) || time.Since(t0) > 2*time.Second {
				t.Fatalf("after %v: %v", time.Since(t0), err)
			}
			t.Logf("busy after %v: %v", time.Since(t0).Round(time.Microsecond), err)
			return
		}
	}
	t.Fatal("200 calls against a busy pool of one never waited past their 1 ms")
}

// TestSDKModelCalls: plugins built with the Go and the Rust SDK (sdk/*/testdata/modelcall)
// run the granted model through the ABI 1.3 imports on their own buffers, on one shared
// instance: the nested run's output equals the pipeline's own run of the model on the same
// input, with 0 bytes copied (TFLite 2.17).
func TestSDKModelCalls(t *testing.T) {
	ctx := context.Background()
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ms := pipeline.NewModels()
	defer ms.Close()
	if err := ms.Set("mobilenet", m, 1); err != nil {
		t.Fatal(err)
	}
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	rt.SetModelRunner(ms)
	for _, path := range []string{root + "sdk/go/testdata/modelcall/modelcall.wasm", root + "sdk/rust/testdata/modelcall.wasm"} {
		mod, err := rt.Load(ctx, plugin.Config{Path: path, WantKind: "both", Timeout: workBudget, MemoryLimit: 64 << 20,
			Grants: plugin.Grants{Models: []string{"mobilenet"}}})
		if err != nil {
			t.Fatalf("%v (make plugins builds it)", err)
		}
		p, err := pipeline.New(ctx, pipeline.Spec{Name: "sdk", Model: m, Pre: mod, Post: mod, Workers: 1, SharedInstance: true, MaxModelCalls: 2}, nil)
		mod.Release(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out string
		st, err := p.Run(ctx, strings.NewReader("x"), 1, func(b []byte, _ string) error { out = string(b); return nil })
		p.Close(ctx)
		if err != nil || !strings.Contains(out, `"equal":true`) || st.ModelCalls != 1 {
			t.Fatalf("%s: %v %s (%d model calls)", path, err, out, st.ModelCalls)
		}
		if tflite.Probe().CustomAllocation && st.CopiedBytes != 0 {
			t.Errorf("%s: %d bytes copied", path, st.CopiedBytes)
		}
		t.Logf("%s: %s, %d bytes copied", path, out, st.CopiedBytes)
	}
}

// TestSharedInstanceModes: the people-c cascade (one shared instance, a 4-output detector,
// pose and mobilenet calls) answers the same bytes in zero-copy and in one-copy mode, and
// one-copy mode copies exactly the detector's tensors once each plus every call's. (A shared
// instance's outputs are its post tensors: reading them as its inputs indexed past the one
// input and panicked in one-copy mode.)
func TestSharedInstanceModes(t *testing.T) {
	ctx := context.Background()
	load := func(file string) *tflite.Model {
		m, err := tflite.LoadModel(models+file, tflite.Options{Threads: 1, XNNPACK: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	ssd, pose, mob := load("ssd_detect.tflite"), load("pose_landmark_full.tflite"), load("mobilenet_quant_v1_224.tflite")
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	params := map[string]any{"threshold": 0.5, "label_offset": 1, "decode_min": 640,
		"labels": labels(t, models+"ssd_labelmap.txt"), "class_labels": labels(t, models+"mobilenet_labels.txt")}
	// Loading instantiates the plugin once (its init describes the models): a runner for it.
	base := pipeline.NewModels()
	defer base.Close()
	_ = base.Set("pose", pose, 1)
	_ = base.Set("mobilenet", mob, 1)
	mod, err := rt.Load(plugin.WithModelRunner(ctx, base), plugin.Config{Path: wasm(t, "people-c"), WantKind: "both", Timeout: workBudget, MemoryLimit: 64 << 20,
		Params: params, Grants: plugin.Grants{Models: []string{"pose", "mobilenet"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Release(ctx)
	img, _ := os.ReadFile(models + "ssd_example.jpg")
	var outs [2]string
	var sts [2]pipeline.Stats
	for k, oneCopy := range []bool{false, true} {
		if !oneCopy && !tflite.Probe().CustomAllocation {
			continue
		}
		ms := pipeline.NewModels()
		ms.OneCopy = oneCopy
		if err := ms.Set("pose", pose, 1); err != nil {
			t.Fatal(err)
		}
		if err := ms.Set("mobilenet", mob, 1); err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(ctx, pipeline.Spec{Name: "people", Model: ssd, Pre: mod, Post: mod, Workers: 1, SharedInstance: true,
			MaxModelCalls: 32, OneCopy: oneCopy, Calls: ms.Acquire([]string{"pose", "mobilenet"})}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sts[k], err = p.Run(ctx, bytes.NewReader(img), len(img), func(b []byte, _ string) error { outs[k] = string(b); return nil })
		p.Close(ctx)
		ms.Close()
		if err != nil || !strings.Contains(outs[k], `"keypoints":[[`) {
			t.Fatalf("one-copy %v: %v %.200s", oneCopy, err, outs[k])
		}
	}
	if tflite.Probe().CustomAllocation {
		if outs[0] != outs[1] {
			t.Errorf("answers differ:\nzero-copy %.300s\none-copy  %.300s", outs[0], outs[1])
		}
		if sts[0].CopiedBytes != 0 {
			t.Errorf("zero-copy mode copied %d bytes", sts[0].CopiedBytes)
		}
	}
	want := 0
	for _, ti := range append(append([]tflite.TensorInfo(nil), ssd.Inputs...), ssd.Outputs...) {
		want += ti.Bytes
	}
	persons := strings.Count(outs[1], `"keypoints"`)
	others := sts[1].ModelCalls - persons
	for _, c := range []struct {
		m *tflite.Model
		n int
	}{{pose, persons}, {mob, others}} {
		for _, ti := range append(append([]tflite.TensorInfo(nil), c.m.Inputs...), c.m.Outputs...) {
			want += c.n * ti.Bytes
		}
	}
	if sts[1].CopiedBytes != want {
		t.Errorf("one-copy mode copied %d bytes, want %d (each tensor once, calls included)", sts[1].CopiedBytes, want)
	}
	t.Logf("%d model calls; one-copy mode copied %d bytes, zero-copy %d", sts[1].ModelCalls, sts[1].CopiedBytes, sts[0].CopiedBytes)
}

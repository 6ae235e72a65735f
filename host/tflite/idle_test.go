package tflite_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/tflite"
)

// fillPattern writes a deterministic pseudo-random pattern in the value range of t's type: an
// input every model accepts (float inputs in [-1, 1], as the image models normalise).
func fillPattern(b []byte, t tflite.TensorInfo, seed uint32) {
	x := seed*2654435761 + 1
	next := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	switch t.Type {
	case abi.Float32:
		for i := 0; i+4 <= len(b); i += 4 {
			v := float32(next()%2001)/1000 - 1
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(v))
		}
	default:
		for i := range b {
			b[i] = byte(next())
		}
	}
}

// closeEnough compares two outputs of tensor t: quantized and integer tensors exactly, float
// tensors within 1e-4 of the larger magnitude (a multi-threaded float kernel may sum in
// another order).
func closeEnough(t tflite.TensorInfo, a, b []byte) (bool, float64) {
	if len(a) != len(b) {
		return false, math.Inf(1)
	}
	if t.Type != abi.Float32 {
		for i := range a {
			if a[i] != b[i] {
				return false, float64(i)
			}
		}
		return true, 0
	}
	worst := 0.0
	for i := 0; i+4 <= len(a); i += 4 {
		x := float64(math.Float32frombits(binary.LittleEndian.Uint32(a[i:])))
		y := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
		if d := math.Abs(x-y) / math.Max(1, math.Max(math.Abs(x), math.Abs(y))); d > worst {
			worst = d
		}
	}
	return worst <= 1e-4, worst
}

// TestIdleInterpreterRouting: a request alone in the process gets the idle interpreter
// (threads = IdleThreads); with another request in flight, or while the idle one is held,
// it gets none; closing the model closes the idle interpreter and none is built again.
func TestIdleInterpreterRouting(t *testing.T) {
	defer tflite.SetLoadCheck(tflite.SetLoadCheck(false)) // other processes' load is tested apart
	m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 1, IdleThreads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.IdleThreads() != 2 {
		t.Fatalf("IdleThreads = %d, want 2", m.IdleThreads())
	}
	if m.HasIdle() {
		t.Fatal("the idle interpreter exists before any request asked for it")
	}
	if err := m.PrepareIdle(); err != nil {
		t.Fatal(err)
	}
	base := tflite.InFlight()
	if base != 0 {
		t.Fatalf("InFlight = %d before any request", base)
	}

	tflite.Begin() // this request
	it := m.IdleInterpreter()
	if it == nil {
		t.Fatal("a request alone in the process did not get the idle interpreter")
	}
	if again := m.IdleInterpreter(); again != nil {
		t.Fatal("the idle interpreter was handed out twice")
	}
	m.PutIdle(it)

	tflite.Begin() // a second request in flight
	if got := m.IdleInterpreter(); got != nil {
		t.Fatal("with two requests in flight a request got the idle interpreter")
	}
	tflite.End()
	if got := m.IdleInterpreter(); got == nil {
		t.Fatal("the request alone again did not get the idle interpreter")
	} else {
		m.PutIdle(got)
	}
	tflite.End()
	if runs := m.IdleRuns(); runs != 2 {
		t.Fatalf("IdleRuns = %d, want 2", runs)
	}

	one, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 2, IdleThreads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	if one.IdleThreads() != 0 {
		t.Fatalf("idle threads not above threads: IdleThreads = %d, want 0", one.IdleThreads())
	}
	tflite.Begin()
	if got := one.IdleInterpreter(); got != nil {
		t.Fatal("a model without idle threads handed out an idle interpreter")
	}
	tflite.End()
	one.Close()

	m.Close()
	if m.HasIdle() {
		t.Fatal("Close left the idle interpreter open")
	}
	tflite.Begin()
	if got := m.IdleInterpreter(); got != nil {
		t.Fatal("a closed model handed out an idle interpreter")
	}
	tflite.End()
	if m.HasIdle() {
		t.Fatal("a closed model built its idle interpreter again")
	}
}

// TestIdleInterpreterBuiltOnDemand: the first lone request starts building the idle
// interpreter in the background and runs on its own; a later one gets it.
func TestIdleInterpreterBuiltOnDemand(t *testing.T) {
	defer tflite.SetLoadCheck(tflite.SetLoadCheck(false))
	m, err := tflite.LoadModel(models+"ssd_detect.tflite", tflite.Options{Threads: 1, IdleThreads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tflite.Begin()
	defer tflite.End()
	if it := m.IdleInterpreter(); it != nil {
		t.Fatal("the first request got an idle interpreter that was not built yet")
	}
	// PrepareIdle waits for the background build (it takes the same lock) and builds nothing more.
	if err := m.PrepareIdle(); err != nil {
		t.Fatal(err)
	}
	it := m.IdleInterpreter()
	if it == nil {
		t.Fatal("no idle interpreter after the background build")
	}
	m.PutIdle(it)
}

// TestIdleInterpreterSameOutputs: for every bundled model, the idle interpreter (2 threads)
// gives the outputs of a 1-thread interpreter on the same inputs.
func TestIdleInterpreterSameOutputs(t *testing.T) {
	defer tflite.SetLoadCheck(tflite.SetLoadCheck(false))
	paths, _ := filepath.Glob(models + "*.tflite")
	if len(paths) == 0 {
		t.Skip("no models in " + models + " (make deps)")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			m, err := tflite.LoadModel(p, tflite.Options{Threads: 1, IdleThreads: 2, XNNPACK: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.PrepareIdle(); err != nil {
				t.Fatal(err)
			}
			one, err := m.NewInterpreter()
			if err != nil {
				t.Fatal(err)
			}
			defer one.Close()
			tflite.Begin()
			defer tflite.End()
			wide := m.IdleInterpreter()
			if wide == nil {
				t.Fatal("no idle interpreter")
			}
			defer m.PutIdle(wide)
			for seed := uint32(1); seed <= 2; seed++ {
				for n, in := range m.Inputs {
					fillPattern(one.Input(n), in, seed+uint32(n))
					fillPattern(wide.Input(n), in, seed+uint32(n))
				}
				if err := one.Invoke(); err != nil {
					t.Fatal(err)
				}
				if err := wide.Invoke(); err != nil {
					t.Fatal(err)
				}
				for n, out := range m.Outputs {
					if ok, worst := closeEnough(out, one.Output(n), wide.Output(n)); !ok {
						t.Fatalf("seed %d output %d (%s): 2 threads differ from 1 (worst %g)", seed, n, out, worst)
					} else if worst > 0 {
						t.Logf("seed %d output %d: worst relative difference %g", seed, n, worst)
					}
				}
			}
		})
	}
}

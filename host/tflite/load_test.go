package tflite

import (
	"math"
	"os"
	"testing"
)

func TestParseCPU(t *testing.T) {
	stat := []byte("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\ncpu1 50 3 25 400 10 2 1 0 0 0\nintr 12345\nctxt 999\n")
	self := []byte("1234 (edge host) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 30 10 0 0 20 0 12 0 100 0 0\n")
	s, ok := parseCPU(stat, self)
	if !ok {
		t.Fatal("parse failed")
	}
	if s.total != 980 || s.busy != 160 || s.self != 40 || s.cpus != 2 {
		t.Fatalf("got %+v, want total 980, busy 160, self 40, cpus 2", s)
	}
	if _, ok := parseCPU([]byte("intr 1\n"), self); ok {
		t.Fatal("a /proc/stat without its cpu line parsed")
	}
	if _, ok := parseCPU(stat, []byte("1234 (x) S 1")); ok {
		t.Fatal("a truncated /proc/self/stat parsed")
	}
	// 2 CPUs, 100 ticks each: 120 busy ticks, 40 of them this process's: others used 0.8 cores.
	s1 := cpuSample{total: s.total + 200, busy: s.busy + 120, self: s.self + 40, cpus: 2}
	if got := s1.othersSince(s); math.Abs(got-0.8) > 1e-9 {
		t.Fatalf("others = %v, want 0.8", got)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil { // the real files parse here
		self, _ := os.ReadFile("/proc/self/stat")
		if _, ok := parseCPU(b, self); !ok {
			t.Fatal("this machine's /proc/stat and /proc/self/stat did not parse")
		}
	}
}

func TestAllows(t *testing.T) {
	for _, c := range []struct {
		others        float64
		cpus, threads int
		want          bool
	}{
		{0, 2, 2, true}, {0.2, 2, 2, true}, {0.5, 2, 2, false}, {1.7, 2, 2, false},
		{1.7, 4, 2, true}, {2.9, 4, 2, false}, {0, 1, 2, false},
	} {
		if got := allows(c.others, c.cpus, c.threads); got != c.want {
			t.Errorf("allows(%v others, %d cpus, %d threads) = %v, want %v", c.others, c.cpus, c.threads, got, c.want)
		}
	}
}

// TestIdleInterpreterBusyMachine: alone in the process, a request still gets no idle
// interpreter when other processes keep the cores busy, and gets it when they do not.
func TestIdleInterpreterBusyMachine(t *testing.T) {
	m, err := LoadModel("../../.deps/models/mobilenet_quant_v1_224.tflite", Options{Threads: 1, IdleThreads: 2, XNNPACK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.PrepareIdle(); err != nil {
		t.Fatal(err)
	}
	machine.once.Do(func() {}) // no sampler: the figures below stay
	defer SetLoadCheck(SetLoadCheck(true))
	defer machine.ok.Store(false)
	machine.cpus.Store(2)
	machine.ok.Store(true)
	Begin()
	defer End()
	machine.others.Store(math.Float64bits(1.5))
	if it := m.IdleInterpreter(); it != nil {
		t.Fatal("a request got the idle interpreter while others used 1.5 of 2 cores")
	}
	machine.others.Store(math.Float64bits(0.1))
	it := m.IdleInterpreter()
	if it == nil {
		t.Fatal("a request alone on a quiet machine got no idle interpreter")
	}
	m.PutIdle(it)
}

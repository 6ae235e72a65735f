package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/wasm"
)

// Hand-written hostile modules (see testplugins.RawPlugin): cases no compiler emits.

func loadRaw(t *testing.T, rt *plugin.Runtime, name string, b []byte, cfg plugin.Config) (*plugin.Module, error, time.Duration) {
	t.Helper()
	cfg.Path = WriteRaw(t, name, b)
	start := time.Now()
	m, err := rt.Load(context.Background(), cfg)
	return m, err, time.Since(start)
}

// rawInstance loads a hand-written module, instantiates it and gives it a 1-byte input, ready
// for Pre; the instance and the module are closed when the test ends.
func rawInstance(t *testing.T, rt *plugin.Runtime, name string, b []byte, cfg plugin.Config) *plugin.Instance {
	t.Helper()
	ctx := context.Background()
	m, err, _ := loadRaw(t, rt, name, b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(ctx) })
	if _, err := inst.InputBuffer(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestRawPluginLoads: the hand-written plugin itself is good, so the cases below fail for
// the fault they add and nothing else.
func TestRawPluginLoads(t *testing.T) {
	rt := newRuntime(t)
	m, err, _ := loadRaw(t, rt, "good", RawPlugin(PluginSpec{}), plugin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close(context.Background())
}

// TestFuelGlobalOverwrite: a module naming the global index the rewrite adds (invalid as
// written) used to overwrite the fuel counter and spin forever, freezing the process. It
// is rejected at load, before any rewrite.
func TestFuelGlobalOverwrite(t *testing.T) {
	rt := newRuntime(t)
	// pre: loop { fuel = 0x7fffffff; br 0 }. Global 1 does not exist as written; after the
	// rewrite it would be the fuel.
	pre := append([]byte{0x03, 0x40, 0x41}, SLEB(0x7fffffff)...)
	pre = append(pre, 0x24, 1, 0x0c, 0, 0x0b, 0x41, 0, 0x0b)
	_, err, took := loadRaw(t, rt, "fuel-overwrite", RawPlugin(PluginSpec{Pre: pre}), plugin.Config{Timeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "invalid module") {
		t.Fatalf("loaded or wrong error: %v", err)
	}
	t.Logf("rejected in %v: %v", took, err)
	// Importing what the rewrite adds is refused too.
	imp := Section(2, Vec(append(append(Str("edgehost"), Str(wasm.FuelImport)...), 0, 0)))
	b := RawPlugin(PluginSpec{})
	b = append(b[:8], append(Section(1, Vec([]byte{0x60, 0, 1, 0x7f}, []byte{0x60, 2, 0x7f, 0x7f, 1, 0x7f},
		[]byte{0x60, 1, 0x7f, 0}, []byte{0x60, 1, 0x7f, 1, 0x7f}, []byte{0x60, 0, 0})), append(imp, b[8+len(Section(1, Vec([]byte{0x60, 0, 1, 0x7f}, []byte{0x60, 2, 0x7f, 0x7f, 1, 0x7f},
		[]byte{0x60, 1, 0x7f, 0}, []byte{0x60, 1, 0x7f, 1, 0x7f}, []byte{0x60, 0, 0}))):]...)...)...)
	_, err, _ = loadRaw(t, rt, "fuel-import", b, plugin.Config{})
	if err == nil || !strings.Contains(err.Error(), "only the host may add") {
		t.Fatalf("loaded or wrong error: %v", err)
	}
}

// TestStartSectionLoop: a start function that never returns makes the load fail with a
// time-budget error, within the budget plus a margin for a busy machine.
func TestStartSectionLoop(t *testing.T) {
	rt := newRuntime(t)
	budget := 100 * time.Millisecond
	_, err, took := loadRaw(t, rt, "start-loop", RawPlugin(PluginSpec{Start: []byte{0x03, 0x40, 0x0c, 0, 0x0b, 0x0b}}),
		plugin.Config{Timeout: budget})
	var te *plugin.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "start function exceeded its time budget") {
		t.Fatalf("error %v, want a start-function TimeoutError", err)
	}
	if took > budget+time.Second {
		t.Errorf("load took %v", took)
	}
	t.Logf("stopped after %v (budget %v): %v", took, budget, err)
}

// bulkLoop is pre code running op(0, n, n) times times: memory.fill of n bytes at 0 (with
// n's low byte) or memory.copy of n bytes from n to 0.
func bulkLoop(op []byte, n uint32, times int32) []byte {
	c := []byte{0x03, 0x40, 0x41, 0, 0x41}
	c = append(c, SLEB(int64(int32(n)))...)
	c = append(append(c, 0x41), SLEB(int64(int32(n)))...)
	c = append(c, op...)
	c = append(c, 0x20, 1, 0x41, 1, 0x6a, 0x22, 1, 0x41)
	c = append(c, SLEB(int64(times))...)
	return append(c, 0x48, 0x0d, 0, 0x0b, 0x41, 0, 0x0b) // i32.lt_s, br_if 0, end, i32.const 0, end
}

// TestBulkMemoryCharged: loops over memory.fill and memory.copy of 64 MiB (and of 60 KiB)
// are stopped within their budget: fuel charges the bytes, not the iterations.
func TestBulkMemoryCharged(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	budget := 200 * time.Millisecond
	for _, c := range []struct {
		name  string
		op    []byte
		n     uint32
		times int32
	}{
		{"fill-64MiB", []byte{0xfc, 11, 0}, 64 << 20, 1000},
		{"copy-64MiB", []byte{0xfc, 10, 0, 0}, 64 << 20, 1000},
		{"fill-60KiB", []byte{0xfc, 11, 0}, 60 << 10, 1 << 30},
		{"copy-60KiB", []byte{0xfc, 10, 0, 0}, 60 << 10, 1 << 30},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A copy reads [n, 2n): 128 MiB plus a page.
			b := RawPlugin(PluginSpec{Pre: bulkLoop(c.op, c.n, c.times), PreLocals: []byte{1, 1, 0x7f}, Pages: 2049})
			inst := rawInstance(t, rt, strings.ToLower(c.name), b, plugin.Config{Timeout: budget, MemoryLimit: 256 << 20})
			start := time.Now()
			err := inst.Pre(ctx, 1)
			took := time.Since(start)
			var te *plugin.TimeoutError
			if !errors.As(err, &te) {
				t.Fatalf("err %v, want a TimeoutError", err)
			}
			// Quiet machine: within a few ms of the budget (logged); a busy one delays the
			// deadline check by scheduling, not by the bytes.
			if took > budget+time.Second {
				t.Errorf("stopped after %v, budget %v", took, budget)
			}
			t.Logf("stopped after %v (budget %v)", took, budget)
		})
	}
}

// TestSleepHonoursDeadline: with a granted clock, nanosleep(8 s) and sleep(8 s) (poll_oneoff)
// are cut at the call's deadline, which stops the guest like a runaway loop.
func TestSleepHonoursDeadline(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	budget := 200 * time.Millisecond
	m, err := rt.Load(ctx, plugin.Config{Path: Hostile(t, "SLEEP", abi.KindBoth), Grants: plugin.Grants{Clock: true},
		Timeout: budget, MemoryLimit: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if err := inst.Bind(ctx, []plugin.Tensor{{Name: "t", DType: abi.UInt8, Shape: []int{4}, Bytes: 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.InputBuffer(ctx, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = inst.Pre(ctx, 1)
	took := time.Since(start)
	var te *plugin.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("err %v, want a TimeoutError", err)
	}
	if took > budget+time.Second {
		t.Errorf("stopped after %v, budget %v", took, budget)
	}
	t.Logf("stopped after %v (budget %v): %v", took, budget, err)
}

// TestSleepHonoursCancel: a granted sleep is cut when the call's context ends (the client
// went away, request_timeout), well before the budget; the instance is then discarded.
func TestSleepHonoursCancel(t *testing.T) {
	rt := newRuntime(t)
	m, err := rt.Load(context.Background(), plugin.Config{Path: Hostile(t, "SLEEP", abi.KindBoth), Grants: plugin.Grants{Clock: true},
		Timeout: 30 * time.Second, MemoryLimit: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	inst, err := m.NewInstance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	if err := inst.Bind(context.Background(), []plugin.Tensor{{Name: "t", DType: abi.UInt8, Shape: []int{4}, Bytes: 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.InputBuffer(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = inst.Pre(ctx, 1)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if took > 5*time.Second {
		t.Errorf("cancelled sleep returned after %v (the budget is 30 s, the context 200 ms)", took)
	}
	if err := inst.Pre(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("instance reused after a cancelled call: %v", err)
	}
	t.Logf("returned after %v: %v", took, err)
}

// TestTableGrowCapped: table.grow of 64M funcref entries (3.4 GB of host memory for three
// requests before the cap) fails as the spec allows (returns -1); growing within the cap
// (1/8 of the memory budget at 8 bytes an entry) works.
func TestTableGrowCapped(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	grow := func(n int64, fail byte, wantFail bool) []byte {
		c := append([]byte{0xd0, 0x70, 0x41}, SLEB(n)...)
		c = append(c, 0xfc, 15, 0, 0x41, 0x7f) // table.grow 0, i32.const -1
		if wantFail {
			c = append(c, 0x47) // i32.ne: the grow succeeded
		} else {
			c = append(c, 0x46) // i32.eq: the grow failed
		}
		return append(c, 0x04, 0x40, 0x41, fail, 0x0f, 0x0b)
	}
	pre := append(append(grow(64<<20, 2, true), grow(1000, 3, false)...), 0x41, 0, 0x0b)
	b := RawPlugin(PluginSpec{Pre: pre, Tables: Vec([]byte{0x70, 0, 1})})
	inst := rawInstance(t, rt, "table-grow", b, plugin.Config{MemoryLimit: 16 << 20})
	if err := inst.Pre(ctx, 1); err != nil {
		t.Fatalf("%v (status 2: the 64M grow succeeded; 3: a grow within the cap failed)", err)
	}
}

// TestSanitize: plugin text cannot split or forge host log lines or carry terminal escapes.
func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcode":                   "plain text, ünïcode",
		"a\n2026-12-01T00:00:00Z [INFO] forged": `a\n2026-12-01T00:00:00Z [INFO] forged`,
		"\x1b[31mred\x1b[0m":                    `\x1b[31mred\x1b[0m`,
		"c1 \u009b csi, del \x7f":               `c1 \u009b csi, del \x7f`,
		"bad utf8 \xff":                         "bad utf8 \uFFFD",
	} {
		if got := plugin.Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBudgetClockCPU: with BudgetCPU a runaway is stopped once the guest thread has used its
// budget of CPU time (or at the wall-clock ceiling, on a machine too busy to give it that),
// and contention does not spend the budget: beside two spinning goroutines the guest gets
// far more CPU under BudgetCPU than under the default wall clock.
func TestBudgetClockCPU(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	budget := 200 * time.Millisecond
	stop := make(chan struct{})
	defer close(stop)
	for k := 0; k < 2; k++ {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e6; i++ {
				}
			}
		}()
	}
	used := map[plugin.BudgetClock]time.Duration{}
	for _, clock := range []plugin.BudgetClock{plugin.BudgetCPU, plugin.BudgetWall} {
		m, err := rt.Load(ctx, plugin.Config{Path: Hostile(t, "LOOP_PRE", abi.KindBoth), Timeout: budget, BudgetClock: clock})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := m.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.Bind(ctx, []plugin.Tensor{{Name: "t", DType: abi.UInt8, Shape: []int{4}, Bytes: 4}}); err != nil {
			t.Fatal(err)
		}
		if _, err := inst.InputBuffer(ctx, 1); err != nil {
			t.Fatal(err)
		}
		runtime.LockOSThread()
		cpu0, start := threadCPU(), time.Now()
		err = inst.Pre(ctx, 1)
		cpu, wall := threadCPU()-cpu0, time.Since(start)
		runtime.UnlockOSThread()
		var te *plugin.TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("%q: err %v, want a TimeoutError", clock, err)
		}
		t.Logf("budget clock %q: stopped after %v wall, %v of guest-thread CPU (budget %v)", clock, wall, cpu, budget)
		used[clock] = cpu
		ceiling := budget * plugin.CPUWallFactor
		if clock == plugin.BudgetCPU {
			if cpu < budget*9/10 && wall < ceiling {
				t.Errorf("cpu budget: stopped after %v of CPU and %v wall, before the budget and the ceiling", cpu, wall)
			}
			if wall > ceiling+time.Second {
				t.Errorf("cpu budget: ran %v wall, past the ceiling", wall)
			}
		} else if wall > budget+time.Second {
			t.Errorf("wall budget: ran %v", wall)
		}
		inst.Close(ctx)
		m.Close(ctx)
	}
	if used[plugin.BudgetCPU] < used[plugin.BudgetWall]*3/2 {
		t.Errorf("guest CPU: %v under the cpu clock, %v under the wall clock: contention spent the cpu budget",
			used[plugin.BudgetCPU], used[plugin.BudgetWall])
	}
}

// TestBulkMemorySemantics: the host's chunked memory.fill/copy (lengths over 64 KiB) do what
// the instructions do, overlapping copies in both directions included, and an out-of-bounds
// fill traps without writing anything.
func TestBulkMemorySemantics(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	c := func(v int64) []byte { return append([]byte{0x41}, SLEB(v)...) }
	var pre []byte
	pre = append(append(append(append(pre, c(0)...), c(7)...), c(200000)...), 0xfc, 11, 0)
	pre = append(append(append(pre, c(100000)...), c(9)...), 0x3a, 0, 0)
	pre = append(append(append(append(pre, c(50000)...), c(0)...), c(150000)...), 0xfc, 10, 0, 0)
	pre = append(append(append(append(pre, c(0)...), c(50000)...), c(100000)...), 0xfc, 10, 0, 0)
	pre = append(append(pre, c(0)...), 0x0b)
	model := make([]byte, 200000)
	for i := range model {
		model[i] = 7
	}
	model[100000] = 9
	copy(model[50000:200000], model[0:150000])
	copy(model[0:100000], model[50000:150000])

	inst := rawInstance(t, rt, "bulk-semantics", RawPlugin(PluginSpec{Pre: pre, Pages: 8}), plugin.Config{})
	// The fills cover the call block too (it lies in the first 200,000 bytes), so the host
	// finds a request-context length of 0x07070707 there and rejects the call as an ABI
	// violation, not a trap; the memory is what the instructions wrote either way.
	var se *plugin.StatusError
	if err := inst.Pre(ctx, 1); err != nil && !(errors.As(err, &se) && se.Host && strings.Contains(err.Error(), "request context")) {
		t.Fatal(err)
	}
	got, _ := inst.Bytes(0, 200000)
	if !bytes.Equal(got, model) {
		for i := range got {
			if got[i] != model[i] {
				t.Fatalf("memory differs from the model at %d: %d, want %d", i, got[i], model[i])
			}
		}
	}

	// Out of bounds: 8 pages are 524,288 bytes.
	oob := append(append(append(append([]byte(nil), c(500000)...), c(1)...), c(100000)...), 0xfc, 11, 0)
	oob = append(append(oob, c(0)...), 0x0b)
	inst2 := rawInstance(t, rt, "bulk-oob", RawPlugin(PluginSpec{Pre: oob, Pages: 8}), plugin.Config{})
	before, _ := inst2.Bytes(500000, 24288)
	before = append([]byte(nil), before...)
	err := inst2.Pre(ctx, 1)
	var trap *plugin.TrapError
	if !errors.As(err, &trap) || !strings.Contains(err.Error(), "out of bounds memory access") {
		t.Fatalf("err %v, want an out-of-bounds trap", err)
	}
	after, _ := inst2.Bytes(500000, 24288)
	if !bytes.Equal(before, after) {
		t.Error("an out-of-bounds fill wrote memory")
	}
}

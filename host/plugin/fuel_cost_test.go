package plugin_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
	"golang.org/x/sys/unix"
)

// TestMeasureFuelCost (MEASURE=1): the instrumentation's cost on the example pre plugins,
// measured on a busy shared machine: metered and unmetered calls alternate on one locked OS
// thread, and the minimum thread CPU time of each over ROUNDS rounds is compared (on a
// saturated machine BenchmarkFuel's wall-clock means swung from 0.5x to 1.5x).
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func TestMeasureFuelCost(t *testing.T) {
	if os.Getenv("MEASURE") == "" {
		t.Skip("MEASURE=1")
	}
	rounds := 30
	if n, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil {
		rounds = n
	}
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) }) // after the modules and instances (cleanups run last first)
	for _, w := range []struct {
		file   string
		tensor plugin.Tensor
	}{
		{"peacock.png", plugin.Tensor{Name: "in", DType: abi.UInt8, Shape: []int{1, 224, 224, 3}, Bytes: 224 * 224 * 3}},
		{"ssd_example.jpg", plugin.Tensor{Name: "in", DType: abi.UInt8, Shape: []int{1, 300, 300, 3}, Bytes: 300 * 300 * 3}},
		{"frame_12mp.jpg", plugin.Tensor{Name: "in", DType: abi.UInt8, Shape: []int{1, 300, 300, 3}, Bytes: 300 * 300 * 3}},
		{"frame_12mp.jpg", plugin.Tensor{Name: "in", DType: abi.Float32, Shape: []int{1, 128, 128, 3}, Bytes: 128 * 128 * 3 * 4}},
		{"frame_12mp.jpg", plugin.Tensor{Name: "in", DType: abi.Float32, Shape: []int{1, 257, 257, 3}, Bytes: 257 * 257 * 3 * 4}},
	} {
		img, err := os.ReadFile(testplugins.Model(w.file))
		if err != nil {
			t.Logf("%s: %v (frame_12mp.jpg is made by make bench-data)", w.file, err)
			continue
		}
		tensor := []plugin.Tensor{w.tensor}
		for _, name := range []string{"imagepre-c", "imagepre-go"} {
			var insts [2]*plugin.Instance
			for k, unmetered := range []bool{true, false} {
				insts[k] = boundInstance(t, ctx, rt, plugin.Config{Path: testplugins.Example(t, name), Unmetered: unmetered, MemoryLimit: 512 << 20, Timeout: time.Minute}, tensor, img)
			}
			best := [2]time.Duration{1 << 62, 1 << 62}
			runtime.LockOSThread()
			for r := 0; r < rounds; r++ {
				for k, inst := range insts {
					start := threadCPU()
					if err := inst.Pre(ctx, uint32(len(img))); err != nil {
						t.Fatal(err)
					}
					best[k] = min(best[k], threadCPU()-start)
				}
			}
			runtime.UnlockOSThread()
			t.Logf("%s → %s %v: %s: unmetered %v, metered %v: %.3fx (minimum thread CPU time of %d alternating calls)", w.file, w.tensor.DType, w.tensor.Shape[1:3], name,
				best[0], best[1], float64(best[1])/float64(best[0]), rounds)
		}
	}
}

// boundInstance loads cfg into rt, makes an instance bound to tensor with img in its input
// buffer; the module and instance are closed when the test ends.
func boundInstance(t *testing.T, ctx context.Context, rt *plugin.Runtime, cfg plugin.Config, tensor []plugin.Tensor, img []byte) *plugin.Instance {
	t.Helper()
	m, err := rt.Load(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(ctx) })
	if err := inst.Bind(ctx, tensor); err != nil {
		t.Fatal(err)
	}
	buf, err := inst.InputBuffer(ctx, uint32(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, img)
	return inst
}

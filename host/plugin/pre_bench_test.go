package plugin_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// BenchmarkFuel: the cost of time-budget enforcement (fuel instrumentation) on the example pre
// plugins doing real work (peacock.png into mobilenet's input, camera-sized JPEGs into SSD's
// and deeplab's), against the same plugin without instrumentation in the same run; the ratio
// is reported as x-unmetered. The comparison with Pillow and native Go is `make bench`.
func BenchmarkFuel(b *testing.B) {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	for _, w := range []struct {
		name, file string
		tensor     plugin.Tensor
	}{
		{"peacock-224-u8", "peacock.png", plugin.Tensor{Name: "in", DType: abi.UInt8, Shape: []int{1, 224, 224, 3}, Bytes: 224 * 224 * 3}},
		{"ssd-jpeg-300-u8", "ssd_example.jpg", plugin.Tensor{Name: "in", DType: abi.UInt8, Shape: []int{1, 300, 300, 3}, Bytes: 300 * 300 * 3}},
		{"ssd-jpeg-257-f32", "ssd_example.jpg", plugin.Tensor{Name: "in", DType: abi.Float32, Shape: []int{1, 257, 257, 3}, Bytes: 257 * 257 * 3 * 4}},
		{"12mp-jpeg-300-u8", "frame_12mp.jpg", plugin.Tensor{Name: "in", DType: abi.UInt8, Shape: []int{1, 300, 300, 3}, Bytes: 300 * 300 * 3}},
		{"12mp-jpeg-128-f32", "frame_12mp.jpg", plugin.Tensor{Name: "in", DType: abi.Float32, Shape: []int{1, 128, 128, 3}, Bytes: 128 * 128 * 3 * 4}},
		{"12mp-jpeg-257-f32", "frame_12mp.jpg", plugin.Tensor{Name: "in", DType: abi.Float32, Shape: []int{1, 257, 257, 3}, Bytes: 257 * 257 * 3 * 4}},
	} {
		img, err := os.ReadFile(testplugins.Model(w.file))
		if err != nil {
			continue // frame_12mp.jpg is made by `make bench-data`
		}
		for _, name := range []string{"imagepre-c", "imagepre-go"} {
			var base float64
			for _, unmetered := range []bool{true, false} {
				label := w.name + "/" + name + "/metered"
				if unmetered {
					label = w.name + "/" + name + "/unmetered"
				}
				b.Run(label, func(b *testing.B) {
					m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(b, name), Unmetered: unmetered, MemoryLimit: 256 << 20, Timeout: time.Minute})
					if err != nil {
						b.Fatal(err)
					}
					defer m.Close(ctx)
					inst, err := m.NewInstance(ctx)
					if err != nil {
						b.Fatal(err)
					}
					defer inst.Close(ctx)
					if err := inst.Bind(ctx, []plugin.Tensor{w.tensor}); err != nil {
						b.Fatal(err)
					}
					buf, _ := inst.InputBuffer(ctx, uint32(len(img)))
					copy(buf, img)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := inst.Pre(ctx, uint32(len(img))); err != nil {
							b.Fatal(err)
						}
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					if unmetered {
						base = ns
					} else if base > 0 {
						b.ReportMetric(ns/base, "x-unmetered")
					}
				})
			}
		}
	}
}

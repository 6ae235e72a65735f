package tflite_test

import (
	"fmt"
	"testing"

	"github.com/edgehost/edgehost/host/tflite"
)

// BenchmarkInvokeMobilenet reports native invoke latency of mobilenet_quant_v1_224 with
// XNNPACK off and on, at 1 and 2 threads: the baseline every plugin pipeline is compared to.
func BenchmarkInvokeMobilenet(b *testing.B) {
	img := rgbResize(b, models+"peacock.png", 224, 224)
	for _, xnn := range []bool{false, true} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("xnnpack=%v/threads=%d", xnn, threads), func(b *testing.B) {
				m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: threads, XNNPACK: xnn})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				it, err := m.NewInterpreter()
				if err != nil {
					b.Fatal(err)
				}
				defer it.Close()
				copy(it.Input(0), img)
				b.ResetTimer()
				for n := 0; n < b.N; n++ {
					if err := it.Invoke(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

package tflite_test

import (
	"fmt"
	"os"
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

// BenchmarkInvokeThreads compares 1 and 2 interpreter/XNNPACK threads on each bundled model
// (XNNPACK on, zeroed inputs): the measurement behind the default `threads = 1`
// (RATIONALE.md, "One default thread count"). Run it with -count to interleave the two.
func BenchmarkInvokeThreads(b *testing.B) {
	for _, name := range []string{"mobilenet_quant_v1_224", "ssd_detect", "deeplabv3_257_mv_gpu", "face_detection_short_range"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", name, threads), func(b *testing.B) {
				m, err := tflite.LoadModel(models+name+".tflite", tflite.Options{Threads: threads, XNNPACK: true})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				it, err := m.NewInterpreter()
				if err != nil {
					b.Fatal(err)
				}
				defer it.Close()
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

// BenchmarkBackends runs each bundled model on the classic TFLite API, on LiteRT's CPU path,
// (with OpenVINO fetched) on LiteRT's NPU path through OpenVINO's CPU device, and (with
// VK_ICD_FILENAMES set) on LiteRT's GPU, one thread, zeroed inputs. A backend that falls back
// is skipped. make bench-accel runs it in interleaved rounds.
func BenchmarkBackends(b *testing.B) {
	needLiteRT(b)
	backends := []struct {
		name string
		lrt  *tflite.LiteRTOptions
	}{
		{"classic", nil},
		{"litert-cpu", &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorCPU, Dir: litertDir}},
	}
	if _, err := os.Stat(litertDir + "/../openvino/libs"); err == nil {
		backends = append(backends, struct {
			name string
			lrt  *tflite.LiteRTOptions
		}{"litert-npu-openvino-cpu", &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorNPU, Dir: litertDir,
			Vendor: "intel_openvino", CacheDir: b.TempDir(), Options: map[string]string{"intel_openvino": "graph.0.graph_backend = 0\n"}}})
	}
	if os.Getenv("VK_ICD_FILENAMES") != "" {
		backends = append(backends, struct {
			name string
			lrt  *tflite.LiteRTOptions
		}{"litert-gpu", &tflite.LiteRTOptions{Accelerator: tflite.AcceleratorGPU, Dir: litertDir,
			Options: map[string]string{"gpu_options": "precision = 2\n"}}})
	}
	for _, name := range []string{"mobilenet_quant_v1_224", "ssd_detect", "deeplabv3_257_mv_gpu", "face_detection_short_range"} {
		for _, be := range backends {
			b.Run(name+"/"+be.name, func(b *testing.B) {
				m, err := tflite.LoadModel(models+name+".tflite", tflite.Options{Threads: 1, XNNPACK: true, LiteRT: be.lrt})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				if be.lrt != nil && m.Backend().Active != "litert/"+be.lrt.Accelerator {
					b.Skipf("%s", m.Backend())
				}
				it, err := m.NewInterpreter()
				if err != nil {
					b.Fatal(err)
				}
				defer it.Close()
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

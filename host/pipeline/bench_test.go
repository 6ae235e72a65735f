package pipeline_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/edgehost/edgehost/host/tflite"
)

// BenchmarkPipeline: end-to-end latency of peacock.png → pre → mobilenet → post, against
// native inference alone (Invoke on an interpreter with the same options) in the same run;
// the ratio is reported as x-native. Also reports bytes copied per request.
func BenchmarkPipeline(b *testing.B) {
	img, _ := os.ReadFile(models + "peacock.png")
	f := newFixture(b, "mobilenet_quant_v1_224.tflite")
	var native float64
	b.Run("native-invoke", func(b *testing.B) {
		m, err := tflite.LoadModel(models+"mobilenet_quant_v1_224.tflite", tflite.Options{Threads: 2, XNNPACK: true})
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
		for i := 0; i < b.N; i++ {
			if err := it.Invoke(); err != nil {
				b.Fatal(err)
			}
		}
		native = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	labels := map[string]any{"labels": labels(b, models+"mobilenet_labels.txt")}
	for _, c := range []struct {
		name, pre, post string
		oneCopy         bool
	}{
		{"c-pre+c-post/zero-copy", "imagepre-c", "classify-c", false},
		{"c-pre+c-post/one-copy", "imagepre-c", "classify-c", true},
		{"go-pre+go-post/zero-copy", "imagepre-go", "classify-go", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := f.pipeline(b, c.pre, c.post, labels, c.oneCopy, 1)
			copied := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := p.Run(context.Background(), bytes.NewReader(img), len(img), func([]byte, string) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				copied += st.CopiedBytes
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(ns/native, "x-native")
			b.ReportMetric(float64(copied)/float64(b.N), "copied-B/op")
		})
	}
}

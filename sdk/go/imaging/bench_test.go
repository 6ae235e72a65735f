package imaging

import (
	"os"
	"runtime"
	"testing"
)

func benchDecode(b *testing.B, data []byte, w, h int) {
	var d Decoder
	var r Resizer
	dst := make([]byte, w*h*3)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for i := 0; i < b.N; i++ {
		img, err := d.Decode(data, w, h)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Uint8(dst, w, h, 3, img); err != nil {
			b.Fatal(err)
		}
	}
	if c := threadCPU() - c0; c > 0 {
		b.ReportMetric(float64(c)/1e6/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkPre is decode + resize + store, as imagepre-go does it, natively.
func BenchmarkPre(b *testing.B) {
	b.Run("small-jpeg-full", func(b *testing.B) { benchDecode(b, readTestdata(b, "420.jpg"), 160, 120) })
	b.Run("ssd-jpeg-300", func(b *testing.B) { benchDecode(b, bundled(b, "ssd_example.jpg"), 300, 300) })
	b.Run("ssd-jpeg-full", func(b *testing.B) { benchDecode(b, bundled(b, "ssd_example.jpg"), 1920, 1280) })
	big := func(b *testing.B) []byte {
		if p := os.Getenv("FRAME_12MP"); p != "" { // a 4032×3024 JPEG, as `make bench-data` makes
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			return data
		}
		return bundled(b, "frame_12mp.jpg")
	}
	b.Run("12mp-jpeg-300", func(b *testing.B) { benchDecode(b, big(b), 300, 300) })
	b.Run("peacock-224", func(b *testing.B) { benchDecode(b, bundled(b, "peacock.png"), 224, 224) })
}

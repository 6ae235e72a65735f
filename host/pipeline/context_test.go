package pipeline_test

import (
	"bytes"
	"encoding/json"
	"image"
	_ "image/jpeg" // DecodeConfig of the test image
	"math"
	"os"
	"testing"
)

// boyBox is the boy on the left of ssd_example.jpg, labelled by hand in the image's own
// pixels (1920x1280) as [ymin, xmin, ymax, xmax]: from his raised fist to the bottom of his
// shirt, from his left elbow to his raised right arm.
var boyBox = [4]float64{0, 30, 1185, 830}

func iou(a, b [4]float64) float64 {
	ih := math.Min(a[2], b[2]) - math.Max(a[0], b[0])
	iw := math.Min(a[3], b[3]) - math.Max(a[1], b[1])
	if ih <= 0 || iw <= 0 {
		return 0
	}
	in := ih * iw
	return in / ((a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - in)
}

// TestSSDBoxesInPixels: the pre plugins hand the original image size to the post plugin in
// the request context (ABI.md §5.6), so every pre × post pair reports boxes in
// ssd_example.jpg's own pixels: the best person box matches the hand-labelled boy, every
// box lies inside the image, and the C and Go post plugins agree to a tenth of a pixel.
func TestSSDBoxesInPixels(t *testing.T) {
	f := newFixture(t, "ssd_detect.tflite")
	img, _ := os.ReadFile(models + "ssd_example.jpg")
	cfg, _, err := image.DecodeConfig(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]any{"labels": labels(t, models+"ssd_labelmap.txt"), "label_offset": 1, "threshold": 0.5}
	type result struct {
		Units      string
		Image      struct{ Width, Height int }
		Detections []struct {
			Label string
			Score float64
			Box   [4]float64
		}
	}
	for _, pre := range []string{"imagepre-c", "imagepre-go"} {
		var byPost []result
		for _, post := range []string{"ssd-c", "ssd-go"} {
			out, _ := run(t, f.pipeline(t, pre, post, params, false, 1), img)
			var r result
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%s+%s: %v: %s", pre, post, err, out)
			}
			if r.Units != "pixels" || r.Image.Width != cfg.Width || r.Image.Height != cfg.Height {
				t.Fatalf("%s+%s: units %q, image %dx%d; want pixels of a %dx%d image: %s", pre, post, r.Units,
					r.Image.Width, r.Image.Height, cfg.Width, cfg.Height, out)
			}
			best := -1.0
			for _, d := range r.Detections {
				b := d.Box
				if b[0] < 0 || b[1] < 0 || b[2] > float64(cfg.Height) || b[3] > float64(cfg.Width) || b[0] >= b[2] || b[1] >= b[3] {
					t.Errorf("%s+%s: %s box %v is not inside the %dx%d image", pre, post, d.Label, b, cfg.Width, cfg.Height)
				}
				if d.Label == "person" {
					best = math.Max(best, iou(b, boyBox))
				}
			}
			if best < 0.8 {
				t.Fatalf("%s+%s: no person box overlaps the boy %v (best IoU %.2f): %s", pre, post, boyBox, best, out)
			}
			t.Logf("%s+%s: boy IoU %.3f, %d detections", pre, post, best, len(r.Detections))
			byPost = append(byPost, r)
		}
		c, g := byPost[0].Detections, byPost[1].Detections
		if len(c) != len(g) {
			t.Fatalf("%s: ssd-c found %d detections, ssd-go %d", pre, len(c), len(g))
		}
		for i := range c {
			for k := range 4 {
				if math.Abs(c[i].Box[k]-g[i].Box[k]) > 0.11 {
					t.Fatalf("%s: detection %d: ssd-c box %v, ssd-go box %v", pre, i, c[i].Box, g[i].Box)
				}
			}
		}
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/draw"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
)

// rgb24 decodes an image file to packed RGB rows of stride bytes (≥ 3 × width; the padding
// is filled with 0xAA so that a plugin reading it shows).
func rgb24(t testing.TB, path string, pad int) ([]byte, *plugin.Frame) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, src, b.Min, draw.Src)
	w, h := b.Dx(), b.Dy()
	stride := 3*w + pad
	out := bytes.Repeat([]byte{0xAA}, stride*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o, i := y*stride+3*x, y*rgba.Stride+4*x
			copy(out[o:o+3], rgba.Pix[i:i+3])
		}
	}
	return out, &plugin.Frame{Width: uint32(w), Height: uint32(h), Stride: uint32(stride), Format: abi.PixelRGB24}
}

// TestRawFrame: a raw rgb24 frame (ABI 1.3, FlagFrame) reaches imagepre-c and imagepre-go,
// which skip the decode and classify it exactly as they classify the PNG it came from, with
// and without row padding.
func TestRawFrame(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	params := map[string]any{"labels": labels(t, models+"mobilenet_labels.txt"), "top_k": 3}
	for _, pre := range []string{"imagepre-c", "imagepre-go"} {
		t.Run(pre, func(t *testing.T) { rawFrame(t, f.pipeline(t, pre, "classify-c", params, false, 1)) })
	}
}

func rawFrame(t *testing.T, p *pipeline.Pipeline) {
	pngBytes, _ := os.ReadFile(models + "peacock.png")
	fromPNG, _ := run(t, p, pngBytes)
	for _, pad := range []int{0, 13} {
		pix, fr := rgb24(t, models+"peacock.png", pad)
		var out []byte
		_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(pix), Size: len(pix), Frame: fr},
			func(b []byte, _ string) error { out = append(out, b...); return nil })
		if err != nil {
			t.Fatalf("pad %d: %v", pad, err)
		}
		var a, b classification
		if json.Unmarshal(out, &a) != nil || json.Unmarshal(fromPNG, &b) != nil || len(a.Top) == 0 {
			t.Fatalf("pad %d: results %s / %s", pad, out, fromPNG)
		}
		// Same pixels, same resize: the same classes, in the same order, with the same scores.
		if string(out) != string(fromPNG) {
			t.Errorf("pad %d: raw frame gives %s, the PNG %s", pad, out, fromPNG)
		}
		if a.Top[0].Label != "peacock" {
			t.Errorf("pad %d: top-1 %q", pad, a.Top[0].Label)
		}
	}
}

// TestRawFrameRefused: a pre plugin whose manifest does not list the frame's format (every
// plugin built before ABI 1.3, here imagepre-c as 1.2.0, without "frames") is never handed
// the pixels: the request fails with a FrameError that says so. Frames whose geometry does
// not match their bytes are refused the same way, before any plugin code runs.
func TestRawFrameRefused(t *testing.T) {
	f := newFixture(t, "mobilenet_quant_v1_224.tflite")
	params := map[string]any{"labels": labels(t, models+"mobilenet_labels.txt"), "top_k": 3}
	pix, fr := rgb24(t, models+"peacock.png", 0)
	do := func(p *pipeline.Pipeline, body []byte, fr *plugin.Frame) error {
		_, err := p.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(body), Size: len(body), Frame: fr},
			func([]byte, string) error { return nil })
		return err
	}
	legacy, err := f.rt.Load(context.Background(), plugin.Config{Path: testplugins.WithoutFrames(t, "imagepre-c"), WantKind: abi.KindPre, Timeout: workBudget})
	if err != nil {
		t.Fatal(err)
	}
	old, err := pipeline.New(context.Background(), pipeline.Spec{Name: "legacy", Model: f.model, Workers: 1,
		Pre: legacy, Post: f.load(t, "classify-c", "post", params)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close(context.Background()) })
	err = do(old, pix, fr)
	var fe *plugin.FrameError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "does not take raw rgb24 frames") {
		t.Fatalf("imagepre-c 1.2 given a raw frame: %v, want a FrameError", err)
	}
	// The old plugin still serves encoded images afterwards.
	pngBytes, _ := os.ReadFile(models + "peacock.png")
	if out, _ := run(t, old, pngBytes); !strings.Contains(string(out), "peacock") {
		t.Fatalf("after the refused frame: %s", out)
	}
	p := f.pipeline(t, "imagepre-c", "classify-c", params, false, 1)
	for name, bad := range map[string]plugin.Frame{
		"short stride": {Width: fr.Width, Height: fr.Height, Stride: fr.Width*3 - 1, Format: abi.PixelRGB24},
		"too tall":     {Width: fr.Width, Height: fr.Height + 1, Stride: fr.Stride, Format: abi.PixelRGB24},
		"zero width":   {Width: 0, Height: fr.Height, Stride: fr.Stride, Format: abi.PixelRGB24},
		"format 99":    {Width: fr.Width, Height: fr.Height, Stride: fr.Stride, Format: 99},
		"gray":         {Width: fr.Width * 3, Height: fr.Height, Stride: fr.Stride, Format: abi.PixelGray8},
	} {
		if err := do(p, pix, &bad); !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FrameError", name, err)
		}
	}
}

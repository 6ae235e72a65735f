package imaging

import (
	"bytes"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// progressiveFixtures: imagepre-c's test JPEGs (plugins/examples/imagepre-c/test/testdata,
// made by its make.sh with libjpeg-turbo's cjpeg and jpegtran): each baseline NAME.jpg with
// its lossless progressive transcodes NAME-p.jpg (libjpeg's default script: DC with Al = 1,
// AC bands with successive approximation, EOB runs) and NAME-s.jpg (non-interleaved DC with
// two refinement bits, odd bands, restarts every 2 blocks in s420-s and every block in rst-s).
func progressiveFixtures(t *testing.T) map[string][2][]byte {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "../../../plugins/examples/imagepre-c/test/testdata")
	out := map[string][2][]byte{}
	for _, base := range []string{"s444", "s422", "s420", "s440", "gray", "rst", "big"} {
		b, err := os.ReadFile(filepath.Join(dir, base+".jpg"))
		if err != nil {
			t.Skipf("imagepre-c's fixtures: %v", err)
		}
		for _, suf := range []string{"-p", "-s"} {
			p, err := os.ReadFile(filepath.Join(dir, base+suf+".jpg"))
			if err == nil {
				out[base+suf] = [2][]byte{b, p}
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d progressive fixtures", len(out))
	}
	return out
}

// TestJPEGProgressiveMatchesBaseline: a progressive JPEG transcoded losslessly from a
// baseline one (the same quantised coefficients) decodes to exactly the baseline's pixels at
// every DCT scale, and at full size within IDCT rounding of image/jpeg's decode.
func TestJPEGProgressiveMatchesBaseline(t *testing.T) {
	var d Decoder
	for name, f := range progressiveFixtures(t) {
		base, prog := f[0], f[1]
		full, err := d.DecodeJPEG(base, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		W, H := full.W, full.H
		// image/jpeg refuses rst-s.jpg (a restart every block): "missing 0xff00 sequence".
		std, stdErr := jpeg.Decode(bytes.NewReader(prog))
		for _, div := range []int{1, 2, 4, 8} {
			minW, minH := (W+div-1)/div, (H+div-1)/div
			want, err := d.DecodeJPEG(base, minW, minH)
			if err != nil {
				t.Fatalf("%s baseline 1/%d: %v", name, div, err)
			}
			want = &RGB{W: want.W, H: want.H, Pix: bytes.Clone(want.Pix)}
			got, err := d.DecodeJPEG(prog, minW, minH)
			if err != nil {
				t.Fatalf("%s 1/%d: %v", name, div, err)
			}
			if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%s at 1/%d: %dx%d, differs from its baseline twin's %dx%d", name, div, got.W, got.H, want.W, want.H)
			}
			if div == 1 && stdErr == nil {
				ref := (&Decoder{}).FromImage(std)
				sum := 0
				for i := range ref.Pix {
					sum += max(int(got.Pix[i])-int(ref.Pix[i]), int(ref.Pix[i])-int(got.Pix[i]))
				}
				if m := float64(sum) / float64(len(ref.Pix)); m > 1.0 {
					t.Errorf("%s at full size: MAD %.3f from image/jpeg's, want <= 1", name, m)
				}
			}
		}
	}
}

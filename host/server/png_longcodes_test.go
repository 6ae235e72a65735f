package server_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestPNGLongCodes: a valid PNG whose deflate stream puts the longest length and distance
// codes, with the most extra bits, right after literals (sdk/go/imaging/testdata/longcodes.png,
// made by the imaging package's longCodePNG) is classified by both pipelines. The Go SDK's
// decoder used to run out of bits in its buffer there and answer 400 "too much image data".
func TestPNGLongCodes(t *testing.T) {
	url := shipped(t)
	img, err := os.ReadFile(filepath.Join(testplugins.Root, "sdk/go/imaging/testdata/longcodes.png"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"classify", "classify-go"} {
		if code, _, b := post(t, url+"/v1/pipelines/"+p, "image/png", img, nil); code != 200 {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}
}

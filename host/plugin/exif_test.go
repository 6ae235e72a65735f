package plugin_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// withOrientation inserts, after SOI, an APP1 EXIF segment whose IFD0 holds only the
// Orientation tag (0x0112) = o, in the byte order bo.
func withOrientation(jpg []byte, o uint16, bo binary.ByteOrder) []byte {
	var t bytes.Buffer
	if bo == binary.LittleEndian {
		t.WriteString("II*\x00")
	} else {
		t.WriteString("MM\x00*")
	}
	binary.Write(&t, bo, uint32(8))      // IFD0 right after the header
	binary.Write(&t, bo, uint16(1))      // one entry
	binary.Write(&t, bo, uint16(0x0112)) // Orientation
	binary.Write(&t, bo, uint16(3))      // SHORT
	binary.Write(&t, bo, uint32(1))      // count
	binary.Write(&t, bo, o)              // value, left-justified in the 4 bytes
	binary.Write(&t, bo, uint16(0))
	binary.Write(&t, bo, uint32(0)) // no next IFD
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	out := append([]byte{0xff, 0xd8, 0xff, 0xe1, byte((len(seg) + 2) >> 8), byte(len(seg) + 2)}, seg...)
	return append(out, jpg[2:]...)
}

// TestEXIFOrientation: both image pre plugins turn a JPEG as its EXIF orientation says it is
// shown (all 8 values, both TIFF byte orders), by default; with exif_orientation = false
// they leave it as stored. The image is 64×48 in four coloured quadrants; the tensor's
// quadrants must hold the colours the shown image has there, and the request context the
// shown size (48×64 for a quarter turn).
func TestEXIFOrientation(t *testing.T) {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	quad := [2][2]color.RGBA{{{255, 0, 0, 255}, {0, 255, 0, 255}}, {{0, 0, 255, 255}, {255, 255, 255, 255}}} // [qy][qx]
	im := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			im.Set(x, y, quad[y/24][x/32])
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, im, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	// stored returns the stored quadrant (sx, sy) shown at quadrant (x, y) under o: the
	// TIFF definition of each value, on a 2×2 image.
	stored := func(o, x, y int) (int, int) {
		switch o {
		case 2:
			return 1 - x, y
		case 3:
			return 1 - x, 1 - y
		case 4:
			return x, 1 - y
		case 5:
			return y, x
		case 6:
			return y, 1 - x
		case 7:
			return 1 - y, 1 - x
		case 8:
			return 1 - y, x
		}
		return x, y
	}
	for _, name := range []string{"imagepre-c", "imagepre-go"} {
		for _, apply := range []bool{true, false} {
			m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Example(t, name), WantKind: abi.KindPre,
				Params: map[string]any{"exif_orientation": apply}})
			if err != nil {
				t.Fatal(err)
			}
			inst, err := m.NewInstance(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := inst.Bind(ctx, []plugin.Tensor{{Name: "input", DType: abi.UInt8, Shape: []int{1, 32, 32, 3}, Bytes: 32 * 32 * 3}}); err != nil {
				t.Fatal(err)
			}
			for o := 1; o <= 8; o++ {
				for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
					body := withOrientation(b.Bytes(), uint16(o), bo)
					buf, err := inst.InputBuffer(ctx, uint32(len(body)))
					if err != nil {
						t.Fatal(err)
					}
					copy(buf, body)
					what := fmt.Sprintf("%s, exif_orientation %v, orientation %d (%v)", name, apply, o, bo)
					if err := inst.Pre(ctx, uint32(len(body))); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					tensor, _ := inst.TensorData(0)
					want := o
					if !apply {
						want = 1
					}
					for qy := 0; qy < 2; qy++ {
						for qx := 0; qx < 2; qx++ {
							px := tensor[((8+16*qy)*32+8+16*qx)*3:][:3]
							sx, sy := stored(want, qx, qy)
							c := quad[sy][sx]
							if d := absDiff(px[0], c.R) + absDiff(px[1], c.G) + absDiff(px[2], c.B); d > 60 {
								t.Errorf("%s: quadrant (%d,%d) is %v, want %v (stored quadrant %d,%d)", what, qx, qy, px, c, sx, sy)
							}
						}
					}
					var rc struct{ Width, Height int }
					if err := json.Unmarshal(inst.Context(), &rc); err != nil {
						t.Fatalf("%s: context %q: %v", what, inst.Context(), err)
					}
					ww, wh := 64, 48
					if want >= 5 {
						ww, wh = 48, 64
					}
					if rc.Width != ww || rc.Height != wh {
						t.Errorf("%s: context says %dx%d, want %dx%d", what, rc.Width, rc.Height, ww, wh)
					}
				}
			}
			inst.Close(ctx)
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

package plugin_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/plugin"
)

// TestMeasureAB (AB_A, AB_B: two builds of a pre plugin; AB_IMAGE: an image file; AB_TENSOR:
// u8:H:W or f32:H:W; ROUNDS): the pre call's thread CPU time of build A against build B, the two
// called alternately on one locked OS thread, both metered as served. It reports the median
// and minimum of each and their ratio B/A, and how far B's tensor is from A's: the way to judge a change to a plugin's code on a
// shared machine, where wall-clock figures swing with the neighbours' load.
func TestMeasureAB(t *testing.T) {
	a, b, imgPath := os.Getenv("AB_A"), os.Getenv("AB_B"), os.Getenv("AB_IMAGE")
	if a == "" || b == "" || imgPath == "" {
		t.Skip("AB_A, AB_B, AB_IMAGE")
	}
	spec := strings.Split(os.Getenv("AB_TENSOR"), ":")
	if len(spec) != 3 {
		spec = []string{"u8", "300", "300"}
	}
	hgt, _ := strconv.Atoi(spec[1])
	wid, _ := strconv.Atoi(spec[2])
	dt, esz := abi.UInt8, 1
	if spec[0] == "f32" {
		dt, esz = abi.Float32, 4
	}
	tensor := []plugin.Tensor{{Name: "in", DType: dt, Shape: []int{1, hgt, wid, 3}, Bytes: hgt * wid * 3 * esz}}
	rounds := 30
	if n, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil {
		rounds = n
	}
	img, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	var params map[string]any // AB_PARAMS: the plugins' params as JSON (people-c: {"pose_labels":[],"classify_labels":[],"decode_min":640})
	if p := os.Getenv("AB_PARAMS"); p != "" {
		if err := json.Unmarshal([]byte(p), &params); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) }) // after the modules and instances (cleanups run last first)
	var insts [2]*plugin.Instance
	for k, path := range []string{a, b} {
		insts[k] = boundInstance(t, ctx, rt, plugin.Config{Path: path, Params: params, MemoryLimit: 256 << 20, Timeout: time.Minute}, tensor, img)
	}
	var times [2][]time.Duration
	runtime.LockOSThread()
	for r := 0; r < rounds+2; r++ {
		for k, inst := range insts {
			start := threadCPU()
			if err := inst.Pre(ctx, uint32(len(img))); err != nil {
				t.Fatal(err)
			}
			if r >= 2 { // the first calls build the tables a camera's frames share
				times[k] = append(times[k], threadCPU()-start)
			}
		}
	}
	runtime.UnlockOSThread()
	ta, _ := insts[0].TensorData(0)
	tb, _ := insts[1].TensorData(0)
	differ, maxd := 0, 0.0
	for i := 0; i < len(ta); i += esz {
		var va, vb float64
		if esz == 4 {
			va = float64(math.Float32frombits(binary.LittleEndian.Uint32(ta[i:])))
			vb = float64(math.Float32frombits(binary.LittleEndian.Uint32(tb[i:])))
		} else {
			va, vb = float64(ta[i]), float64(tb[i])
		}
		if va != vb {
			differ++
			maxd = max(maxd, math.Abs(va-vb))
		}
	}
	t.Logf("outputs: %d of %d values differ, by at most %g", differ, len(ta)/esz, maxd)
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	ma, mb := med(times[0]), med(times[1])
	t.Logf("%s → %s %dx%d, %d alternating calls: A %v (min %v), B %v (min %v): B/A median %.3f, min %.3f",
		imgPath, spec[0], hgt, wid, rounds, ma, times[0][0], mb, times[1][0],
		float64(mb)/float64(ma), float64(times[1][0])/float64(times[0][0]))
}

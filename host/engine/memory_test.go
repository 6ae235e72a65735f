package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestSwapMemoryBounded: plugin and model swaps under load from 8 clients, with the
// process's default environment (glibc arenas as the process sets them), keep RSS after
// the warm-up within ±20%: every sample of the second half of the run within 20% of the
// first half's mean (a leak keeps climbing; RSS alone fluctuates by ~10% with the load).
// The default run does 100 plugin and 25 model swaps;
// EDGEHOST_SWAP_FULL=1 runs the acceptance counts, 1,000 and 300 (a few minutes);
// EDGEHOST_SWAP_PLUGINS and EDGEHOST_SWAP_MODELS override either. Skipped with -short.
func TestSwapMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short")
	}
	plugins, models := 100, 25
	if os.Getenv("EDGEHOST_SWAP_FULL") != "" {
		plugins, models = 1000, 300
	}
	if n, err := strconv.Atoi(os.Getenv("EDGEHOST_SWAP_PLUGINS")); err == nil {
		plugins = n
	}
	if n, err := strconv.Atoi(os.Getenv("EDGEHOST_SWAP_MODELS")); err == nil {
		models = n
	}
	dir := t.TempDir()
	modelBytes := [][]byte{mustRead(t, testplugins.Model("mobilenet_quant_v1_224.tflite")), mustRead(t, testplugins.Model("ssd_detect.tflite"))}
	model := filepath.Join(dir, "model.tflite")
	writeFile(t, model, modelBytes[0])
	post := filepath.Join(dir, "post.wasm")
	versions := [][]byte{echo(t, dir, 1), echo(t, dir, 2)}
	writeFile(t, post, versions[0])
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, []byte(pipelineConfig(t, dir, model, "", post, "", "p")))
	r := newRigWatched(t, cfgPath, false) // swaps by ReloadFile: no watcher racing the writes
	l := startLoad(8, func() error {
		out, err := r.run("p")
		if err == nil {
			_, err = versionOf(out)
		}
		return err
	})
	ctx := context.Background()
	total := plugins + models
	warm := total / 5 // RSS settles over the first swaps (Go heap, arenas, wazero caches)
	every := max(1, total/50)
	var samples []int64
	var early int64 // RSS after 10 swaps: the working set before arenas could spread
	var marks []string
	p, m := 0, 0
	start := time.Now()
	for i := 1; i <= total; i++ {
		// Interleave the model swaps evenly among the plugin swaps.
		if m < models && (p >= plugins || m*plugins <= p*models) {
			m++
			writeFile(t, model, modelBytes[m%2])
			r.e.ReloadFile(ctx, model)
		} else {
			p++
			writeFile(t, post, versions[p%2])
			r.e.ReloadFile(ctx, post)
		}
		if i == 10 {
			time.Sleep(100 * time.Millisecond)
			runtime.GC()
			early = rssKiB()
		}
		if i >= warm && i%every == 0 {
			time.Sleep(100 * time.Millisecond) // replaced versions drain and close
			runtime.GC()
			rss := rssKiB()
			samples = append(samples, rss)
			marks = append(marks, fmt.Sprintf("%d:%d", i, rss/1024))
		}
	}
	l.halt()
	half := len(samples) / 2
	var base float64
	for _, s := range samples[:half] {
		base += float64(s) / float64(half)
	}
	lo, hi := slices.Min(samples[half:]), slices.Max(samples[half:])
	st := r.e.Status()
	t.Logf("%d plugin + %d model swaps in %v (%d reloads, %d rejected); RSS %d MiB after 10 swaps, mean %.0f MiB over swaps %d..%d, then %d..%d MiB (%+.1f%% / %+.1f%%); MiB by swap: %s",
		plugins, models, time.Since(start).Round(time.Second), st.Reloads, st.Failures, early/1024, base/1024, warm, total/2+warm/2, lo/1024, hi/1024,
		100*(float64(lo)-base)/base, 100*(float64(hi)-base)/base, strings.Join(marks, " "))
	l.end(t) // after the figures: a failed request fails the test
	// ±20%: with every core kept busy the band reached +15.9% without a leak.
	if float64(hi) > 1.20*base || float64(lo) < 0.80*base {
		t.Errorf("RSS left ±20%% of %.0f MiB in the second half of the run: %d..%d MiB", base/1024, lo/1024, hi/1024)
	}
	// With glibc's default arenas (MALLOC_ARENA_MAX=16 on 2 cores) the default run went from
	// 195 to 438 MiB and its second half to +24% of the first: both checks fail. With the 2
	// arenas the process sets: 168 MiB, then 195..219 MiB (-3% / +9%).
	if last := samples[len(samples)-1]; last > 2*early {
		t.Errorf("RSS grew from %d MiB after 10 swaps to %d MiB", early/1024, last/1024)
	}
	if st.Reloads < int64(total)*9/10 {
		t.Errorf("only %d of %d swaps applied", st.Reloads, total)
	}
}

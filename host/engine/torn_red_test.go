package engine_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestTornParamsSecondWriter: a labels file rewritten in place by a writer that pauses 2 s
// mid-file, as in TestTornParamsFile, while another process opens the file for writing and
// closes it (`touch`, which opens O_WRONLY|O_CREAT). IN_CLOSE_WRITE comes at every close of
// a file opened for writing, not at the last writer's: the watcher took touch's close for the
// end of the write and applied the half-written labels. Only the complete file may apply.
func TestTornParamsSecondWriter(t *testing.T) {
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Skip("no touch")
	}
	setVar(t, &engine.Settle, 100*time.Millisecond)
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.txt")
	text := func(prefix string) []byte {
		var b strings.Builder
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&b, "%s-%03d\n", prefix, i)
		}
		return []byte(b.String())
	}
	a, b := text("alpha"), text("beta-longer")
	writeFile(t, labels, a)
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, []byte(pipelineConfig(t, dir, testplugins.Model("mobilenet_quant_v1_224.tflite"), "",
		filepath.Join(dir, "post.wasm"), fmt.Sprintf("params_files = { labels = %q }", labels), "p")))
	writeFile(t, filepath.Join(dir, "post.wasm"), echo(t, dir, 1))
	r := newRig(t, cfgPath)
	paramsRe := regexp.MustCompile(`"params":(\d+)`)
	var mu sync.Mutex
	seen := map[string]int{}
	l := startLoad(4, func() error {
		out, err := r.run("p")
		if err != nil {
			return err
		}
		m := paramsRe.FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("bad response %q", out)
		}
		mu.Lock()
		seen[m[1]]++
		mu.Unlock()
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	before := r.e.Status().Reloads
	f, err := os.OpenFile(labels, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.Index(b, []byte("beta-longer-040\n"))
	f.Write(b[:cut])
	time.Sleep(300 * time.Millisecond)
	if out, err := exec.Command(touch, labels).CombinedOutput(); err != nil {
		t.Fatalf("touch: %v %s", err, out)
	}
	time.Sleep(2 * time.Second)
	f.Write(b[cut:])
	f.Close()
	time.Sleep(engine.Settle * 6)
	l.end(t)
	reloads := r.e.Status().Reloads
	mu.Lock()
	defer mu.Unlock()
	t.Logf("responses by params size: %v; reloads %d", seen, reloads-before)
	if reloads != before+1 || len(seen) != 2 {
		t.Errorf("the slow rewrite applied %d versions, want 1 (the complete file); answers came from %d versions of the labels (a half-written one served)",
			reloads-before, len(seen))
	}
}

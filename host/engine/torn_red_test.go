package engine_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// TestTornParamsMmapWriter: a labels file rewritten through a shared writable mapping
// (new labels of the same size, stored into the mapping with a 2 s pause mid-file). Stores
// into a mapping raise no IN_MODIFY, and the close-write comes only at munmap: inotify never
// saw a writer, the rescan saw new content (the first store's modification time), and the
// half-stored labels applied; the later stores changed no modification time, so the torn
// labels stayed. The new labels carry a '"' per line, which the params JSON escapes: the
// params size tells old, torn (+40) and complete (+100) apart.
func TestTornParamsMmapWriter(t *testing.T) {
	setVar(t, &engine.Settle, 100*time.Millisecond)
	setVar(t, &engine.Rescan, 300*time.Millisecond)
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.txt")
	text := func(prefix string) []byte {
		var b strings.Builder
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&b, "%s-%03d\n", prefix, i)
		}
		return []byte(b.String())
	}
	a, b := text("alpha"), text(`gam"a`) // the same size: no truncate, no write(2) at all
	writeFile(t, labels, a)
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, []byte(pipelineConfig(t, dir, testplugins.Model("mobilenet_quant_v1_224.tflite"), "",
		filepath.Join(dir, "post.wasm"), fmt.Sprintf("params_files = { labels = %q }", labels), "p")))
	writeFile(t, filepath.Join(dir, "post.wasm"), echo(t, dir, 1))
	r := newRig(t, cfgPath)
	paramsRe := regexp.MustCompile(`"params":(\d+)`)
	size := func() int {
		out, err := r.run("p")
		if err != nil {
			t.Fatal(err)
		}
		m := paramsRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("bad response %q", out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	old := size()
	var mu sync.Mutex
	seen := map[int]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := size()
			mu.Lock()
			seen[n]++
			mu.Unlock()
		}
	}()
	f, err := os.OpenFile(labels, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, len(b), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the mapping keeps the file open for writing
	cut := bytes.Index(b, []byte(`gam"a-040`))
	copy(m, b[:cut])
	time.Sleep(2 * time.Second)
	copy(m[cut:], b[cut:])
	syscall.Munmap(m)
	time.Sleep(engine.Rescan*3 + engine.Settle*6)
	close(stop)
	<-done
	end := size()
	t.Logf("params size: old %d, at the end %d; seen while writing: %v", old, end, seen)
	if seen[old+40] > 0 {
		t.Errorf("the half-stored labels served %d times", seen[old+40])
	}
	if end != old+100 {
		t.Errorf("at the end the labels of params size %d serve, want the complete file's %d (old %d, torn %d)", end, old+100, old, old+40)
	}
}

// TestTornModelMmapWriter: a model rewritten in place through a shared writable mapping,
// the same size (retrained weights, the same graph), two weight regions stored with a 2 s
// pause between them. Half new weights is a valid model: no loader rejects it. No write(2),
// no IN_MODIFY; the rescan saw the first store and the model loaded with half its new
// weights. Only the complete model may load.
func TestTornModelMmapWriter(t *testing.T) {
	setVar(t, &engine.Settle, 100*time.Millisecond)
	setVar(t, &engine.Rescan, 300*time.Millisecond)
	dir := t.TempDir()
	orig := mustRead(t, testplugins.Model("mobilenet_quant_v1_224.tflite"))
	model := filepath.Join(dir, "model.tflite")
	writeFile(t, model, orig)
	// New weights in two regions of the weight buffers (30% and 70% into the file).
	next := append([]byte(nil), orig...)
	regionA, regionB := len(orig)*3/10, len(orig)*7/10
	for i := 0; i < 4096; i++ {
		next[regionA+i] ^= 1
		next[regionB+i] ^= 1
	}
	torn := append([]byte(nil), orig...)
	copy(torn[regionA:regionA+4096], next[regionA:regionA+4096])
	hashOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, filepath.Join(dir, "post.wasm"), echo(t, dir, 1))
	writeFile(t, cfgPath, []byte(pipelineConfig(t, dir, model, "", filepath.Join(dir, "post.wasm"), "", "p")))
	r := newRig(t, cfgPath)
	modelHash := func() string { return r.e.Status().Models["m"].Hash }
	if h := modelHash(); h == "" || !strings.HasPrefix(hashOf(orig), h) && h != hashOf(orig) {
		t.Fatalf("model hash in /status %q, file %s", h, hashOf(orig))
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			mu.Lock()
			seen[modelHash()] = true
			mu.Unlock()
		}
	}()
	f, err := os.OpenFile(model, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, len(orig), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	copy(m[regionA:regionA+4096], next[regionA:regionA+4096])
	time.Sleep(2 * time.Second)
	copy(m[regionB:regionB+4096], next[regionB:regionB+4096])
	syscall.Munmap(m)
	waitFor(t, "the new model loaded", 15*time.Second, func() bool { h := modelHash(); return h != "" && strings.HasPrefix(hashOf(next), h) })
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	for h := range seen {
		if h != "" && strings.HasPrefix(hashOf(torn), h) {
			t.Errorf("the model with half its new weights loaded (hash %s)", h)
		}
	}
}

package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/engine"
)

// TestWatchHostileParams: with the watcher on, a config naming a FIFO or /dev/zero as a
// params file is refused, and the watcher keeps working: the next good config applies.
// (The watcher hashed every file the config names: it blocked forever opening a FIFO and
// read /dev/zero without end, so no later change was ever applied.)
func TestWatchHostileParams(t *testing.T) {
	setVar(t, &engine.Settle, 60*time.Millisecond)
	f := newFixture(t, "")
	w, err := f.e.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	orig, _ := os.ReadFile(f.cfgPath)
	fifo := filepath.Join(f.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	workers := 2
	for _, file := range []string{fifo, "/dev/zero"} {
		writeFile(t, f.cfgPath, []byte(string(orig)+"params_files = { labels = \""+file+"\" }\n"))
		waitFor(t, "the config naming "+file+" refused", time.Minute, func() bool { return strings.Contains(f.e.Status().Config.LastError, file) })
		workers = 3 - workers
		good := strings.Replace(string(orig), "workers = 2", "workers = "+string(rune('0'+workers)), 1)
		writeFile(t, f.cfgPath, []byte(good))
		waitFor(t, "the next good config applied", time.Minute, func() bool {
			p, _ := f.e.Pipeline("p")
			_, total := p.Pipeline.Usage()
			return f.e.Status().Config.LastError == "" && total == workers
		})
	}
}

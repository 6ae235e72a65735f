package engine

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Settle is how long a watched file must stay unchanged before it is reloaded: editors and
// deploy tools write in bursts (truncate+write, temp file+rename, delete+create).
var Settle = 250 * time.Millisecond

func timeNow() time.Time { return time.Now() }
func sleep()             { time.Sleep(100 * time.Millisecond) }

// Watcher reloads files the engine uses when they change on disk.
type Watcher struct {
	e      *Engine
	fw     *fsnotify.Watcher
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	timers map[string]*time.Timer
	dirs   map[string]bool
}

// Watch starts watching the config file, the models, the plugins and the params and
// golden files of the engine. Changes are applied after Settle, one at a time.
func (e *Engine) Watch(ctx context.Context) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{e: e, fw: fw, cancel: cancel, done: make(chan struct{}), timers: map[string]*time.Timer{}, dirs: map[string]bool{}}
	w.refresh()
	go w.loop(ctx)
	return w, nil
}

// files returns every file the engine currently depends on.
func (e *Engine) files() map[string]bool {
	cfg := e.Config()
	out := map[string]bool{cfg.File: true}
	for _, m := range cfg.Models {
		out[m.Path] = true
	}
	for _, p := range cfg.Pipelines {
		for _, f := range p.Files() {
			out[f] = true
		}
	}
	return out
}

// refresh watches the directories of every file in use (watching directories, not files,
// survives rename and delete+create).
func (w *Watcher) refresh() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for f := range w.e.files() {
		d := filepath.Dir(f)
		if !w.dirs[d] {
			if err := w.fw.Add(d); err != nil {
				w.e.log.Warn("cannot watch directory", "dir", d, "error", err)
				continue
			}
			w.dirs[d] = true
		}
	}
}

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	changed := make(chan string, 64)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			path := filepath.Clean(ev.Name)
			if !w.e.files()[path] {
				continue
			}
			w.mu.Lock()
			if t, ok := w.timers[path]; ok {
				t.Reset(Settle)
			} else {
				w.timers[path] = time.AfterFunc(Settle, func() {
					w.mu.Lock()
					delete(w.timers, path)
					w.mu.Unlock()
					select {
					case changed <- path:
					case <-ctx.Done():
					}
				})
			}
			w.mu.Unlock()
		case path := <-changed:
			if st, err := os.Stat(path); err != nil || st.Size() == 0 {
				// Deleted, or truncated and not yet rewritten: the next event brings it back.
				w.e.log.Debug("watched file missing or empty; waiting", "path", path)
				continue
			}
			w.e.ReloadFile(ctx, path)
			w.refresh()
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			w.e.log.Warn("file watcher error", "error", err)
		}
	}
}

// Close stops watching.
func (w *Watcher) Close() error {
	w.cancel()
	err := w.fw.Close()
	<-w.done
	w.mu.Lock()
	for _, t := range w.timers {
		t.Stop()
	}
	w.mu.Unlock()
	return err
}

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Settle is how long a watched file must stay unchanged before it is reloaded: editors and
// deploy tools write in bursts (truncate+write, temp file+rename, delete+create).
var Settle = 250 * time.Millisecond

// DropHold is how long a new config.toml that removes a serving pipeline or model must stay
// unchanged before it applies: a config written slowly, whose later tables have not arrived
// yet, must not take pipelines down in between. A deliberate removal takes this long.
var DropHold = 2 * time.Second

// Rescan is the period of the safety-net scan: every watched path is resolved again, its
// directories re-armed, and its content hash compared with the version applied, whether or
// not an event came. 0 disables it.
var Rescan = 5 * time.Second

// WriterHold bounds how long a file that some process still has open for writing (Linux:
// modified, and no IN_CLOSE_WRITE since; or a read lease refused) is held back: a writer stalled mid-file is waited
// for, however long the settle period is, but a file kept open for writing for ever is
// applied after this long by the settle rule alone.
var WriterHold = 30 * time.Second

func timeNow() time.Time { return time.Now() }
func sleep()             { time.Sleep(100 * time.Millisecond) }

// Watcher reloads files the engine uses when their content changes on disk. It follows
// what the config names, not inodes: symlinks are resolved at every check and every
// directory of the link chain is watched (a Kubernetes ConfigMap's "..data" swap is seen),
// replaced or recreated directories are re-armed, and a file that does not exist yet is
// picked up when it appears.
type Watcher struct {
	e      *Engine
	fw     *fsnotify.Watcher
	wr     *writers // which files are open for writing (inotify; nil elsewhere)
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	timers map[string]*pending

	// Owned by the loop goroutine.
	files       map[string]*watched // path as the config names it → state
	interesting map[string][]string // path an event may name → watched files it affects
	dirs        map[string]bool     // directories added to fw
}

// pending is a scheduled check of one file.
type pending struct {
	t   *time.Timer
	due time.Time
}

// watched is what the watcher knows about one file the config names.
type watched struct {
	applied string // content hash of the version last seen applied ("" when missing)
	text    bool   // config.toml, params and golden files: valid when torn, so held longer
	final   string // what the path resolved to at the last refresh
	sig     string // resolved path, inode, size and times at the last observation
	hash    string // content hash at the last observation
	wrote   bool   // a write (in place, or into a recreated directory) was seen since the last apply
	cand    string // the new content hash waiting to be stable
	// writerAt: when a writer inotify had seen close was found still holding the file open
	writerAt time.Time
	candAt   time.Time
}

// Watch starts watching the config file, the models, the plugins and the params and
// golden files of the engine. Changes are applied one at a time (see README, "Hot reload",
// for the rules).
func (e *Engine) Watch(ctx context.Context) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{e: e, fw: fw, wr: newWriters(), cancel: cancel, done: make(chan struct{}), timers: map[string]*pending{},
		files: map[string]*watched{}, dirs: map[string]bool{}}
	w.refresh()
	go w.loop(ctx)
	return w, nil
}

// files returns every file the engine currently depends on, and whether it is a text file
// (anything but a model or a plugin module).
func (e *Engine) files() map[string]bool {
	cfg := e.Config()
	out := map[string]bool{cfg.File: true}
	for _, p := range cfg.Pipelines {
		for _, f := range p.Files() {
			out[f] = true
		}
	}
	for _, p := range cfg.Pipelines {
		out[p.Pre.Path] = false
		out[p.Post.Path] = false
	}
	for _, m := range cfg.Models {
		out[m.Path] = false
	}
	return out
}

// chain resolves p one component at a time. It returns every path whose replacement can
// change what p names (p, each symlink met at any depth, the resolved file or the first
// missing component) and the resolved path.
func chain(p string) (paths []string, final string) {
	if a, err := filepath.Abs(p); err == nil {
		p = a // config paths are absolute already
	}
	paths = []string{p}
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			paths = append(paths, next)
			return paths, filepath.Join(append([]string{next}, rest...)...)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		paths = append(paths, next)
		target, err := os.Readlink(next)
		if hops++; err != nil || hops > 40 {
			return paths, next
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(cur, target)
		}
		rest = append(strings.Split(strings.TrimPrefix(filepath.Clean(target), "/"), "/"), rest...)
		cur = "/"
	}
	paths = append(paths, cur)
	return paths, cur
}

// refresh resolves every watched path again and watches the directories of its link chain
// and their parents (so a directory removed, recreated or renamed over is seen and
// re-armed). New paths get their current content as the applied version.
func (w *Watcher) refresh() {
	files := w.e.files()
	for f := range w.files {
		if _, ok := files[f]; !ok {
			delete(w.files, f)
		}
	}
	interesting := map[string][]string{}
	want := map[string]bool{}
	for f, text := range files {
		st := w.files[f]
		if st == nil {
			st = &watched{}
			st.sig, st.hash = observe(f, "", "")
			st.applied = st.hash
			w.files[f] = st
		}
		st.text = text
		paths, final := chain(f)
		st.final = final
		for _, p := range paths {
			interesting[p] = append(interesting[p], f)
			d := filepath.Dir(p)
			interesting[d] = append(interesting[d], f) // the directory itself replaced
			want[d] = true
			want[filepath.Dir(d)] = true
		}
	}
	w.interesting = interesting
	for d := range want {
		if alias, ok := sameDirectory(d, want); ok {
			// One name per directory: fsnotify 1.10 gives two names of one directory (a
			// symlink and its target) one watch, and after one of them was removed the other
			// still named a watch it had dropped: a nil dereference inside fsnotify at the
			// next Remove (seen once in host/engine's tests). Events come under the name
			// kept, which interesting holds too.
			w.e.log.Debug("directory watched under another name", "dir", d, "as", alias)
			delete(want, d)
		}
	}
	for d := range want {
		// Add again even when known: a recreated directory is a new inode.
		if err := w.fw.Add(d); err != nil {
			if w.dirs[d] {
				w.e.log.Debug("cannot watch directory", "dir", d, "error", err)
			}
			delete(w.dirs, d)
			continue
		}
		w.dirs[d] = true
		w.wr.watch(d)
	}
	for d := range w.dirs {
		if !want[d] {
			_ = w.fw.Remove(d)
			w.wr.unwatch(d)
			delete(w.dirs, d)
		}
	}
}

// sameDirectory reports whether d is a second name (through symlinks) of a directory in
// want that is kept instead: the name the directory has once symlinks are resolved, or the
// first in order. Names that cannot be resolved are kept.
func sameDirectory(d string, want map[string]bool) (string, bool) {
	fi, err := os.Stat(d)
	if err != nil {
		return "", false
	}
	real, err := filepath.EvalSymlinks(d)
	if err != nil {
		return "", false
	}
	if real != d && want[real] {
		if ri, err := os.Stat(real); err == nil && os.SameFile(fi, ri) {
			return real, true
		}
	}
	if real == d {
		return "", false // a resolved name is always kept
	}
	for o := range want {
		if o == d || o >= d {
			continue // of two unresolved names, the first in order is kept
		}
		if oreal, err := filepath.EvalSymlinks(o); err == nil && oreal != o && !want[oreal] {
			if oi, err := os.Stat(o); err == nil && os.SameFile(fi, oi) {
				return o, true
			}
		}
	}
	return "", false
}

// observe stats what path resolves to and hashes its content when the stat changed from
// sig. A missing or unreadable file has hash "".
func observe(path, sig, hash string) (string, string) {
	final, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", ""
	}
	fi, err := os.Stat(final)
	if err != nil || !fi.Mode().IsRegular() { // never open a FIFO or a device: it blocks or never ends
		return "", ""
	}
	s := final
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += "|" + itoa(int64(st.Dev)) + "|" + itoa(int64(st.Ino)) + "|" + itoa(st.Ctim.Nano())
	}
	s += "|" + itoa(fi.Size()) + "|" + itoa(fi.ModTime().UnixNano())
	if s == sig && hash != "" {
		return sig, hash
	}
	f, err := os.Open(final)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", ""
	}
	return s, hex.EncodeToString(h.Sum(nil))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	changed := make(chan string, 64)
	var tick <-chan time.Time
	if Rescan > 0 {
		t := time.NewTicker(Rescan)
		defer t.Stop()
		tick = t.C
	}
	// later schedules a check of path in d; with extendOnly, never sooner than one already
	// scheduled.
	later := func(path string, d time.Duration, extendOnly bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		due := time.Now().Add(d)
		if p, ok := w.timers[path]; ok {
			if !extendOnly || due.After(p.due) {
				p.due = due
				p.t.Reset(d)
			}
			return
		}
		p := &pending{due: due}
		w.timers[path] = p
		p.t = time.AfterFunc(d, func() {
			w.mu.Lock()
			delete(w.timers, path)
			w.mu.Unlock()
			select {
			case changed <- path:
			case <-ctx.Done():
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			name := filepath.Clean(ev.Name)
			for _, f := range w.interesting[name] {
				st := w.files[f]
				if st == nil {
					continue
				}
				// Content may still be arriving after a write, or after a create of the file or
				// of a directory on its path: wait Settle. A symlink swapped, something removed
				// or renamed away is complete as it is: look soon (a ConfigMap's ..data swap).
				if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create) && (name == f || name == st.final || w.dirs[name]) || name == filepath.Dir(f) {
					st.wrote = true
					later(f, Settle, false)
				} else {
					later(f, Settle/5, true)
				}
			}
		case path := <-changed:
			if cfg := w.e.Config().File; path != cfg {
				// A ConfigMap update changes config.toml and plugins at once: the config goes
				// first, so the plugin is not loaded twice.
				w.check(ctx, cfg, later)
			}
			w.check(ctx, path, later)
			w.refresh() // a new config names new files; a recreated directory needs its watch again
		case <-tick:
			w.refresh()
			for f, st := range w.files {
				w.mu.Lock()
				_, pending := w.timers[f]
				w.mu.Unlock()
				if pending {
					continue // an event's check is coming
				}
				st.wrote = true // no event says how it changed: hold text files as if written in place
				w.check(ctx, f, later)
			}
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			w.e.log.Warn("file watcher error", "error", err)
		}
	}
}

// check looks at one watched file and applies its new content once it has been stable for
// long enough: Settle after the last event for plugins and models (their loaders reject a
// torn file), one more Settle for a text file written in place, DropHold for a config that
// removes a serving pipeline or model. Identical content never reloads anything.
func (w *Watcher) check(ctx context.Context, path string, later func(string, time.Duration, bool)) {
	st := w.files[path]
	if st == nil {
		return
	}
	st.sig, st.hash = observe(path, st.sig, st.hash)
	if st.hash == "" {
		// Missing, or a link into a directory not there yet: the event that brings it back
		// (or the rescan) looks again.
		w.e.log.Debug("watched file missing; waiting", "path", path)
		st.cand = ""
		return
	}
	if st.hash == st.applied {
		st.cand, st.wrote = "", false
		return
	}
	since, open := w.wr.writing(st.final)
	if !open && openForWriting(st.final) {
		// The last close-write was another writer's (a touch while this one stalls), or the
		// writer stores through a mapping (no IN_MODIFY at all): the kernel says a writer
		// still has it open. Models too: one rewritten in place, the same size, with half
		// its new weights is a valid model no loader rejects.
		if st.writerAt.IsZero() {
			st.writerAt = timeNow()
		}
		since, open = st.writerAt, true
	} else if !open {
		st.writerAt = time.Time{}
	}
	if open && timeNow().Sub(since) < WriterHold {
		// A writer still has it open (no close-write yet): whatever the settle period, the
		// content is not complete. Look again after the writer closes it.
		st.cand, st.wrote = "", true
		later(path, Settle, false)
		return
	}
	need := time.Duration(0)
	if st.text && st.wrote {
		need = Settle
	}
	if path == w.e.Config().File && w.e.configDrops(path) {
		need = max(need, DropHold)
	}
	now := timeNow()
	if st.cand != st.hash {
		st.cand, st.candAt = st.hash, now
	}
	if wait := need - now.Sub(st.candAt); wait > 0 {
		later(path, wait, false)
		return
	}
	sig := st.sig
	w.e.ReloadFile(ctx, path)
	if st.sig, st.hash = observe(path, st.sig, st.hash); st.sig != sig {
		// Written again while it loaded: which bytes the loader read is unknown. Forget
		// what is applied, so the next check reloads whatever is there (the engine's own
		// hash check skips a plugin or model it already serves).
		st.applied, st.cand, st.wrote = "", "", true
		later(path, Settle, false)
		return
	}
	st.applied, st.cand, st.wrote = st.hash, "", false

}

// Close stops watching.
func (w *Watcher) Close() error {
	w.cancel()
	err := w.fw.Close()
	<-w.done
	w.wr.close()
	w.mu.Lock()
	for _, p := range w.timers {
		p.t.Stop()
	}
	w.mu.Unlock()
	return err
}

package engine

import (
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writers follows, from the kernel's inotify events, which files some process has open for
// writing: IN_MODIFY marks a file as being written, IN_CLOSE_WRITE (a writer closed it: any
// writer, not only the last, so the watcher also asks openForWriting before a file
// applies) or a rename onto the name (a new, complete file) as done. A writer that stalls
// mid-file for longer than any settle period is still seen as writing, however busy the
// machine. fsnotify 1.10 keeps its close-write op unexported, so this is a second inotify
// instance on the same directories. It is safe for concurrent use; a nil *writers knows nothing.
type writers struct {
	f *os.File

	mu sync.Mutex
	// wds maps a watch descriptor to every directory name it was added under: a symlinked
	// directory and its target are one inode, and inotify gives both names the same
	// descriptor. An event is recorded under each name, so which name was added last never
	// decides where a close-write lands.
	wds   map[int][]string
	dirs  map[string]int // directory → watch descriptor
	since map[string]time.Time
	done  chan struct{}
}

func newWriters() *writers {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	w := &writers{f: os.NewFile(uintptr(fd), "inotify"), wds: map[int][]string{}, dirs: map[string]int{},
		since: map[string]time.Time{}, done: make(chan struct{})}
	go w.loop()
	return w
}

// watch adds dir (one of the watcher's directories); an error is ignored (the settle rule
// still holds for files in it).
func (w *writers) watch(dir string) {
	if w == nil {
		return
	}
	fd := int(w.f.Fd())
	wd, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_DELETE)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.dirs[dir]; ok && old != wd && w.dropName(old, dir) {
		// The name now leads to another directory (recreated, renamed over, swapped) and
		// nothing else leads to the old one.
		_, _ = unix.InotifyRmWatch(fd, uint32(old))
	}
	w.dirs[dir] = wd
	for _, d := range w.wds[wd] {
		if d == dir {
			return
		}
	}
	w.wds[wd] = append(w.wds[wd], dir)
}

// dropName removes dir from wd's names and reports whether wd has none left.
func (w *writers) dropName(wd int, dir string) bool {
	names := w.wds[wd]
	for i, d := range names {
		if d == dir {
			names = append(names[:i:i], names[i+1:]...)
			break
		}
	}
	if len(names) == 0 {
		delete(w.wds, wd)
		return true
	}
	w.wds[wd] = names
	return false
}

// unwatch stops following dir.
func (w *writers) unwatch(dir string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	wd, ok := w.dirs[dir]
	delete(w.dirs, dir)
	last := ok && w.dropName(wd, dir)
	w.mu.Unlock()
	if last { // another name still leads to the same directory: keep its watch
		_, _ = unix.InotifyRmWatch(int(w.f.Fd()), uint32(wd))
	}
}

// writing reports whether path (a resolved file) has been modified since a writer last closed
// it, and since when.
func (w *writers) writing(path string) (time.Time, bool) {
	if w == nil {
		return time.Time{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.since[path]
	return t, ok
}

// openForWriting reports whether some process has path open for writing now: a read lease
// (F_SETLEASE F_RDLCK) is refused with EAGAIN exactly then. IN_CLOSE_WRITE comes at every
// close of a file opened for writing, not only at the last one (a `touch` while a writer
// stalls mid-file), and stores through a mapping raise no IN_MODIFY: this asks the kernel
// before a file is applied. The lease is given back at once (a writer opening meanwhile
// waits that long). false when it cannot tell: a lease needs the file's owner (or
// CAP_LEASE) and a filesystem that has leases.
func openForWriting(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		return err == unix.EAGAIN
	}
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
	return false
}

func (w *writers) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed
		}
		w.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				raw := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				for i, c := range raw {
					if c == 0 {
						raw = raw[:i]
						break
					}
				}
				name = string(raw)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			names := w.wds[int(ev.Wd)]
			if ev.Mask&unix.IN_IGNORED != 0 {
				for _, dir := range names {
					if w.dirs[dir] == int(ev.Wd) {
						delete(w.dirs, dir)
					}
				}
				delete(w.wds, int(ev.Wd))
				continue
			}
			if name == "" {
				continue
			}
			for _, dir := range names {
				p := filepath.Join(dir, name)
				switch {
				case ev.Mask&unix.IN_MODIFY != 0:
					if _, open := w.since[p]; !open {
						w.since[p] = time.Now()
					}
				case ev.Mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_DELETE) != 0:
					delete(w.since, p)
				}
			}
		}
		w.mu.Unlock()
	}
}

func (w *writers) close() {
	if w == nil {
		return
	}
	_ = w.f.Close()
	<-w.done
}

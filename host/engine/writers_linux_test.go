package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWritersSymlinkedDirectory: a directory reached through a symlink and by its own name
// is one inotify watch with two names. The writer's close must clear the file under both
// names, whichever name was (re)added last: when the watcher re-armed the link's name between
// a writer's first write and its close, the close was recorded under the link's name only,
// the target's name stayed "open for writing", and the file was held for WriterHold (30 s;
// TestReplacedDirectory failed once in CI on this).
func TestWritersSymlinkedDirectory(t *testing.T) {
	w := newWriters()
	if w == nil {
		t.Skip("no inotify")
	}
	defer w.close()
	dir := t.TempDir()
	target := filepath.Join(dir, "plugins")
	link := filepath.Join(dir, "current")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("plugins", link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(target, "post.wasm")
	waitAt := func(what, file string, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, open := w.writing(file)
			if open == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: writing(%s) = %v, want %v", what, file, open, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait := func(what string, want bool) {
		t.Helper()
		waitAt(what, file, want)
	}
	for round, order := range [][2]string{{target, link}, {link, target}} {
		w.watch(order[0])
		w.watch(order[1])
		f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("half")); err != nil {
			t.Fatal(err)
		}
		wait("after the first write", true)
		w.watch(order[0]) // the watcher re-arms a name mid-write (every refresh does)
		f.Write([]byte(" and the rest"))
		f.Close()
		wait("after the close", false)
		// Unwatching one name keeps the directory watched under the other.
		w.unwatch(order[1])
		f, _ = os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0o644)
		f.Write([]byte("!"))
		other := filepath.Join(order[0], "post.wasm") // the name still watched
		waitAt("a write after one name was unwatched", other, true)
		f.Close()
		waitAt("its close", other, false)
		w.unwatch(order[0])
		t.Logf("round %d ok", round)
	}
}

// TestSameDirectory: the watcher adds each directory to fsnotify under one name only. A
// symlinked directory and its target are one inotify watch; fsnotify 1.10 keeps both names
// pointing at it, and once one name was removed the other named a dropped watch: its next
// Remove dereferenced nil inside fsnotify (host/engine's tests panicked once so).
func TestSameDirectory(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "plugins")
	other := filepath.Join(dir, "other")
	for _, d := range []string{target, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "current")
	link2 := filepath.Join(dir, "also")
	os.Symlink("plugins", link)
	os.Symlink("other", link2)
	want := map[string]bool{dir: true, target: true, link: true, link2: true}
	for _, tc := range []struct {
		d     string
		alias string
	}{
		{link, target}, // its target is watched: skip the link's name
		{target, ""},   // a resolved name is kept
		{dir, ""},      // no other name
		{link2, ""},    // its target is not watched: the link's name is the only one
		{"/nonexistent/x", ""},
	} {
		got, ok := sameDirectory(tc.d, want)
		if ok != (tc.alias != "") || got != tc.alias {
			t.Errorf("sameDirectory(%s) = %q, %v; want %q", tc.d, got, ok, tc.alias)
		}
	}
}

package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/internal/safefile"
)

// TestRefused: a FIFO with no writer, /dev/zero, a directory and a file over the limit are
// refused at once, naming the file; a regular file under the limit is read whole.
func TestRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, []byte("hello\n"), 0o644)
	for _, c := range []struct{ path, why string }{
		{fifo, "FIFO"}, {"/dev/zero", "character device"}, {dir, "directory"}, {huge, "over the 1048576-byte limit"},
	} {
		done := make(chan error, 1)
		go func() { _, err := safefile.ReadFile(c.path, 1<<20); done <- err }()
		select {
		case err := <-done:
			if err == nil || !errors.Is(err, safefile.ErrRefused) || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s: %v, want a refusal naming the file and saying %q", c.path, err, c.why)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: ReadFile blocked", c.path)
		}
	}
	if b, err := safefile.ReadFile(ok, 6); err != nil || string(b) != "hello\n" {
		t.Errorf("regular file: %q, %v", b, err)
	}
	if _, err := safefile.ReadFile(ok, 5); !errors.Is(err, safefile.ErrRefused) {
		t.Errorf("a 6-byte file under a 5-byte limit: %v", err)
	}
	if _, err := safefile.ReadFile(filepath.Join(dir, "missing"), 5); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

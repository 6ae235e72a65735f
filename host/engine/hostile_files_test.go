package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestReloadHostileFiles: a config reloaded with a FIFO, /dev/zero or a 3 GiB file as the
// post plugin's params file, as the model or as the post plugin — or with config.toml
// itself replaced by a FIFO — is refused at once with an error naming the file, while the
// running version keeps serving; the next good config then applies. (A FIFO blocked the
// reload forever; /dev/zero as params killed the server.)
func TestReloadHostileFiles(t *testing.T) {
	f := newFixture(t, "")
	orig, err := os.ReadFile(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(f.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(f.dir, "huge")
	hf, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.Truncate(3 << 30); err != nil { // sparse
		t.Fatal(err)
	}
	hf.Close()
	model := testplugins.Model("mobilenet_quant_v1_224.tflite")
	reload := func(t *testing.T) {
		t.Helper()
		done := make(chan struct{})
		go func() { f.e.ReloadFile(context.Background(), f.cfgPath); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatal("the reload did not return in 2 minutes")
		}
	}
	serving := func(t *testing.T) {
		t.Helper()
		if out, err := f.run(); err != nil || !strings.Contains(out, `"version":1`) {
			t.Fatalf("not serving the old version: %v %s", err, out)
		}
	}
	for file, why := range map[string]string{"/dev/zero": "character device", fifo: "FIFO", huge: "over the"} {
		for _, c := range []struct{ name, cfg string }{
			{"params", string(orig) + "params_files = { labels = \"" + file + "\" }\n"},
			{"model", strings.Replace(string(orig), model, file, 1)},
			{"plugin", strings.Replace(string(orig), f.post, file, 1)},
		} {
			t.Run(c.name+" "+filepath.Base(file), func(t *testing.T) {
				if err := os.WriteFile(f.cfgPath, []byte(c.cfg), 0o644); err != nil {
					t.Fatal(err)
				}
				reload(t)
				if st := f.e.Status().Config; !strings.Contains(st.LastError, file) || !strings.Contains(st.LastError, why) {
					t.Errorf("status %q: want an error naming %s and saying %q", st.LastError, file, why)
				}
				serving(t)
			})
		}
	}
	t.Run("config is a FIFO", func(t *testing.T) {
		os.Remove(f.cfgPath)
		if err := syscall.Mkfifo(f.cfgPath, 0o644); err != nil {
			t.Fatal(err)
		}
		reload(t)
		if st := f.e.Status().Config; !strings.Contains(st.LastError, f.cfgPath) || !strings.Contains(st.LastError, "FIFO") {
			t.Errorf("status %q: want an error naming the config and saying FIFO", st.LastError)
		}
		serving(t)
		os.Remove(f.cfgPath)
	})
	// A good config applies: one worker instead of two, and a real params file.
	labels := testplugins.Model("mobilenet_labels.txt")
	good := strings.Replace(string(orig), "workers = 2", "workers = 1", 1) + "params_files = { labels = \"" + labels + "\" }\n"
	if err := os.WriteFile(f.cfgPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	reload(t)
	if st := f.e.Status().Config; st.LastError != "" {
		t.Fatalf("the good config was not applied: %s", st.LastError)
	}
	p, _ := f.e.Pipeline("p")
	if _, total := p.Pipeline.Usage(); total != 1 {
		t.Errorf("pipeline p has %d workers after the good config, want 1", total)
	}
	serving(t)
}

package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/pipeline"
)

// TestSequenceHotReload: the post plugin's file is replaced (hot reload by the watcher)
// while sequences stream 10 ms chunks through microfeatures-c and okay_nabu: no chunk
// fails, every sequence keeps the instances and the version it started with (seqecho's tag
// and its per-instance count), and a sequence started after the reload runs the new version.
func TestSequenceHotReload(t *testing.T) {
	dir := t.TempDir()
	post := filepath.Join(dir, "post.wasm")
	writeFile(t, post, mustRead(t, testplugins.SeqEcho(t, 1)))
	cfg := fmt.Sprintf(`[runtime]
cache_dir = ""
[models.nabu]
path = %q
threads = 1
[pipelines.w]
model = "nabu"
workers = 1
rollback_window = 0
[pipelines.w.sequences]
max = 16
[pipelines.w.pre]
path = %q
timeout_ms = 30000
[pipelines.w.post]
path = %q
timeout_ms = 30000
`, testplugins.Model("okay_nabu.tflite"), testplugins.Example(t, "microfeatures-c"), post)
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, []byte(cfg))
	r := newRig(t, cfgPath)
	p, _ := r.e.Pipeline("w")
	chunk := make([]byte, 320)
	for i := range chunk {
		chunk[i] = byte(i * 37)
	}
	type echo struct{ Post, Tag int }
	send := func(id string, i int, start, end bool) (echo, error) {
		var e echo
		_, err := p.Pipeline.Do(context.Background(), pipeline.Request{Body: bytes.NewReader(chunk), Size: len(chunk),
			Sequence: pipeline.Sequence{ID: id, Start: start, End: end}}, func(b []byte, _ string) error { return json.Unmarshal(b, &e) })
		return e, err
	}
	const streams, n = 6, 200
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	halfway := make(chan struct{}, streams)
	reloaded := make(chan struct{}) // every stream waits at its midpoint for the reload
	var once sync.Once
	defer once.Do(func() { close(reloaded) }) // a failed wait below must not strand them
	for k := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("s", k)
			tag := 0
			for i := range n {
				e, err := send(id, i, i == 0, i == n-1)
				if err != nil {
					errs <- fmt.Errorf("%s chunk %d: %w", id, i, err)
					return
				}
				if i == 0 {
					tag = e.Tag
				}
				if e.Tag != tag || e.Post != i+1 {
					errs <- fmt.Errorf("%s chunk %d: tag %d post %d, started on tag %d", id, i, e.Tag, e.Post, tag)
					return
				}
				if i == n/2 {
					halfway <- struct{}{}
					<-reloaded
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for range streams {
		<-halfway
	}
	before := r.e.Status().Reloads
	tmp := post + ".tmp"
	writeFile(t, tmp, mustRead(t, testplugins.SeqEcho(t, 2)))
	if err := os.Rename(tmp, post); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", 60*time.Second, func() bool { return r.e.Status().Reloads > before })
	once.Do(func() { close(reloaded) })
	if e, err := send("after", 0, true, true); err != nil || e.Tag != 2 {
		t.Errorf("a sequence started after the reload: %+v %v, want tag 2", e, err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

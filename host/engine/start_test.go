package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// TestStartShippedRepeatedly starts the shipped config on a cold compilation cache, then on
// the warm one, several times (run it under -race: make test does). engine.New builds
// pipelines in parallel and classify, detect and segment load the same imagepre-c.wasm, so
// two goroutines compile the same bytes at once: on wazero v1.12.0 that could hand one of
// them a module read from the file cache before its entry preambles were compiled (upstream
// issue 2547; a DATA RACE under -race, `index out of range` in NewFunction without it).
// Each start must also answer.
func TestStartShippedRepeatedly(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	starts := 6
	if testing.Short() {
		starts = 3
	}
	for i := 0; i < starts; i++ {
		cfg, err := config.Load(filepath.Join(testplugins.Root, "config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Runtime.CacheDir = filepath.Join(cache, "wazero")
		cfg.Runtime.CacheKeyFile = ""
		e, err := engine.New(ctx, cfg, nil)
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		p, ok := e.Pipeline("classify")
		if !ok {
			t.Fatal("no classify pipeline")
		}
		if _, err := runOnce(p, testplugins.Model("peacock.png")); err != nil {
			t.Fatalf("start %d: classify: %v", i, err)
		}
		e.Close(ctx)
	}
}

// runOnce runs the file at path through p and returns the result.
func runOnce(p *engine.Pipeline, path string) (string, error) {
	in, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var out string
	_, err = p.Pipeline.Run(context.Background(), bytes.NewReader(in), len(in), func(b []byte, _ string) error {
		out = string(b)
		return nil
	})
	return out, err
}

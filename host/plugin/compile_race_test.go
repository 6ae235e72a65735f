package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/wasm"
	"github.com/tetratelabs/wazero"
)

// TestCompileOnceRace is the shape of wazero issue 2547 without the rest of Load around it
// (whose own locks can order the two goroutines and hide the race): on a warm file cache,
// goroutines compile the same bytes at once through the runtime's compile path, and half
// of them instantiate and call at once while the others may still be compiling. Straight
// through wazero's CompileModule this fails under -race (DATA RACE on the entry preambles)
// and, without -race, panics with "index out of range [N] with length 0" in NewFunction
// (seen here: 30 rounds, first round). compileOnce must make it pass.
func TestCompileOnceRace(t *testing.T) {
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join(testplugins.Root, "plugins/examples/imagepre-c/imagepre-c.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := wasm.Instrument(ctx, b, wasm.Options{HostModule: abi.HostModule})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ib)
	key := hex.EncodeToString(sum[:])
	cacheDir := t.TempDir()
	rounds := 30
	if testing.Short() {
		rounds = 10
	}
	for round := 0; round < rounds; round++ {
		r, err := NewRuntime(ctx, RuntimeOptions{CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				cm, created, _, err := r.compileOnce(ctx, key, ib, nil)
				if err != nil {
					t.Error(err)
					return
				}
				r.cacheMu.Lock()
				if r.disk != nil {
					r.disk.store(key, created) // as Load does: the next round finds it on disk
				}
				r.cacheMu.Unlock()
				if round > 0 && g%2 == 1 {
					mod, err := r.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
					if err != nil {
						t.Error(err)
						return
					}
					mod.ExportedFunction(abi.ExportABIVersion)
				}
			}(g)
		}
		wg.Wait()
		r.Close(ctx)
	}
}

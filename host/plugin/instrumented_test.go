package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/hashicorp/go-hclog"
)

// syncBuffer is a log sink safe for the runtime's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instrumentedEntries lists the instrumented entries of cache_dir (not their records).
func instrumentedEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := filepath.Glob(filepath.Join(dir, compiledDir, instrumentedDir, "*"))
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e, recordSuffix) {
			out = append(out, e)
		}
	}
	return out
}

// TestInstrumentedCache: a start keeps the validated, fuel-rewritten module in cache_dir
// under the host's MAC, and the next start uses it instead of validating and rewriting
// again. Only an entry whose MAC verifies is used: the test writes another plugin's
// instrumented bytes (classify-c, a post plugin) into imagepre-c's entry. With the record
// left as it was (the MAC no longer matches, as for anyone without the key) the load
// ignores it, validates imagepre-c again, answers, and the entry is rewritten with the
// genuine bytes. With a MAC made with the host's key, the forged entry is used (the load
// then fails: the module has no pre export), which shows that a hit skips the rewrite and
// that the MAC is all that stands between cache_dir and the module compiled.
func TestInstrumentedCache(t *testing.T) {
	if buildID() == "" {
		t.Skip("this test binary has no Go build ID: the instrumented cache is off")
	}
	ctx := context.Background()
	dir := t.TempDir()
	pre := testplugins.Example(t, "imagepre-c")
	open := func(log hclog.Logger) *Runtime {
		t.Helper()
		r, err := NewRuntime(ctx, RuntimeOptions{CacheDir: dir, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	load := func(r *Runtime, path string) error {
		t.Helper()
		m, err := r.Load(ctx, Config{Path: path})
		if err == nil {
			m.Release(ctx)
		}
		return err
	}

	// First start: the entries are written.
	r := open(nil)
	r.KeepCache()
	if err := load(r, pre); err != nil {
		t.Fatal(err)
	}
	ents := instrumentedEntries(t, dir)
	if len(ents) != 1 {
		t.Fatalf("instrumented entries after one load: %v, want 1", ents)
	}
	entry := ents[0]
	genuine, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	// classify-c's instrumented bytes, the forgery's content.
	if err := load(r, testplugins.Example(t, "classify-c")); err != nil {
		t.Fatal(err)
	}
	var other []byte
	for _, e := range instrumentedEntries(t, dir) {
		if e != entry {
			other, _ = os.ReadFile(e)
		}
	}
	if other == nil || bytes.Equal(other, genuine) {
		t.Fatal("no second instrumented entry")
	}
	r.Close(ctx)

	// Tampered without the key: refused, validated again, entry replaced.
	if err := os.WriteFile(entry, other, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r = open(hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}))
	r.KeepCache()
	if err := load(r, pre); err != nil {
		t.Fatalf("load with a tampered instrumented entry: %v", err)
	}
	if !strings.Contains(logs.String(), "instrumented module in cache_dir fails its check") {
		t.Errorf("no warning about the tampered entry; log:\n%s", logs.String())
	}
	if got, _ := os.ReadFile(entry); !bytes.Equal(got, genuine) {
		t.Error("the tampered entry was not replaced by the genuine instrumented bytes")
	}
	// Truncated: refused as well.
	if err := os.WriteFile(entry, genuine[:len(genuine)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := load(r, pre); err != nil {
		t.Fatalf("load with a truncated instrumented entry: %v", err)
	}
	if got, _ := os.ReadFile(entry); !bytes.Equal(got, genuine) {
		t.Error("the truncated entry was not replaced")
	}

	// Forged with the host's key: used (so a verified hit skips validation and rewrite).
	rel, _ := filepath.Rel(filepath.Join(dir, compiledDir), entry)
	sum := sha256.Sum256(other)
	r.cacheMu.Lock()
	key := sha256.Sum256(other)
	r.disk.storeInstrumented(filepath.Base(rel), hex.EncodeToString(key[:]), other)
	mac := r.disk.mac(rel, sum[:])
	r.cacheMu.Unlock()
	r.Close(ctx)
	if rec, err := os.ReadFile(entry + recordSuffix); err != nil || !strings.Contains(string(rec), mac) {
		t.Fatalf("forged record not written: %s %v", rec, err)
	}
	r = open(nil)
	defer r.Close(ctx)
	if err := load(r, pre); err == nil || !strings.Contains(err.Error(), "missing export") {
		t.Errorf("load with an authenticated entry holding another module: %v, want its \"missing export\" error (the entry used)", err)
	}
}

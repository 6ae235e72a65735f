package plugin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/edgehost/edgehost/host/wasm"
)

// The instrumented-module cache (RATIONALE.md, "Cold start: interpreter first", 2026-12-07
// second round). Validating a module against the structural limits and rewriting it with
// fuel checks (wasm.Instrument) took 23 % of a warm start's CPU although its compiled code
// came from the cache. The result is kept in cache_dir beside the compiled code, as one more
// entry of edgehost's folder:
//
//	cache_dir/edgehost-compiled/instrumented/SKEY            the validated, rewritten bytes
//	cache_dir/edgehost-compiled/instrumented/SKEY.edgehost   its record: the module key, a MAC
//
// SKEY hashes the module as written (after its signature was checked), the instrumentation
// options (limits, table cap, host module name) and the Go build ID of the running binary,
// so a new edgehost binary (another validator or rewriter) never reads an older one's
// output. The MAC is the compiled entries' one (host's secret, over the entry's name, which
// contains SKEY, and its content): an entry is used only if this host wrote it, for these
// exact source bytes, after Instrument had validated them. Anything else (tampered,
// truncated, written by someone without the key, or another binary's) is not used: the
// module is validated and rewritten again and the entry replaced. The record names the
// instrumented module's key (sha256 of the bytes), so the entry lives and is pruned with
// the compiled code of that key.
const instrumentedDir = "instrumented"

// maxInstrumented bounds an instrumented entry read back: the rewrite grows a module by a
// fraction (a check per loop and function), never past twice the largest module admitted.
const maxInstrumented = 2 * (64 << 20)

var buildID = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return ""
	}
	b, err := s.Data()
	if err != nil || len(b) == 0 {
		return ""
	}
	return string(b)
})

// instrumentKey names the instrumented entry of the module whose bytes hash to sum, under
// the options o; "" when this binary has no build ID (no entry is then read or written).
func instrumentKey(sum [32]byte, o wasm.Options) string {
	id := buildID()
	if id == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("edgehost instrumented module v1\x00"))
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(sum[:])
	h.Write([]byte(o.HostModule))
	h.Write([]byte{0})
	lim, _ := json.Marshal(o.Limits) // every field, by name: a new limit changes the key
	h.Write(lim)
	h.Write(binary.LittleEndian.AppendUint32(nil, o.TableEntries))
	return hex.EncodeToString(h.Sum(nil))
}

// instrument returns b validated and rewritten with fuel checks (wasm.Instrument), from
// cache_dir when this host stored the result for the same bytes, options and binary, and
// the result's sha256 (the module key).
func (r *Runtime) instrument(ctx context.Context, b []byte, sum [32]byte, o wasm.Options) ([]byte, [32]byte, error) {
	skey := ""
	if r.disk != nil { // set at NewRuntime, cleared only by Close
		skey = instrumentKey(sum, o)
	}
	if skey != "" {
		if ib, key := r.disk.loadInstrumented(skey); ib != nil {
			return ib, key, nil // the MAC check hashed it already
		}
	}
	ib, err := wasm.Instrument(ctx, b, o)
	if err != nil {
		return nil, [32]byte{}, err
	}
	key := sha256.Sum256(ib)
	if skey != "" {
		r.cacheMu.Lock()
		if r.disk != nil {
			r.disk.storeInstrumented(skey, hex.EncodeToString(key[:]), ib)
		}
		r.cacheMu.Unlock()
	}
	return ib, key, nil
}

// loadInstrumented reads the instrumented entry skey and returns its bytes and their
// sha256 if its MAC verifies, else nil. It reads only fields fixed at open (no
// Runtime.cacheMu needed).
func (c *diskCache) loadInstrumented(skey string) ([]byte, [32]byte) {
	rel := filepath.Join(instrumentedDir, skey)
	if c.realFolders(rel) != nil {
		return nil, [32]byte{}
	}
	r, ok := c.readRecord(rel)
	if !ok {
		return nil, [32]byte{}
	}
	b, err := readRegular(filepath.Join(c.own, rel), maxInstrumented)
	if err != nil {
		return nil, [32]byte{}
	}
	sum := sha256.Sum256(b)
	if !hmac.Equal([]byte(r.MAC), []byte(c.mac(rel, sum[:]))) {
		c.log.Warn("instrumented module in cache_dir fails its check (corrupted or written by someone else): not used, validating again",
			"entry", filepath.Join(c.own, rel))
		return nil, [32]byte{}
	}
	return b, sum
}

// storeInstrumented writes ib as the instrumented entry skey, recorded for the module key
// key. Called with Runtime.cacheMu held.
func (c *diskCache) storeInstrumented(skey, key string, ib []byte) {
	rel := filepath.Join(instrumentedDir, skey)
	dst := filepath.Join(c.own, rel)
	err := c.ownSafe()
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o700)
	}
	if err == nil {
		err = c.realFolders(rel)
	}
	if err == nil {
		sum := sha256.Sum256(ib)
		rb, _ := json.Marshal(cacheRecord{Keys: []string{key}, MAC: c.mac(rel, sum[:])})
		// The record first, as for compiled entries: content without a matching record is
		// never used.
		if err = writeAtomic(dst+recordSuffix, rb, 0o600); err == nil {
			err = writeAtomic(dst, ib, 0o600)
		}
	}
	if err != nil {
		if !c.warned {
			c.log.Warn("cannot write the compilation cache (full, read-only?): compiled code is kept in memory only", "dir", c.dir, "error", err)
			c.warned = true
		}
		return
	}
	c.records[rel] = map[string]bool{key: true}
}

// isInstrumented reports whether the entry rel is an instrumented module (not compiled
// code for wazero).
func isInstrumented(rel string) bool {
	return strings.HasPrefix(filepath.ToSlash(rel), instrumentedDir+"/")
}

package plugin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// The compilation cache (RATIONALE.md, "The compilation cache is native code").
//
// wazero never reads or writes runtime.cache_dir itself. It compiles into a private
// directory (os.MkdirTemp, mode 0700, removed at Close); cache_dir only keeps copies:
//
//	cache_dir/
//	  edgehost-cache.lock          flock: shared while a runtime uses the directory
//	  edgehost-compiled/           mode 0700, edgehost's own folder
//	    wazero-…/HEX               an entry wazero wrote (machine code)
//	    wazero-…/HEX.edgehost      its record: the module keys using it and a MAC
//
// Before a module compiles, the entries recorded for its key (sha256 of the instrumented,
// signature-checked module) are copied into the private directory only if their MAC
// verifies: HMAC-SHA256 under a secret kept outside cache_dir (the key file, 0600) over the
// entry's name and content. An entry written, tampered with or corrupted by anyone without
// the secret is never executed: it is not copied, wazero compiles the module again, and the
// fresh entry replaces it. Entries wazero writes are copied back with their record.
//
// edgehost deletes only entries that carry its record, in its own folder, and only while no
// other edgehost process uses the directory; anything else in cache_dir is left alone (and
// reported once at start). A cache_dir that cannot be written (full, read-only, no
// permission) or whose key file cannot be had degrades to compiling in the private
// directory alone, with a warning: the start never fails because of the cache.

const (
	cacheLockFile  = "edgehost-cache.lock"
	compiledDir    = "edgehost-compiled"
	recordSuffix   = ".edgehost"
	oldIndexFile   = "edgehost-cache-index.json" // the layout before edgehost-compiled/
	macContext     = "edgehost compiled code v1\x00"
	maxRecordBytes = 1 << 20
)

// diskCache is the persistent side of the compilation cache. All methods are called with
// Runtime.cacheMu held.
type diskCache struct {
	dir     string // cache_dir
	own     string // cache_dir/edgehost-compiled
	private string // wazero's directory
	secret  []byte
	lock    *os.File // shared flock on cacheLockFile
	log     hclog.Logger
	// records: entry (relative path under own/private) → module keys using it
	records map[string]map[string]bool
	// live: module key → loaded modules using it
	live map[string]int
	keep bool // KeepCache: releases delete nothing
	// warned says a write failed once (full, read-only): later failures are debug-level
	warned bool
}

type cacheRecord struct {
	Keys []string `json:"keys"`
	MAC  string   `json:"mac"`
}

// openDiskCache prepares cache_dir for use. It returns nil (and logs why) when the directory
// cannot be used; the runtime then compiles in its private directory only.
func openDiskCache(dir, keyFile, private string, log hclog.Logger) *diskCache {
	degrade := func(why string, err error) *diskCache {
		log.Warn("compilation cache not kept on disk: plugins compile at every start", "dir", dir, "reason", why, "error", err)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return degrade("cannot create cache_dir", err)
	}
	if keyFile == "" {
		keyFile = DefaultCacheKeyFile(dir)
	}
	secret, err := cacheSecret(keyFile)
	if err != nil {
		return degrade("no key to check compiled code with", err)
	}
	c := &diskCache{dir: dir, own: filepath.Join(dir, compiledDir), private: private, secret: secret, log: log,
		records: map[string]map[string]bool{}, live: map[string]int{}}
	lockPath := filepath.Join(dir, cacheLockFile)
	if c.lock, err = os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600); err != nil {
		// A read-only cache_dir that an earlier start filled is still worth reading.
		var rerr error
		if c.lock, rerr = os.OpenFile(lockPath, os.O_RDONLY|unix.O_NOFOLLOW, 0); rerr != nil {
			return degrade("cannot open the lock file", err)
		}
		log.Warn("cache_dir is not writable: compiled entries already there are used, new ones are kept in memory only", "dir", dir, "error", err)
		c.warned = true
	}
	if err := unix.Flock(int(c.lock.Fd()), unix.LOCK_SH); err != nil {
		c.lock.Close()
		return degrade("cannot lock the directory", err)
	}
	if err := os.Mkdir(c.own, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		c.lock.Close()
		return degrade("cannot create "+compiledDir, err)
	}
	fi, err := os.Lstat(c.own)
	if err == nil && (!fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByMe(fi)) {
		err = fmt.Errorf("%s is not a directory of this user that only it can write (mode %v)", c.own, fi.Mode())
	}
	if err != nil {
		c.lock.Close()
		return degrade("edgehost's folder in cache_dir is not safe to use", err)
	}
	c.loadRecords()
	c.reportForeign()
	return c
}

// DefaultCacheKeyFile is where the compilation cache's secret lives when the config names no
// runtime.cache_key_file: beside cache_dir, outside it (CACHE_DIR.key), so that whoever can
// write into cache_dir cannot read or replace it.
func DefaultCacheKeyFile(cacheDir string) string {
	return filepath.Clean(cacheDir) + ".key"
}

// cacheSecret reads the key file, or creates it with 32 random bytes (mode 0600). A key
// file that others can read or write is refused: it would let them forge compiled code.
func cacheSecret(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
		if err != nil {
			return nil, err
		}
		_, err = tmp.Write([]byte(hex.EncodeToString(key) + "\n"))
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(tmp.Name(), path) // never replaces a key another process just made
		}
		os.Remove(tmp.Name())
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return cacheSecret(path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 || !ownedByMe(fi) {
		return nil, fmt.Errorf("key file %s must be a regular file of this user, mode 0600 (is %v)", path, fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("key file %s: not a hex key of at least 16 bytes", path)
	}
	return key, nil
}

func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// mac is the MAC of the entry at rel whose content has the given sha256.
func (c *diskCache) mac(rel string, sum []byte) string {
	h := hmac.New(sha256.New, c.secret)
	h.Write([]byte(macContext + filepath.ToSlash(rel) + "\x00"))
	h.Write(sum)
	return hex.EncodeToString(h.Sum(nil))
}

// copyHashed copies the regular file src (never through a symlink) to a temporary file
// beside dst, returning the temporary file's name and the content's sha256. Entries are
// streamed: a few MB each, never held in memory.
func copyHashed(src, dst string) (tmp string, sum []byte, err error) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", nil, err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", nil, fmt.Errorf("%s is not a regular file", src)
	}
	out, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*.tmp")
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(out.Name(), 0o600)
	}
	if err != nil {
		os.Remove(out.Name())
		return "", nil, err
	}
	return out.Name(), h.Sum(nil), nil
}

// loadRecords reads every record in edgehost's folder (what the folder holds that edgehost
// wrote). A record is trusted for its key list only; its MAC is checked when it is used.
func (c *diskCache) loadRecords() {
	_ = filepath.WalkDir(c.own, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, recordSuffix) {
			return nil
		}
		rel, _ := filepath.Rel(c.own, strings.TrimSuffix(p, recordSuffix))
		r, ok := c.readRecord(rel)
		if !ok {
			return nil
		}
		set := map[string]bool{}
		for _, k := range r.Keys {
			set[k] = true
		}
		c.records[rel] = set
		return nil
	})
}

func (c *diskCache) readRecord(rel string) (cacheRecord, bool) {
	var r cacheRecord
	b, err := readRegular(filepath.Join(c.own, rel+recordSuffix), maxRecordBytes)
	if err != nil || json.Unmarshal(b, &r) != nil {
		return r, false
	}
	return r, true
}

// readRegular reads a regular file (never a symlink, FIFO or device) of at most max bytes.
func readRegular(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// reportForeign logs, once, what cache_dir holds that edgehost did not write: it is left
// alone.
func (c *diskCache) reportForeign() {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	var foreign []string
	for _, e := range ents {
		n := e.Name()
		if n == cacheLockFile || n == compiledDir || n == oldIndexFile || strings.HasPrefix(n, "edgehost-") ||
			n == "oci" || strings.HasPrefix(n, "wazero-") {
			continue
		}
		foreign = append(foreign, n)
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		c.log.Warn("cache_dir holds files edgehost did not write; they are left alone (give edgehost a directory of its own)",
			"dir", c.dir, "files", strings.Join(foreign, ","))
	}
}

// fetch copies the verified entries recorded for key into the private directory, where
// wazero will find them. An entry that fails its check is not copied (wazero compiles
// again and store replaces it). It returns the entries recorded for key.
func (c *diskCache) fetch(key string) (rels []string) {
	for rel, keys := range c.records {
		if !keys[key] || isInstrumented(rel) {
			continue
		}
		rels = append(rels, rel)
		dst := filepath.Join(c.private, rel)
		if _, err := os.Lstat(dst); err == nil {
			continue // already there (another module of this runtime)
		}
		r, ok := c.readRecord(rel)
		if !ok || c.realFolders(rel) != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			continue
		}
		tmp, sum, err := copyHashed(filepath.Join(c.own, rel), dst)
		if err != nil {
			c.log.Debug("compiled entry unreadable; compiling again", "entry", rel, "error", err)
			continue
		}
		if !hmac.Equal([]byte(r.MAC), []byte(c.mac(rel, sum))) {
			os.Remove(tmp)
			c.log.Warn("compiled entry in cache_dir fails its check (corrupted or written by someone else): not used, compiling again",
				"entry", filepath.Join(c.own, rel))
			continue
		}
		if os.Rename(tmp, dst) != nil {
			os.Remove(tmp)
		}
	}
	return rels
}

// store copies entries wazero wrote for key from the private directory into cache_dir,
// each with its record.
func (c *diskCache) store(key string, rels []string) {
	for _, rel := range rels {
		keys := c.records[rel]
		if keys == nil {
			keys = map[string]bool{}
		}
		keys[key] = true
		c.records[rel] = keys
		dst := filepath.Join(c.own, rel)
		err := c.ownSafe()
		if err == nil {
			err = os.MkdirAll(filepath.Dir(dst), 0o700)
		}
		if err == nil {
			err = c.realFolders(rel)
		}
		var tmp string
		var sum []byte
		if err == nil {
			tmp, sum, err = copyHashed(filepath.Join(c.private, rel), dst)
		}
		if err == nil {
			r := cacheRecord{MAC: c.mac(rel, sum)}
			for k := range keys {
				r.Keys = append(r.Keys, k)
			}
			sort.Strings(r.Keys)
			rb, _ := json.Marshal(r)
			// The record first: an entry without a valid record is never used, and one
			// whose record names other content fails its check.
			if err = writeAtomic(dst+recordSuffix, rb, 0o600); err == nil {
				err = os.Rename(tmp, dst)
			}
			if err != nil {
				os.Remove(tmp)
			}
		}
		if err != nil {
			if !c.warned {
				c.log.Warn("cannot write the compilation cache (full, read-only?): compiled code is kept in memory only", "dir", c.dir, "error", err)
				c.warned = true
			}
			delete(c.records, rel)
		}
	}
}

// realFolders checks that every folder between edgehost's folder and the entry rel is a
// real directory of this user (not a symlink): entries and records are written, read and
// deleted by path, and a symlinked version folder would lead them elsewhere.
func (c *diskCache) realFolders(rel string) error {
	if err := c.ownSafe(); err != nil {
		return err
	}
	p := c.own
	parts := strings.Split(filepath.Dir(rel), string(filepath.Separator))
	for _, part := range parts {
		if part == "." {
			continue
		}
		if part == ".." || part == "" {
			return fmt.Errorf("%s: not a path inside %s", rel, c.own)
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() || !ownedByMe(fi) {
			return fmt.Errorf("%s is not a directory of this user (mode %v)", p, fi.Mode())
		}
	}
	return nil
}

// ownSafe checks edgehost's folder again: a real directory of this user that only it can
// write. It was checked at open, but whoever can write cache_dir can rename it (that needs
// no right on the folder itself) and put a symlink in its place.
func (c *diskCache) ownSafe() error {
	fi, err := os.Lstat(c.own)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByMe(fi) {
		return fmt.Errorf("%s is no longer a directory of this user that only it can write (mode %v)", c.own, fi.Mode())
	}
	return nil
}

// exclusive reports whether this runtime is the directory's only user. It takes the
// exclusive lock without waiting and goes back to shared at once.
func (c *diskCache) exclusive() bool {
	fd := int(c.lock.Fd())
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false
	}
	_ = unix.Flock(fd, unix.LOCK_SH)
	return true
}

// remove deletes the entries no live module uses whose keys are all in drop (nil: every
// key not live), with their records. Only while the directory is not shared.
func (c *diskCache) remove(drop map[string]bool) (removed int) {
	if !c.exclusive() {
		return 0
	}
	for rel, keys := range c.records {
		used := false
		for k := range keys {
			if c.live[k] > 0 || (drop != nil && !drop[k]) {
				used = true
				break
			}
		}
		if used {
			continue
		}
		p := filepath.Join(c.own, rel)
		if c.realFolders(rel) != nil {
			delete(c.records, rel) // never through a symlinked folder
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			if os.Remove(p) == nil {
				removed++
			}
		}
		_ = os.Remove(p + recordSuffix)
		delete(c.records, rel)
	}
	return removed
}

// removeOldLayout deletes the files the previous layout's index recorded, then the index.
// The index carries no MAC (whoever can write cache_dir can write it), so it is trusted for
// nothing but names of the old layout's shape, cache_dir/wazero-*/NAME: each is removed
// relative to the folder opened without following a symlink (never a file elsewhere through
// a symlinked folder), and only if it is a regular file. Nothing else.
func (c *diskCache) removeOldLayout() (removed int) {
	idx := filepath.Join(c.dir, oldIndexFile)
	b, err := readRegular(idx, 16<<20)
	if err != nil || !c.exclusive() {
		return 0
	}
	var old map[string][]string
	_ = json.Unmarshal(b, &old)
	root, err := unix.Open(c.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) // cache_dir may be a symlink
	if err != nil {
		return 0
	}
	defer unix.Close(root)
	for _, files := range old {
		for _, f := range files {
			rel, err := filepath.Rel(c.dir, f)
			if err != nil {
				continue
			}
			folder, name := filepath.Split(rel)
			folder = strings.TrimSuffix(folder, "/")
			if !strings.HasPrefix(folder, "wazero-") || strings.Contains(folder, "/") || name == "" || name == "." || name == ".." {
				continue
			}
			fd, err := unix.Openat(root, folder, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
				unix.Unlinkat(fd, name, 0) == nil {
				removed++
				_ = unix.Unlinkat(root, folder, unix.AT_REMOVEDIR) // the version folder, once empty
			}
			unix.Close(fd)
		}
	}
	_ = os.Remove(idx)
	return removed
}

func (c *diskCache) close() {
	if c.lock != nil {
		_ = c.lock.Close()
	}
}

// writeAtomic writes b to a temporary file beside path and renames it over path.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), mode)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// privateEntries lists the entries wazero has written in dir (relative paths).
func privateEntries(dir string) map[string]bool {
	out := map[string]bool{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".tmp") {
			if rel, err := filepath.Rel(dir, p); err == nil {
				out[rel] = true
			}
		}
		return nil
	})
	return out
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/host/tflite"
	"golang.org/x/sys/unix"
)

// probeCommand is the hidden command that loads one model (its bytes on stdin) the way the
// host will, in a process of its own: see tflite.ModelProbe.
const probeCommand = "__probe-model"

// probeTimeout bounds one probe (XNNPACK packs weights; a large model takes seconds).
const probeTimeout = 2 * time.Minute

// probeCache is the directory that remembers models that passed a probe, so that a restart
// does not probe unchanged models again: runtime.cache_dir/edgehost-model-probes (the plugin
// runtime's cache pruning leaves edgehost-* directories alone). "" keeps nothing.
var probeCache atomic.Value // string

func setProbeCache(cacheDir string) {
	if cacheDir == "" {
		probeCache.Store("")
		return
	}
	probeCache.Store(filepath.Join(cacheDir, "edgehost-model-probes"))
}

// probeModel runs `edgehost __probe-model` on the model's bytes with the same options,
// unless the same bytes passed with the same options before (in probeCache).
func probeModel(model []byte, opts tflite.Options) error {
	dir, _ := probeCache.Load().(string)
	sum := sha256.Sum256(append(model, fmt.Sprintf("/%d/%v/%+v", opts.Threads, opts.XNNPACK, opts.Delegate)...))
	name := hex.EncodeToString(sum[:])
	if dir != "" && probePassed(dir, name) {
		return nil
	}
	if err := probeOnce(model, opts); err != nil {
		return err
	}
	if dir != "" {
		_ = os.MkdirAll(filepath.Dir(dir), 0o755)
		_ = os.Mkdir(dir, 0o700)
		if fd, ok := openProbeDir(dir); ok {
			if f, err := unix.Openat(fd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err == nil {
				unix.Close(f)
			}
			unix.Close(fd)
		}
	}
	return nil
}

// openProbeDir opens the probe markers' folder only if it is a real directory (not a
// symlink) of this user that nobody else can write: a marker skips the probe, and whoever
// can write cache_dir must not be able to plant one for a model made to crash TFLite.
func openProbeDir(dir string) (int, bool) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// probePassed reports whether a marker of this user says the bytes named passed a probe.
func probePassed(dir, name string) bool {
	fd, ok := openProbeDir(dir)
	if !ok {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
		int(st.Uid) == os.Geteuid()
}

func probeOnce(model []byte, opts tflite.Options) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot probe the model in a separate process: %w", err)
	}
	args := []string{probeCommand, "-threads", strconv.Itoa(opts.Threads), "-xnnpack=" + strconv.FormatBool(opts.XNNPACK)}
	if d := opts.Delegate; d != nil {
		args = append(args, "-delegate", d.Path)
		for k, v := range d.Options {
			args = append(args, "-delegate-option", k+"="+v)
		}
	}
	// EDGEHOST_PROBE_EMULATOR runs the probe under an emulator (its words separated by
	// spaces, say "qemu-aarch64-static -L /sysroot"): an ARM build emulated where no
	// binfmt_misc entry can start the child itself (make test-arm's fallback).
	if em := strings.Fields(os.Getenv("EDGEHOST_PROBE_EMULATOR")); len(em) > 0 {
		args = append(append(em[1:len(em):len(em)], exe), args...)
		exe = em[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdin = bytes.NewReader(model)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &out
	err = cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if ctx.Err() != nil {
		return fmt.Errorf("loading the model took over %v in a probe process; not loaded", probeTimeout)
	}
	if errors.As(err, &ee) {
		sig := ""
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sig = ws.Signal().String()
		} else if m := goSignal.FindStringSubmatch(out.String()); m != nil {
			sig = m[1] // the Go runtime caught it in C code, printed a trace and exited 2
		}
		if sig != "" {
			return fmt.Errorf("TFLite crashed (%s) loading this model in a probe process: the file is corrupt or made to crash it; not loaded", sig)
		}
		return errors.New(lastLine(out.String()))
	}
	return fmt.Errorf("cannot probe the model in a separate process: %w", err)
}

// goSignal finds the signal in the Go runtime's report of a crash in C code.
var goSignal = regexp.MustCompile(`(?m)^(?:fatal error: unexpected signal.*\n)?(SIG[A-Z]+): `)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "INFO:") {
			return strings.TrimPrefix(l, "edgehost "+probeCommand+": ")
		}
	}
	return "the probe process failed without a message"
}

// runProbe is `edgehost __probe-model`: read a model from stdin, load it, build an
// interpreter with the given options and run it once on zeroed inputs. Exit 0 when all of
// that works; a crash is what the parent looks for.
func runProbe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(probeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	threads := fs.Int("threads", 1, "interpreter threads")
	xnn := fs.Bool("xnnpack", false, "apply XNNPACK")
	delegate := fs.String("delegate", "", "external delegate library")
	var dopts []string
	fs.Func("delegate-option", "KEY=VALUE for the external delegate", func(s string) error { dopts = append(dopts, s); return nil })
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "edgehost %s: %v\n", probeCommand, err)
		return exitFailure
	}
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp("", "edgehost-probe-*.tflite")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	f.Close()
	opts := tflite.Options{Threads: *threads, XNNPACK: *xnn}
	if *delegate != "" {
		opts.Delegate = &tflite.ExternalOptions{Path: *delegate, Options: map[string]string{}}
		for _, kv := range dopts {
			k, v, _ := strings.Cut(kv, "=")
			opts.Delegate.Options[k] = v
		}
	}
	m, err := tflite.LoadModel(f.Name(), opts)
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	it, err := m.NewInterpreter()
	if err != nil {
		return fail(err)
	}
	defer it.Close()
	if err := it.Invoke(); err != nil {
		return fail(err)
	}
	return exitOK
}

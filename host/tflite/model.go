package tflite

/*
#include "shim.h"
*/
import "C"

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/internal/safefile"
	gotflite "github.com/mattn/go-tflite"
	"golang.org/x/sys/unix"
)

// ErrBadModel is wrapped by every error about a model file that cannot be used.
var ErrBadModel = errors.New("bad model")

// ModelProbe, when set, is called with a model's bytes and options before this process
// parses them, to load the model in another process first: TFLite does not verify a model
// against itself (a tensor's shape against its buffer, say), and a corrupt or hostile file can
// crash it inside C, where no Go code can recover: one flipped byte in face_detection made
// XNNPACK's weight packing read past a buffer (SIGSEGV). cmd/edgehost sets it to run
// `edgehost __probe-model`; a probe that dies by a signal rejects the model with an error and
// the host keeps serving. Nil (this package's tests, the probe process itself): no probe.
// Bytes that passed once (with the same options) are not probed again.
var ModelProbe func(model []byte, opts Options) error

var probed sync.Map // sha256 + options -> struct{}

func probe(buf []byte, sum [32]byte, opts Options) error {
	if ModelProbe == nil {
		return nil
	}
	key := fmt.Sprintf("%x/%d/%v/%+v", sum, opts.Threads, opts.XNNPACK, opts.Delegate)
	if _, ok := probed.Load(key); ok {
		return nil
	}
	if err := ModelProbe(buf, opts); err != nil {
		return err
	}
	probed.Store(key, struct{}{})
	return nil
}

// TensorInfo describes one input or output tensor of a model.
type TensorInfo struct {
	Name      string
	Type      abi.DType
	Shape     []int
	Scale     float32 // quantisation scale, 0 when the tensor is not quantised
	ZeroPoint int32
	Bytes     int // size of the tensor's data in bytes
}

func (t TensorInfo) String() string {
	s := fmt.Sprintf("%s %s%v", t.Name, t.Type, t.Shape)
	if t.Scale != 0 {
		s += fmt.Sprintf(" q(scale=%g zero=%d)", t.Scale, t.ZeroPoint)
	}
	return s
}

// Options configure how a model's interpreters are built. The zero value runs on the CPU
// with TFLite's default kernels and one thread.
type Options struct {
	Threads int // interpreter threads (TfLiteInterpreterOptionsSetNumThreads); 0 means 1, config.DefaultThreads
	// IdleThreads, when above Threads, gives the model one more interpreter with that many
	// threads, for a request that runs alone in the process (Model.IdleInterpreter). 0: none.
	IdleThreads int
	XNNPACK     bool             // apply the XNNPACK delegate with Threads threads
	Delegate    *ExternalOptions // an external (vendor) delegate; nil for none
	// LiteRT runs the model on LiteRT's CompiledModel API instead (CPU, GPU or NPU). If
	// LiteRT cannot load, compile or run the model there, the classic backend serves it and
	// Backend says why. Nil for the classic TFLite C API.
	LiteRT *LiteRTOptions
	// Warn receives warnings such as a vendor delegate falling back to CPU. Nil discards.
	Warn func(msg string, kv ...any)
}

// Model is a loaded .tflite model. It is safe for concurrent use; its interpreters are not.
//
// The model is parsed from a private, read-only copy of the file in memory the host owns
// (an anonymous mapping), never from a mapping of the file itself: rewriting, truncating or
// deleting the file on disk cannot touch a loaded model or its interpreters. The copy is
// released when the model and every interpreter built from it are closed.
type Model struct {
	Path    string
	Inputs  []TensorInfo
	Outputs []TensorInfo
	Hash    string // sha256 (hex) of the bytes the model was parsed from
	Size    int    // bytes of the private copy
	opts    Options
	m       *gotflite.Model

	mu   sync.Mutex
	refs int    // the model itself and each open interpreter
	buf  []byte // the private copy (anonymous mapping), unmapped when refs reaches 0

	lrt          *litertModel // nil: the classic backend serves every interpreter
	lrtReason    string       // why a requested LiteRT backend is not used
	runFallbacks int64        // interpreters moved to the classic backend after load (atomic)
	transferred  int64        // tensor bytes LiteRT moved to and from the GPU (atomic)

	idle idleSlot // the interpreter for requests that run alone (idle.go)
}

// LoadModel reads the model at path into a private copy, then parses and checks it. A
// missing, truncated or non-TFLite file, or one that changed while it was read, gives an
// error wrapping ErrBadModel that says what is wrong.
func LoadModel(path string, opts Options) (*Model, error) {
	buf, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	if err := checkBytes(path, buf); err != nil {
		unmapPrivate(buf)
		return nil, err
	}
	sum := sha256.Sum256(buf)
	if err := probe(buf, sum, opts); err != nil {
		unmapPrivate(buf)
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, path, err)
	}
	cm := C.TfLiteModelCreate(unsafe.Pointer(&buf[0]), C.size_t(len(buf)))
	if cm == nil {
		unmapPrivate(buf)
		return nil, fmt.Errorf("%w: %s: TFLite could not parse the model (corrupt or unsupported flatbuffer)", ErrBadModel, path)
	}
	// go-tflite v1.0.1's Model is a struct of exactly one *TfLiteModel (checked by
	// TestRawPointers); its NewModel copies into C memory that it never frees.
	gm := new(gotflite.Model)
	*(**C.TfLiteModel)(unsafe.Pointer(gm)) = cm
	model := &Model{Path: path, Hash: hex.EncodeToString(sum[:]), Size: len(buf), opts: opts, m: gm, refs: 1, buf: buf}
	// Describe the tensors with a plain CPU interpreter: delegates do not change them.
	it, err := model.newInterpreter(Options{Threads: 1})
	if err != nil {
		model.Close()
		return nil, err
	}
	model.Inputs, model.Outputs = it.describe()
	it.Close()
	if opts.LiteRT != nil {
		if err := model.initLiteRT(opts.LiteRT); err != nil {
			model.lrtReason = err.Error()
			if opts.Warn != nil {
				opts.Warn("accelerator unavailable; serving the model on the CPU (classic TFLite)", "accelerator", opts.LiteRT.Accelerator, "error", err.Error())
			}
		}
	}
	return model, nil
}

// readPrivate copies the file at path into a fresh anonymous mapping, read-only once
// filled. A file whose size changes while it is read (someone is writing it) is refused.
func readPrivate(path string) ([]byte, error) {
	// Opened without blocking and refused unless a regular file under the limit: a FIFO or
	// a device named as a model must not hang or exhaust the process.
	f, _, err := safefile.Open(path, maxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if st.Size() < 8 {
		return nil, fmt.Errorf("%w: %s: file is %d bytes, too short to be a TFLite model", ErrBadModel, path, st.Size())
	}
	if st.Size() > maxModelBytes {
		return nil, fmt.Errorf("%w: %s: file is %d bytes, over the %d-byte limit", ErrBadModel, path, st.Size(), int64(maxModelBytes))
	}
	n := int(st.Size())
	buf, err := mapPrivate(n)
	if err != nil {
		return nil, fmt.Errorf("%s: reserving %d bytes for the model: %w", path, n, err)
	}
	got, err := io.ReadFull(f, buf)
	var extra [1]byte
	more, _ := f.Read(extra[:])
	st2, err2 := f.Stat()
	switch {
	case err != nil || more != 0 || err2 != nil || st2.Size() != st.Size():
		unmapPrivate(buf)
		return nil, fmt.Errorf("%w: %s: file changed while it was read (%d of %d bytes read): it is being written", ErrBadModel, path, got, n)
	}
	if err := syscall.Mprotect(privateRegion(buf, false), syscall.PROT_READ); err != nil {
		unmapPrivate(buf)
		return nil, err
	}
	return buf, nil
}

// mapPrivate returns n bytes of fresh anonymous memory whose end lies within 63 bytes of a
// PROT_NONE guard page (the start 64-byte aligned, the alignment TFLite asks of tensor
// data). A model whose tensor shapes make TFLite or XNNPACK read past the end of the model
// (a fuzzed shape) faults at once, every time: in the probe child first, which rejects the
// model, and never only by chance in this process (TestCrashingModel failed once in CI so:
// the read landed in mapped memory, the probe passed, and inspect crashed).
func mapPrivate(n int) ([]byte, error) {
	page := os.Getpagesize()
	span := (n + page - 1) / page * page
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(span+page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	all := unsafe.Slice((*byte)(p), span+page)
	if err := unix.Mprotect(all[span:], unix.PROT_NONE); err != nil {
		_ = unix.MunmapPtr(p, uintptr(span+page))
		return nil, err
	}
	off := (span - n) &^ 63
	return all[off : off+n : off+n], nil
}

// privateRegion is the whole mapping of a buffer from mapPrivate: with the guard page, or
// only the pages that hold data.
func privateRegion(buf []byte, guard bool) []byte {
	page := uintptr(os.Getpagesize())
	first := unsafe.Pointer(unsafe.SliceData(buf))
	off := uintptr(first) & (page - 1)
	start := unsafe.Add(first, -int(off))
	span := (off + uintptr(len(buf)) + page - 1) &^ (page - 1)
	if guard {
		span += page
	}
	return unsafe.Slice((*byte)(start), span)
}

// unmapPrivate releases a buffer from mapPrivate, guard page included.
func unmapPrivate(buf []byte) {
	r := privateRegion(buf, true)
	_ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(r)), uintptr(len(r)))
}

// maxModelBytes bounds a model's private copy (flatbuffers address at most 2 GiB).
const maxModelBytes = 2 << 30

// checkBytes rejects what TFLite would otherwise misread: truncated files and files
// without the TFLite flatbuffer identifier.
func checkBytes(path string, b []byte) error {
	if string(b[4:8]) != "TFL3" {
		return fmt.Errorf("%w: %s: not a TFLite model (flatbuffer identifier %q, want \"TFL3\")", ErrBadModel, path, b[4:8])
	}
	root := binary.LittleEndian.Uint32(b[:4])
	if int64(root)+4 > int64(len(b)) {
		return fmt.Errorf("%w: %s: truncated (root table at offset %d, file is %d bytes)", ErrBadModel, path, root, len(b))
	}
	return nil
}

// retain and release count the users of the private copy (the model and its interpreters).
func (m *Model) retain() {
	m.mu.Lock()
	m.refs++
	m.mu.Unlock()
}

func (m *Model) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs--
	if m.refs == 0 && m.lrt != nil {
		m.lrt.close() // reads the private copy: before it goes
	}
	if m.refs == 0 && m.buf != nil {
		unmapPrivate(m.buf)
		m.buf = nil
	}
}

// Options returns the options the model was loaded with.
func (m *Model) Options() Options { return m.opts }

// NewInterpreter builds an interpreter with the model's options, tensors allocated.
// A vendor delegate that cannot be applied is dropped with a warning (CPU fallback).
// On a LiteRT model, a compilation that fails here gives a classic interpreter (logged,
// counted in Backend().RunFallbacks).
func (m *Model) NewInterpreter() (*Interpreter, error) {
	if m.lrt == nil {
		return m.newInterpreter(m.opts)
	}
	it, err := m.newLiteRTInterpreter(m.lrt)
	if err == nil {
		return it, nil
	}
	atomic.AddInt64(&m.runFallbacks, 1)
	if m.opts.Warn != nil {
		m.opts.Warn("LiteRT could not compile the model for a new interpreter; it runs on the CPU (classic TFLite)", "accelerator", m.lrt.opts.Accelerator, "error", err.Error())
	}
	return m.newInterpreter(m.opts)
}

// Close releases the model and closes its idle interpreter (waiting for a request that
// holds it). Every other interpreter of the model must be closed first.
// The private copy of the file stays until the last interpreter is closed as well.
func (m *Model) Close() {
	m.closeIdle()
	m.mu.Lock()
	gm := m.m
	m.m = nil
	m.mu.Unlock()
	if gm != nil {
		gm.Delete()
		m.release()
	}
}

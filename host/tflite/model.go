package tflite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/edgehost/edgehost/abi"
	gotflite "github.com/mattn/go-tflite"
)

// ErrBadModel is wrapped by every error about a model file that cannot be used.
var ErrBadModel = errors.New("bad model")

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
	Threads  int              // interpreter threads (TfLiteInterpreterOptionsSetNumThreads); 0 means 1
	XNNPACK  bool             // apply the XNNPACK delegate with Threads threads
	Delegate *ExternalOptions // an external (vendor) delegate; nil for none
	// Warn receives warnings such as a vendor delegate falling back to CPU. Nil discards.
	Warn func(msg string, kv ...any)
}

// Model is a loaded .tflite model. It is safe for concurrent use; its interpreters are not.
type Model struct {
	Path    string
	Inputs  []TensorInfo
	Outputs []TensorInfo
	opts    Options
	m       *gotflite.Model
}

// LoadModel loads and checks the model at path. A missing, truncated or non-TFLite file
// gives an error wrapping ErrBadModel that says what is wrong.
func LoadModel(path string, opts Options) (*Model, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	m := gotflite.NewModelFromFile(path)
	if m == nil {
		return nil, fmt.Errorf("%w: %s: TFLite could not parse the model (corrupt or unsupported flatbuffer)", ErrBadModel, path)
	}
	model := &Model{Path: path, opts: opts, m: m}
	// Describe the tensors with a plain CPU interpreter: delegates do not change them.
	it, err := model.newInterpreter(Options{Threads: 1})
	if err != nil {
		m.Delete()
		return nil, err
	}
	defer it.Close()
	model.Inputs, model.Outputs = it.describe()
	return model, nil
}

// checkFile rejects what TFLite would otherwise misread: missing, empty, truncated files and
// files without the TFLite flatbuffer identifier.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%w: %s is a directory, not a .tflite file", ErrBadModel, path)
	}
	var hdr [8]byte
	if n, _ := f.ReadAt(hdr[:], 0); n < 8 {
		return fmt.Errorf("%w: %s: file is %d bytes, too short to be a TFLite model", ErrBadModel, path, st.Size())
	}
	if string(hdr[4:8]) != "TFL3" {
		return fmt.Errorf("%w: %s: not a TFLite model (flatbuffer identifier %q, want \"TFL3\")", ErrBadModel, path, hdr[4:8])
	}
	root := binary.LittleEndian.Uint32(hdr[:4])
	if int64(root)+4 > st.Size() {
		return fmt.Errorf("%w: %s: truncated (root table at offset %d, file is %d bytes)", ErrBadModel, path, root, st.Size())
	}
	return nil
}

// Options returns the options the model was loaded with.
func (m *Model) Options() Options { return m.opts }

// NewInterpreter builds an interpreter with the model's options, tensors allocated.
// A vendor delegate that cannot be applied is dropped with a warning (CPU fallback).
func (m *Model) NewInterpreter() (*Interpreter, error) { return m.newInterpreter(m.opts) }

// Close releases the model. Every interpreter of the model must be closed first.
func (m *Model) Close() {
	if m.m != nil {
		m.m.Delete()
		m.m = nil
	}
}

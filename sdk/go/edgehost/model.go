//go:build wasip1

package edgehost

import (
	"fmt"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
)

//go:wasmimport edgehost model_tensors
func hostModelTensors(name, nameLen, descs, capacity uint32) int32

//go:wasmimport edgehost run_model
func hostRunModel(name, nameLen, bufs, n uint32) int32

// maxModelTensors is how many tensors OpenModel asks for.
const maxModelTensors = 16

// Model is a model the plugin's config grants it (grants.models; ABI §5.9), with a
// 64-byte-aligned buffer per tensor in the plugin's own memory: the host binds the model's
// tensors to them for each Run (zero copy). Write Inputs, call Run, read Outputs. A Model
// is not safe for concurrent use (a plugin instance never is called concurrently).
type Model struct {
	Name            string
	Inputs, Outputs []*Tensor
	name            []byte
	table           []uint32
	blocks          [][]byte // keep the buffers alive (Go's GC does not move objects)
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// OpenModel describes model name (the host answers from its own metadata) and allocates
// its tensor buffers. It works in Init as well as in a request.
func OpenModel(name string) (*Model, error) {
	m := &Model{Name: name, name: []byte(name)}
	descs := make([]byte, maxModelTensors*abi.TensorDescSize)
	r := hostModelTensors(ptrOf(m.name), uint32(len(m.name)), ptrOf(descs), maxModelTensors)
	if r < 0 {
		return nil, &Error{abi.StatusInternal, fmt.Sprintf("model %s: model_tensors returned %d", name, r)}
	}
	nin, nout := int(r>>16), int(r&0xffff)
	if nin+nout > maxModelTensors {
		return nil, &Error{abi.StatusInternal, fmt.Sprintf("model %s has %d tensors, more than %d", name, nin+nout, maxModelTensors)}
	}
	ts := decodeDescs(descs, nin+nout)
	for _, t := range ts {
		view, block := aligned(cap(t.Data), abi.TensorAlign, addr)
		t.Data = view
		m.blocks = append(m.blocks, block)
	}
	m.Inputs, m.Outputs = ts[:nin], ts[nin:]
	m.table = bufTable(ts, addr)
	return m, nil
}

// Run runs the model once on its input buffers; the outputs are then in its output
// buffers. On a failure the host fails the request with its own message in any case.
func (m *Model) Run() error {
	if r := hostRunModel(ptrOf(m.name), uint32(len(m.name)), uint32(addr(u32bytes(m.table))), uint32(len(m.table)/2)); r != 0 {
		return &Error{abi.StatusInternal, fmt.Sprintf("model %s: run_model returned %d", m.Name, r)}
	}
	return nil
}

func u32bytes(v []uint32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

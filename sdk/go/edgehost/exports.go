//go:build wasip1

package edgehost

import (
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
)

//go:wasmimport edgehost log
func hostLog(level, ptr, n uint32)

//go:wasmimport edgehost set_error
func hostSetError(ptr, n uint32)

func ptrOf(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// Log writes a message to the host's log at level (abi.LogDebug … abi.LogError).
func Log(level int, msg string) {
	b := []byte(msg)
	hostLog(uint32(level), ptrOf(b), uint32(len(b)))
}

// Logf logs at info level.
func Logf(format string, a ...any) { Log(abi.LogInfo, sprintf(format, a...)) }

func status(err error) int32 {
	if err == nil {
		return int32(abi.StatusOK)
	}
	msg := []byte(err.Error())
	hostSetError(ptrOf(msg), uint32(len(msg)))
	var e *Error
	if errors.As(err, &e) {
		return int32(e.Status)
	}
	return int32(abi.StatusInternal)
}

// allocations keeps every block handed to the host alive (Go's GC does not move objects).
var allocations = map[uint32][]byte{}

//go:wasmexport edgehost_abi_version
func abiVersion() int32 { return abi.Version }

//go:wasmexport edgehost_alloc
func alloc(size, align uint32) uint32 {
	if align == 0 || align&(align-1) != 0 || align > 4096 {
		return 0
	}
	b := make([]byte, size+align)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	off := (align - p%align) % align
	allocations[p+off] = b
	return p + off
}

// edgehost_free drops the block; after a large one (the host frees each request's body
// when the request ends) it also runs the garbage collector, so that what the request left
// is collected now: the Go runtime grows memory rather than collect when it does not know
// the budget, and a later request would trap for want of memory a fresh instance has.
//
//go:wasmexport edgehost_free
func free(p uint32) {
	b, ok := allocations[p]
	delete(allocations, p)
	if ok && len(b) >= gcAfterFree {
		runtime.GC()
	}
}

// gcAfterFree is the size from which freeing a block collects garbage (a GC of a small
// heap costs about a millisecond; decoding a 1 MiB image costs far more).
const gcAfterFree = 1 << 20

func mem(p, n uint32) []byte {
	if n == 0 {
		return nil
	}
	// Guest pointers are offsets into linear memory, which starts at address 0.
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(p))), n)
}

//go:wasmexport edgehost_init
func initPlugin(p, n uint32) int32 {
	if plugin.Init == nil {
		return 0
	}
	return status(plugin.Init(append([]byte(nil), mem(p, n)...)))
}

func readCall(p uint32) (call []byte, tensors []Tensor) {
	le := binary.LittleEndian
	call = mem(p, abi.CallSize)
	nt, tp := le.Uint32(call[abi.CallOffNTensors:]), le.Uint32(call[abi.CallOffTensors:])
	table := mem(tp, nt*abi.TensorDescSize)
	tensors = make([]Tensor, nt)
	for i := range tensors {
		d := table[i*abi.TensorDescSize:]
		nd := int(le.Uint32(d[abi.TensorOffNDims:]))
		shape := make([]int, nd)
		for k := range shape {
			shape[k] = int(int32(le.Uint32(d[abi.TensorOffDims+4*k:])))
		}
		tensors[i] = Tensor{
			Name:      string(mem(le.Uint32(d[abi.TensorOffName:]), le.Uint32(d[abi.TensorOffNameLen:]))),
			DType:     abi.DType(le.Uint32(d[abi.TensorOffDType:])),
			Shape:     shape,
			Scale:     math.Float32frombits(le.Uint32(d[abi.TensorOffScale:])),
			ZeroPoint: int32(le.Uint32(d[abi.TensorOffZeroPoint:])),
			Data:      mem(le.Uint32(d[abi.TensorOffData:]), le.Uint32(d[abi.TensorOffBytes:])),
		}
	}
	return call, tensors
}

//go:wasmexport edgehost_pre
func pre(p uint32) int32 {
	if plugin.Pre == nil {
		return status(errors.New("this plugin has no pre handler"))
	}
	call, tensors := readCall(p)
	le := binary.LittleEndian
	req := &PreRequest{Input: mem(le.Uint32(call[abi.CallOffInput:]), le.Uint32(call[abi.CallOffInputLen:])), Tensors: tensors,
		hasCtx: le.Uint32(call[abi.CallOffFlags:])&abi.FlagContext != 0, Flags: le.Uint32(call[abi.CallOffFlags:])}
	if le.Uint32(call[abi.CallOffFlags:])&abi.FlagFrame != 0 { // ABI 1.3: the frame fields exist
		req.Frame = &Frame{Width: int(le.Uint32(call[abi.CallOffFrameWidth:])), Height: int(le.Uint32(call[abi.CallOffFrameHeight:])),
			Stride: int(le.Uint32(call[abi.CallOffFrameStride:])), Format: abi.PixelFormat(le.Uint32(call[abi.CallOffFrameFormat:]))}
	}
	if st := status(plugin.Pre(req)); st != 0 {
		return st
	}
	if req.SkipModel {
		le.PutUint32(call[abi.CallOffFlags:], le.Uint32(call[abi.CallOffFlags:])|abi.FlagSkipModel)
	}
	if req.hasCtx && len(req.context) > 0 {
		n := min(uint32(len(req.context)), le.Uint32(call[abi.CallOffContextCap:]))
		copy(mem(le.Uint32(call[abi.CallOffContext:]), n), req.context)
		le.PutUint32(call[abi.CallOffContextLen:], n)
	}
	return 0
}

// lastResult keeps the previous result alive until the next call.
var lastResult []byte

//go:wasmexport edgehost_post
func post(p uint32) int32 {
	if plugin.Post == nil {
		return status(errors.New("this plugin has no post handler"))
	}
	call, tensors := readCall(p)
	le := binary.LittleEndian
	req := &PostRequest{Tensors: tensors, Flags: le.Uint32(call[abi.CallOffFlags:])}
	if le.Uint32(call[abi.CallOffFlags:])&abi.FlagContext != 0 {
		req.Context = mem(le.Uint32(call[abi.CallOffContext:]), min(le.Uint32(call[abi.CallOffContextLen:]), le.Uint32(call[abi.CallOffContextCap:])))
	}
	if st := status(plugin.Post(req)); st != 0 {
		return st
	}
	lastResult = req.result
	le.PutUint32(call[abi.CallOffOutput:], ptrOf(req.result))
	le.PutUint32(call[abi.CallOffOutLen:], uint32(len(req.result)))
	return 0
}

package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/wasm"
	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// MaxMessage caps a log line or error message from a plugin.
const MaxMessage = 4096

// LogBudget is how many log lines one instance may write per call; the rest are dropped
// and counted.
const LogBudget = 64

func (r *Runtime) instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").Export(abi.ImportLog).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostSetError), []api.ValueType{i32, i32}, nil).
		WithParameterNames("ptr", "len").Export(abi.ImportSetError).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostFuel), nil, []api.ValueType{i32}).
		Export(wasm.FuelImport).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostMemoryFill), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("dst", "value", "n").Export(wasm.MemoryFillImport).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostMemoryCopy), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("dst", "src", "n").Export(wasm.MemoryCopyImport).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostModelTensors), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("name", "name_len", "descs", "cap").Export(abi.ImportModelTensors).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostRunModel), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("name", "name_len", "bufs", "n").Export(abi.ImportRunModel).
		Instantiate(ctx)
	return err
}

func (r *Runtime) caller(mod api.Module) *Instance {
	v, ok := r.instances.Load(mod)
	if !ok {
		return nil
	}
	return v.(*Instance)
}

// guestString reads a message from guest memory, cut at MaxMessage and sanitised. A pointer
// or length outside guest memory panics, which wazero turns into a trap of the calling guest.
func guestString(mod api.Module, ptr, n uint32) string {
	if n > MaxMessage {
		n = MaxMessage
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(&boundsError{what: "message", ptr: ptr, n: n, size: mod.Memory().Size()})
	}
	return Sanitize(string(b))
}

// Sanitize makes text a plugin wrote safe for log lines and error responses: control
// characters (newlines, ANSI escapes, C1 controls, DEL) become Go-style escapes (\n,
// \x1b, \u009b) and invalid UTF-8 becomes U+FFFD, so a plugin cannot forge or split
// host log lines or recolour a terminal.
func Sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError || r == 0x2028 || r == 0x2029 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r) // invalid UTF-8 decodes to, and is written as, U+FFFD
		}
	}
	return b.String()
}

// TailLines is how many of a call's last stdout/stderr lines a trap's error carries.
const TailLines = 8

// maxTailLine cuts each of those lines.
const maxTailLine = 512

// stdio receives an instance's stdout and stderr (WASI fd 1 and 2). Complete lines go to
// the host log, sanitised, under the same per-call budget as the log import, at debug level
// (info for stdout, warn for stderr with the stdout grant); the call's last TailLines lines
// are kept for a trap's error (a Rust panic prints its message to stderr). A line longer
// than MaxMessage is cut there.
type stdio struct {
	m              *Module
	inst           *Instance // set once the instance exists; output before that is dropped
	stdout, stderr stream
	tail           []string
	oom            bool // the call wrote a language runtime's out-of-memory message
}

// outOfMemoryLines start the messages language runtimes write when an allocation fails,
// just before they abort (a trap): Go's runtime, Rust's std.
var outOfMemoryLines = []string{"fatal error: out of memory", "runtime: out of memory", "memory allocation of "}

type stream struct {
	s       *stdio
	name    string
	partial []byte
}

func newStdio(m *Module) *stdio {
	o := &stdio{m: m}
	o.stdout = stream{s: o, name: "stdout"}
	o.stderr = stream{s: o, name: "stderr"}
	return o
}

// Write splits p into lines; it never fails, so the guest's write always succeeds.
func (w *stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := bytesIndexByte(p, '\n')
		if k < 0 {
			room := MaxMessage - len(w.partial)
			w.partial = append(w.partial, p[:min(len(p), max(room, 0))]...)
			break
		}
		if room := MaxMessage - len(w.partial); room > 0 {
			w.partial = append(w.partial, p[:min(k, room)]...)
		}
		w.emit()
		p = p[k+1:]
	}
	return n, nil
}

func bytesIndexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (w *stream) emit() {
	line := Sanitize(string(w.partial))
	w.partial = w.partial[:0]
	o := w.s
	if o.inst == nil {
		return
	}
	for _, p := range outOfMemoryLines {
		if strings.HasPrefix(line, p) && (p != "memory allocation of " || strings.HasSuffix(line, " failed")) {
			o.oom = true
		}
	}
	t := line
	if len(t) > maxTailLine {
		t = t[:maxTailLine] + "…"
	}
	o.tail = append(o.tail, w.name+": "+t)
	if len(o.tail) > TailLines {
		o.tail = o.tail[len(o.tail)-TailLines:]
	}
	inst := o.inst
	if inst.logLines >= LogBudget {
		inst.logDropped++
		return
	}
	inst.logLines++
	lv := hclog.Debug
	if inst.m.cfg.Grants.Stdout {
		lv = hclog.Info
		if w.name == "stderr" {
			lv = hclog.Warn
		}
	}
	inst.m.log.Log(lv, line, "stream", w.name)
}

// startCall forgets the previous call's lines.
func (o *stdio) startCall() {
	if o != nil {
		o.tail = o.tail[:0]
		o.oom = false
	}
}

// flush emits unterminated lines at the end of a call.
func (o *stdio) flush() {
	if o == nil {
		return
	}
	for _, w := range []*stream{&o.stdout, &o.stderr} {
		if len(w.partial) > 0 {
			w.emit()
		}
	}
}

// outOfMemory reports whether the call wrote a runtime's out-of-memory message.
func (o *stdio) outOfMemory() bool { return o != nil && o.oom }

// lastLines returns a copy of the call's last output lines.
func (o *stdio) lastLines() []string {
	if o == nil || len(o.tail) == 0 {
		return nil
	}
	return append([]string(nil), o.tail...)
}

func (r *Runtime) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	inst := r.caller(mod)
	if inst == nil || inst.logLines >= LogBudget {
		// Still bounds-checked (a bad pointer traps), but not copied or sanitised.
		if _, ok := mod.Memory().Read(ptr, min(n, MaxMessage)); !ok {
			panic(&boundsError{what: "message", ptr: ptr, n: n, size: mod.Memory().Size()})
		}
		if inst != nil {
			inst.logDropped++
		}
		return
	}
	msg := guestString(mod, ptr, n)
	inst.logLines++
	lv := hclog.Info
	switch level {
	case abi.LogDebug:
		lv = hclog.Debug
	case abi.LogWarn:
		lv = hclog.Warn
	case abi.LogError:
		lv = hclog.Error
	}
	inst.m.log.Log(lv, msg)
}

func (r *Runtime) hostSetError(ctx context.Context, mod api.Module, stack []uint64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	msg := guestString(mod, ptr, n)
	if inst := r.caller(mod); inst != nil {
		inst.errMsg = msg
	}
}

// hostFuel is called by instrumented guests every FuelRefill ticks: it traps the guest
// when its call is past the deadline and otherwise refills its fuel.
func (r *Runtime) hostFuel(ctx context.Context, mod api.Module, stack []uint64) {
	r.checkBudget(ctx, mod)
	stack[0] = wasm.FuelRefill
}

// checkBudget panics (which traps the guest) when the running call is past its deadline or
// its context has ended. A call on an instance has its deadline in the Instance; the start
// function, which runs inside InstantiateModule before there is an Instance, has it in ctx.
func (r *Runtime) checkBudget(ctx context.Context, mod api.Module) {
	inst := r.caller(mod)
	if inst == nil {
		if sb, ok := ctx.Value(startBudgetKey{}).(*startBudget); ok && time.Now().After(sb.deadline) {
			sb.timedOut = true
			panic(&TimeoutError{Plugin: sb.plugin, Func: "the start function", Budget: sb.budget})
		}
		if err := ctx.Err(); err != nil {
			panic(err)
		}
		return
	}
	if inst.spent() {
		inst.timedOut = true
		panic(&TimeoutError{Plugin: inst.m.Name(), Func: inst.calling, Budget: inst.m.cfg.Timeout})
	}
	if err := ctx.Err(); err != nil {
		// The request was cancelled (client gone, request_timeout): stop the guest too.
		inst.cancelled = err
		panic(err)
	}
}

// startBudget is the time budget of the start function, carried in the instantiation's ctx.
type startBudget struct {
	plugin   string
	budget   time.Duration
	deadline time.Time
	timedOut bool
}

type startBudgetKey struct{}

// bulkChunk is how many bytes a long memory.fill or memory.copy moves between deadline checks
// (about 0.1-0.3 ms on the 2-core test machine).
const bulkChunk = 1 << 20

// errOutOfBounds is what a bulk instruction outside memory traps with, as the instruction
// itself would.
var errOutOfBounds = errors.New("out of bounds memory access")

// hostMemoryFill is memory.fill for lengths over wasm.BulkInline: the rewrite sends them here
// so that the deadline is checked every bulkChunk bytes.
func (r *Runtime) hostMemoryFill(ctx context.Context, mod api.Module, stack []uint64) {
	d, v, n := uint32(stack[0]), byte(stack[1]), uint32(stack[2])
	mem := mod.Memory()
	if mem == nil || uint64(d)+uint64(n) > uint64(mem.Size()) {
		panic(errOutOfBounds)
	}
	buf, _ := mem.Read(d, n)
	for len(buf) > 0 {
		r.checkBudget(ctx, mod)
		c := buf[:min(len(buf), bulkChunk)]
		if v == 0 {
			clear(c)
		} else {
			c[0] = v
			for k := 1; k < len(c); k *= 2 {
				copy(c[k:], c[:k])
			}
		}
		buf = buf[len(c):]
	}
}

// hostMemoryCopy is memory.copy for lengths over wasm.BulkInline, in deadline-checked chunks;
// overlapping ranges copy as memmove does.
func (r *Runtime) hostMemoryCopy(ctx context.Context, mod api.Module, stack []uint64) {
	d, s, n := uint64(uint32(stack[0])), uint64(uint32(stack[1])), uint64(uint32(stack[2]))
	mem := mod.Memory()
	if mem == nil || d+n > uint64(mem.Size()) || s+n > uint64(mem.Size()) {
		panic(errOutOfBounds)
	}
	all, _ := mem.Read(0, mem.Size())
	for done := uint64(0); done < n; {
		r.checkBudget(ctx, mod)
		c := min(n-done, bulkChunk)
		off := done // forward when the destination is below the source
		if d > s {
			off = n - done - c // backward otherwise, so no byte is overwritten before it is read
		}
		copy(all[d+off:d+off+c], all[s+off:s+off+c])
		done += c
	}
}

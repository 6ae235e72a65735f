package plugin

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// Tensor describes a tensor a plugin reads or writes; the host takes it from its own model
// metadata, never from the guest.
type Tensor struct {
	Name      string
	DType     abi.DType
	Shape     []int
	Scale     float32
	ZeroPoint int32
	Bytes     int
}

type bound struct {
	Tensor
	data, name uint32
}

// Instance is one instantiated plugin. It is not safe for concurrent use. Slices it returns
// alias guest memory, which never moves: they stay valid until Close.
type Instance struct {
	m          *Module
	mod        api.Module
	mem        *mmapMemory
	alloc      api.Function
	free       api.Function
	pre, post  api.Function
	abiVersion api.Function
	stack      [2]uint64
	call       uint32 // call block
	reqCtx     uint32 // request-context buffer (abi.MaxContext bytes)
	reqCtxLen  uint32 // pre: the context length the last Pre wrote
	out        *stdio // the guest's stdout/stderr
	table      uint32 // tensor descriptor table
	tensors    []bound
	outTable   uint32 // a shared instance's post tensors (BindPost)
	outs       []bound
	input      uint32 // request buffer (pre)
	inputCap   uint32
	errMsg     string
	logLines   int
	logDropped int
	broken     error
	roots      []*os.Root
	deadline   time.Time       // of the running call, checked by hostFuel
	callCtx    context.Context // of the running call, for host functions that block
	calling    string          // name of the running export
	timedOut   bool            // hostFuel stopped the running call
	cancelled  error           // hostFuel stopped the running call because its context ended
	cpuStart   time.Duration   // thread CPU time at the start of the call (BudgetCPU)
	seqFlags   uint32          // abi.FlagSequence… for the next calls (SetSequenceFlags)
	skipModel  bool            // the last Pre set abi.FlagSkipModel
	modelErr   *ModelCallError // the running call's first failed model call (models.go)
}

// threadCPU is the CPU time consumed by the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// spent reports whether the running call has used up its budget.
func (i *Instance) spent() bool {
	if i.deadline.IsZero() {
		return false
	}
	if i.m.cfg.BudgetClock == BudgetCPU && threadCPU()-i.cpuStart > i.m.cfg.Timeout {
		return true
	}
	return time.Now().After(i.deadline)
}

// invoke runs f under the plugin's time budget: the instrumented guest calls hostFuel
// every wasm.FuelRefill ticks, which traps it once the deadline has passed.
func (i *Instance) invoke(ctx context.Context, name string, f api.Function, stack []uint64) error {
	if i.broken != nil {
		return &TrapError{Plugin: i.m.Name(), Func: name, Err: fmt.Errorf("instance is broken by an earlier trap: %w", i.broken)}
	}
	i.deadline, i.calling, i.timedOut, i.cancelled = time.Now().Add(i.m.cfg.Timeout), name, false, nil
	i.callCtx = ctx
	defer func() { i.callCtx = nil }()
	i.errMsg = ""
	i.modelErr = nil
	i.out.startCall()
	if i.m.cfg.BudgetClock == BudgetCPU {
		// The guest runs on this goroutine: pinned to its OS thread, that thread's CPU
		// clock measures the guest's own work, whatever else the machine runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		i.cpuStart = threadCPU()
		i.deadline = time.Now().Add(i.m.cfg.Timeout * CPUWallFactor)
	}
	err := f.CallWithStack(ctx, stack)
	i.deadline = time.Time{}
	i.out.flush()
	if err != nil {
		if i.cancelled != nil {
			// The guest was stopped mid-flight: discard the instance.
			i.broken = fmt.Errorf("plugin %s: %s stopped: %w", i.m.Name(), name, i.cancelled)
			return i.broken
		}
		if i.timedOut {
			te := &TimeoutError{Plugin: i.m.Name(), Func: name, Budget: i.m.cfg.Timeout}
			i.broken = te
			return te
		}
		return i.trap(name, err)
	}
	return nil
}

// moduleConfig applies the plugin's grants: by default no files, no environment, no
// arguments, a fixed fake clock, deterministic randomness and discarded stdio.
func (m *Module) moduleConfig(sl *sleeper, out *stdio) (wazero.ModuleConfig, []*os.Root, error) {
	g := m.cfg.Grants
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	var roots []*os.Root
	if len(g.Dirs) > 0 {
		fsc := wazero.NewFSConfig()
		for guest, host := range g.Dirs {
			r, err := os.OpenRoot(host)
			if err != nil {
				closeRoots(roots)
				return nil, nil, err
			}
			roots = append(roots, r)
			fsc = fsc.WithFSMount(r.FS(), guest)
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	for k, v := range g.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if g.Clock {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithNanosleep(sl.sleep)
	}
	if g.Random {
		cfg = cfg.WithRandSource(rand.Reader)
	}
	// stdout and stderr always reach the log, bounded (see stdio); the grant raises their
	// level from debug to info (stdout) and warn (stderr).
	cfg = cfg.WithStdout(&out.stdout).WithStderr(&out.stderr)
	return cfg, roots, nil
}

// sleeper is a granted clock's nanosleep (also behind poll_oneoff's clock subscriptions):
// a real sleep, cut at the running call's deadline, where it stops the guest as the fuel
// check would, and cut when the call's context ends (client gone, request_timeout), which
// stops the guest as a cancelled call. It runs on the goroutine of the guest call, like invoke.
type sleeper struct {
	inst *Instance    // set once the instance exists
	sb   *startBudget // the start function's budget, before that
}

func (s *sleeper) sleep(ns int64) {
	d := time.Duration(ns)
	var deadline time.Time
	switch {
	case s.inst != nil:
		deadline = s.inst.deadline
	case s.sb != nil:
		deadline = s.sb.deadline
	}
	var done <-chan struct{}
	if s.inst != nil && s.inst.callCtx != nil {
		done = s.inst.callCtx.Done()
	}
	hitDeadline := !deadline.IsZero() && time.Until(deadline) <= d
	if hitDeadline {
		d = time.Until(deadline)
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			err := s.inst.callCtx.Err()
			s.inst.cancelled = err
			panic(err)
		}
	}
	if !hitDeadline {
		return
	}
	if s.inst != nil {
		s.inst.timedOut = true
		panic(&TimeoutError{Plugin: s.inst.m.Name(), Func: s.inst.calling, Budget: s.inst.m.cfg.Timeout})
	}
	s.sb.timedOut = true
	panic(&TimeoutError{Plugin: s.sb.plugin, Func: "the start function", Budget: s.sb.budget})
}

func closeRoots(roots []*os.Root) {
	for _, r := range roots {
		r.Close()
	}
}

type recordingAllocator struct {
	mmapAllocator
	mem *mmapMemory
}

func (a *recordingAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	lm := a.mmapAllocator.Allocate(cap, max).(*mmapMemory)
	a.mem = lm
	return lm
}

// instantiate is InstantiateModule, with a failed guest memory reservation (wazero slices
// the nil buffer and panics before the module exists) returned as an error.
func (m *Module) instantiate(ctx context.Context, alloc *recordingAllocator, cfg wazero.ModuleConfig) (mod api.Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			if alloc.mem == nil || alloc.mem.err == nil {
				panic(r)
			}
			mod, err = nil, alloc.mem.err
		}
	}()
	return m.wrt.InstantiateModule(ctx, m.compiled, cfg)
}

// NewInstance instantiates the module, runs _initialize, checks the ABI version and calls
// edgehost_init with the plugin's params.
func (m *Module) NewInstance(ctx context.Context) (*Instance, error) {
	alloc := &recordingAllocator{mmapAllocator: mmapAllocator{budget: m.cfg.MemoryLimit, live: &m.rt.live, reg: &m.rt.mems}}
	ictx := experimental.WithMemoryAllocator(ctx, alloc)
	sb := &startBudget{plugin: m.Name(), budget: m.cfg.Timeout, deadline: time.Now().Add(m.cfg.Timeout)}
	sl := &sleeper{sb: sb}
	out := newStdio(m)
	cfg, roots, err := m.moduleConfig(sl, out)
	if err != nil {
		return nil, &LoadError{Path: m.Path, Err: fmt.Errorf("plugin %s: grants: %w", m.Name(), err)}
	}
	// The start function runs inside InstantiateModule, under the same time budget as
	// every other guest entry; checkBudget finds its deadline in the context.
	ictx = context.WithValue(ictx, startBudgetKey{}, sb)
	mod, err := m.instantiate(ictx, alloc, cfg)
	if err != nil {
		if alloc.mem != nil {
			alloc.mem.Free()
		}
		closeRoots(roots)
		if sb.timedOut {
			return nil, &LoadError{Path: m.Path, Err: &TimeoutError{Plugin: m.Name(), Func: "the start function", Budget: m.cfg.Timeout}}
		}
		return nil, &LoadError{Path: m.Path, Err: fmt.Errorf("plugin %s: instantiate: %w", m.Name(), err)}
	}
	i := &Instance{m: m, mod: mod, mem: alloc.mem, roots: roots, out: out,
		alloc: mod.ExportedFunction(abi.ExportAlloc), free: mod.ExportedFunction(abi.ExportFree),
		pre: mod.ExportedFunction(abi.ExportPre), post: mod.ExportedFunction(abi.ExportPost),
		abiVersion: mod.ExportedFunction(abi.ExportABIVersion)}
	m.rt.instances.Store(mod, i)
	sl.inst = i
	out.inst = i
	fail := func(err error) (*Instance, error) {
		i.Close(ctx)
		return nil, &LoadError{Path: m.Path, Err: err}
	}
	if f := mod.ExportedFunction(abi.ExportInitialize); f != nil {
		if err := i.invoke(ctx, "_initialize", f, i.stack[:]); err != nil {
			return fail(err)
		}
	}
	if err := i.invoke(ctx, abi.ExportABIVersion, mod.ExportedFunction(abi.ExportABIVersion), i.stack[:]); err != nil {
		return fail(err)
	}
	if v := int32(i.stack[0]); v != abi.Version {
		return fail(fmt.Errorf("plugin %s: ABI version %d is not supported (this host supports %d)", m.Name(), v, abi.Version))
	}
	if v := m.Manifest.ABI; v != abi.Version {
		return fail(fmt.Errorf("plugin %s: manifest ABI %d does not match", m.Name(), v))
	}
	p, err := i.Alloc(ctx, uint32(len(m.params)), 1)
	if err != nil {
		return fail(err)
	}
	b, _ := i.Bytes(p, uint32(len(m.params)))
	copy(b, m.params)
	if err := i.callStatus(ctx, abi.ExportInit, mod.ExportedFunction(abi.ExportInit), uint64(p), uint64(len(m.params))); err != nil {
		return fail(err)
	}
	i.Free(ctx, p)
	if i.call, err = i.Alloc(ctx, abi.CallSize, 8); err != nil {
		return fail(err)
	}
	if i.reqCtx, err = i.Alloc(ctx, abi.MaxContext, 8); err != nil {
		return fail(err)
	}
	return i, nil
}

// Module returns the plugin version this instance runs.
func (i *Instance) Module() *Module { return i.m }

// Broken is non-nil once the instance trapped; it must then be closed and replaced.
func (i *Instance) Broken() error { return i.broken }

// trap wraps a failed guest call; the instance may not be called again.
func (i *Instance) trap(fn string, err error) error {
	i.broken = err
	return &TrapError{Plugin: i.m.Name(), Func: fn, Err: err, Msg: i.errMsg, Output: i.out.lastLines(),
		OutOfMemory: i.out.outOfMemory(), Budget: i.m.cfg.MemoryLimit}
}

// reject is a call that returned ok but broke the ABI in what it handed back (a result
// outside memory or over the cap, no result, an oversized context): a plugin error, not a
// trap; the instance stays usable.
func (i *Instance) reject(fn string, format string, a ...any) error {
	return &StatusError{Plugin: i.m.Name(), Func: fn, Status: abi.StatusInternal, Msg: fmt.Sprintf(format, a...), Host: true}
}

func (i *Instance) callStatus(ctx context.Context, name string, f api.Function, args ...uint64) error {
	i.logLines, i.logDropped = 0, 0
	stack := i.stack[:]
	copy(stack, args)
	err := i.invoke(ctx, name, f, stack)
	if i.logDropped > 0 {
		i.m.log.Warn("plugin log lines dropped over budget", "dropped", i.logDropped, "call", name)
	}
	var trap *TrapError
	if me := i.modelErr; me != nil && !errors.As(err, &trap) {
		// A failed model call fails the plugin call, whatever the plugin made of it: a
		// plugin cannot answer as if a model it was refused had run.
		return me
	}
	if err != nil {
		return err
	}
	if st := abi.Status(int32(stack[0])); st != abi.StatusOK {
		return &StatusError{Plugin: i.m.Name(), Func: name, Status: st, Msg: i.errMsg, Budget: i.m.cfg.MemoryLimit}
	}
	return nil
}

// InputTooLargeError is a request body that the pre plugin cannot hold within its memory
// budget (its edgehost_alloc returned 0 for the input buffer).
type InputTooLargeError struct {
	Plugin string
	Size   uint64 // bytes of the body
	Budget uint64 // the plugin's memory_limit, bytes
}

func (e *InputTooLargeError) Error() string {
	return fmt.Sprintf("plugin %s: a request body of %d bytes does not fit its memory budget of %d MiB (memory_limit_mb): send a smaller input or raise the budget",
		e.Plugin, e.Size, e.Budget>>20)
}

// AllocError is edgehost_alloc returning 0 for a request body that fits the plugin's
// budget: the plugin's allocator failed, not the request (an error of the plugin's).
type AllocError struct {
	Plugin       string
	Size, Body   uint32 // the block asked for; the request body's bytes
	Free, Budget uint64 // budget bytes the memory could still grow by; the budget
}

func (e *AllocError) Error() string {
	return fmt.Sprintf("plugin %s: edgehost_alloc(%d) returned 0 for a %d-byte request body although %d MiB of its %d MiB budget were still free: the plugin's allocator failed",
		e.Plugin, e.Size, e.Body, e.Free>>20, e.Budget>>20)
}

// Alloc allocates size bytes aligned to align in guest memory through edgehost_alloc.
func (i *Instance) Alloc(ctx context.Context, size, align uint32) (uint32, error) {
	stack := i.stack[:]
	stack[0], stack[1] = uint64(size), uint64(align)
	if err := i.invoke(ctx, abi.ExportAlloc, i.alloc, stack); err != nil {
		return 0, err
	}
	p := uint32(stack[0])
	if p == 0 {
		return 0, fmt.Errorf("plugin %s: edgehost_alloc(%d, %d) failed: out of guest memory (budget %d bytes)", i.m.Name(), size, align, i.m.cfg.MemoryLimit)
	}
	if p%align != 0 || uint64(p)+uint64(size) > uint64(i.mod.Memory().Size()) {
		return 0, i.trap(abi.ExportAlloc, fmt.Errorf("edgehost_alloc(%d, %d) returned %d: misaligned or outside memory (%d bytes)", size, align, p, i.mod.Memory().Size()))
	}
	return p, nil
}

// Free releases guest memory from Alloc.
func (i *Instance) Free(ctx context.Context, p uint32) {
	if i.broken != nil || p == 0 {
		return
	}
	stack := i.stack[:]
	stack[0] = uint64(p)
	_ = i.invoke(ctx, abi.ExportFree, i.free, stack)
}

// MemorySize is the size of the guest's linear memory in bytes: the most it has needed so
// far, since memory never shrinks.
func (i *Instance) MemorySize() uint32 { return i.mod.Memory().Size() }

// Bytes returns n bytes of guest memory at p, bounds-checked.
func (i *Instance) Bytes(p, n uint32) ([]byte, bool) { return i.mod.Memory().Read(p, n) }

// Pointer returns the host address of guest offset p (for TFLite custom allocation).
func (i *Instance) Pointer(p uint32) unsafe.Pointer { return unsafe.Add(i.mem.base(), p) }

// Bind allocates, in guest memory, a 64-byte-aligned buffer for each tensor plus the
// descriptor table, once for the instance's life.
func (i *Instance) Bind(ctx context.Context, tensors []Tensor) error {
	if len(i.tensors) != 0 {
		return errors.New("plugin: instance already bound")
	}
	var err error
	i.table, i.tensors, err = i.bindList(ctx, tensors)
	return err
}

// BindPost is Bind for the post call's tensors of an instance that serves both calls of a
// request (a pipeline's shared_instance): Pre then sees the tensors of Bind, Post these.
func (i *Instance) BindPost(ctx context.Context, tensors []Tensor) error {
	if len(i.outs) != 0 {
		return errors.New("plugin: instance already bound for post")
	}
	var err error
	i.outTable, i.outs, err = i.bindList(ctx, tensors)
	return err
}

func (i *Instance) bindList(ctx context.Context, tensors []Tensor) (uint32, []bound, error) {
	table, err := i.Alloc(ctx, uint32(len(tensors)*abi.TensorDescSize), 8)
	if err != nil {
		return 0, nil, err
	}
	var list []bound
	for _, t := range tensors {
		if len(t.Shape) > abi.MaxDims {
			return 0, nil, fmt.Errorf("plugin: tensor %s has rank %d > %d", t.Name, len(t.Shape), abi.MaxDims)
		}
		b := bound{Tensor: t}
		if b.data, err = i.Alloc(ctx, uint32(t.Bytes), abi.TensorAlign); err != nil {
			return 0, nil, err
		}
		if b.name, err = i.Alloc(ctx, uint32(len(t.Name))+1, 1); err != nil {
			return 0, nil, err
		}
		nb, _ := i.Bytes(b.name, uint32(len(t.Name)))
		copy(nb, t.Name)
		list = append(list, b)
	}
	return table, list, nil
}

// TensorData returns bound tensor n's buffer in guest memory and its host address.
func (i *Instance) TensorData(n int) ([]byte, unsafe.Pointer) {
	t := i.tensors[n]
	b, _ := i.Bytes(t.data, uint32(t.Bytes))
	return b, i.Pointer(t.data)
}

// Frame is the geometry of a raw frame handed to a pre plugin (ABI 1.3, §5.7).
type Frame struct {
	Width, Height, Stride uint32
	Format                abi.PixelFormat
}

// PostTensorData is TensorData for the tensors of BindPost.
func (i *Instance) PostTensorData(n int) ([]byte, unsafe.Pointer) {
	t := i.outs[n]
	b, _ := i.Bytes(t.data, uint32(t.Bytes))
	return b, i.Pointer(t.data)
}

// writeCall rewrites the call block and the descriptor table before a call: post selects
// the tensors of BindPost (a shared instance); fr, when not nil, sets FlagFrame and the
// frame fields.
func (i *Instance) writeCall(input, inputLen, ctxLen uint32, post bool, fr *Frame) {
	le := binary.LittleEndian
	list, table := i.tensors, i.table
	if post && i.outs != nil {
		list, table = i.outs, i.outTable
	}
	tb, _ := i.Bytes(table, uint32(len(list)*abi.TensorDescSize))
	for n, t := range list {
		d := tb[n*abi.TensorDescSize : (n+1)*abi.TensorDescSize]
		clear(d)
		le.PutUint32(d[abi.TensorOffDType:], uint32(t.DType))
		le.PutUint32(d[abi.TensorOffNDims:], uint32(len(t.Shape)))
		for k, v := range t.Shape {
			le.PutUint32(d[abi.TensorOffDims+4*k:], uint32(int32(v)))
		}
		le.PutUint32(d[abi.TensorOffScale:], math.Float32bits(t.Scale))
		le.PutUint32(d[abi.TensorOffZeroPoint:], uint32(t.ZeroPoint))
		le.PutUint32(d[abi.TensorOffData:], t.data)
		le.PutUint32(d[abi.TensorOffBytes:], uint32(t.Bytes))
		le.PutUint32(d[abi.TensorOffName:], t.name)
		le.PutUint32(d[abi.TensorOffNameLen:], uint32(len(t.Name)))
	}
	c, _ := i.Bytes(i.call, abi.CallSize)
	clear(c)
	le.PutUint32(c[abi.CallOffABI:], abi.Version)
	le.PutUint32(c[abi.CallOffInput:], input)
	le.PutUint32(c[abi.CallOffInputLen:], inputLen)
	le.PutUint32(c[abi.CallOffNTensors:], uint32(len(list)))
	le.PutUint32(c[abi.CallOffTensors:], table)
	flags := uint32(abi.FlagContext) | i.seqFlags
	if fr != nil {
		flags |= abi.FlagFrame
		le.PutUint32(c[abi.CallOffFrameWidth:], fr.Width)
		le.PutUint32(c[abi.CallOffFrameHeight:], fr.Height)
		le.PutUint32(c[abi.CallOffFrameFormat:], uint32(fr.Format))
		le.PutUint32(c[abi.CallOffFrameStride:], fr.Stride)
	}
	le.PutUint32(c[abi.CallOffFlags:], flags)
	le.PutUint32(c[abi.CallOffContext:], i.reqCtx)
	le.PutUint32(c[abi.CallOffContextCap:], abi.MaxContext)
	le.PutUint32(c[abi.CallOffContextLen:], ctxLen)
}

// InputBuffer returns an n-byte buffer in guest memory for the next Pre's request bytes,
// growing the instance's request buffer through edgehost_alloc when needed. ReleaseInput
// frees it when the request ends.
func (i *Instance) InputBuffer(ctx context.Context, n uint32) ([]byte, error) {
	if n > i.inputCap || i.input == 0 {
		// The body's size rounded up to 64 KiB (not to a power of two, which made a 9.4 MB
		// body need a 16 MiB block): within a request, a buffer is replaced only by a larger
		// body.
		c := max(uint32(4096), uint32(min((uint64(n)+0xffff)&^0xffff, 1<<32-1<<16)))
		if i.input != 0 {
			i.Free(ctx, i.input)
			i.input, i.inputCap = 0, 0
		}
		p, err := i.Alloc(ctx, c, 8)
		if err != nil {
			var sterr *StatusError
			var trap *TrapError
			var te *TimeoutError
			if !errors.As(err, &sterr) && !errors.As(err, &trap) && !errors.As(err, &te) {
				// edgehost_alloc returned 0. If the memory could still grow by the block, the
				// input fits the budget and the plugin's allocator failed: its fault, not the
				// request's.
				if room := i.m.cfg.MemoryLimit - min(i.m.cfg.MemoryLimit, uint64(i.mod.Memory().Size())); uint64(c) <= room {
					return nil, &AllocError{Plugin: i.m.Name(), Size: c, Body: n, Free: room, Budget: i.m.cfg.MemoryLimit}
				}
				return nil, &InputTooLargeError{Plugin: i.m.Name(), Size: uint64(n), Budget: i.m.cfg.MemoryLimit}
			}
			return nil, err
		}
		i.input, i.inputCap = p, c
	}
	b, _ := i.Bytes(i.input, n)
	return b, nil
}

// ReleaseInput frees the request buffer through edgehost_free, so that a request leaves
// nothing of its own in guest memory when it ends, whatever its outcome: a buffer kept for
// the next request held the largest body ever sent (up to the server's body limit) for the
// instance's life, and the requests after one large body then failed for want of the
// memory a fresh instance has (issue 24). It runs even when ctx has ended (the free is
// short and under the plugin's time budget); on a broken instance it does nothing.
func (i *Instance) ReleaseInput(ctx context.Context) {
	if i.input == 0 {
		return
	}
	i.Free(context.WithoutCancel(ctx), i.input)
	i.input, i.inputCap = 0, 0
}

// SetSequenceFlags sets the sequence bits (abi.FlagSequence, abi.FlagSeqStart,
// abi.FlagSeqEnd; ABI.md §5.8) that the following Pre and Post calls carry in the call
// block's flags, until set again; 0 (the default) for a request outside a sequence.
// abi.FlagSkipModel may be set too, for a Post after a Pre that asked for it.
func (i *Instance) SetSequenceFlags(f uint32) {
	i.seqFlags = f & (abi.FlagSequence | abi.FlagSeqStart | abi.FlagSeqEnd | abi.FlagSkipModel)
}

// SkipModel reports whether the last Pre set abi.FlagSkipModel in the call block: the
// request gives the model no new input (ABI.md §5.8).
func (i *Instance) SkipModel() bool { return i.skipModel }

// Pre runs edgehost_pre on the first n bytes of the InputBuffer.
func (i *Instance) Pre(ctx context.Context, n uint32) error { return i.PreFrame(ctx, n, nil) }

// PreFrame is Pre for input that is a raw frame of geometry fr (nil: encoded bytes, as Pre).
// The plugin's manifest must list fr's format in "frames" (ABI.md §5.7): a plugin that does
// not is refused with a FrameError before it is called, never handed pixels it would read
// as an encoded image.
func (i *Instance) PreFrame(ctx context.Context, n uint32, fr *Frame) error {
	if i.pre == nil {
		return fmt.Errorf("plugin %s is not a pre plugin", i.m.Name())
	}
	if fr != nil {
		if err := CheckFrame(i.m.Manifest, fr, n); err != nil {
			return err
		}
	}
	i.writeCall(i.input, n, 0, false, fr)
	i.reqCtxLen, i.skipModel = 0, false
	if err := i.callStatus(ctx, abi.ExportPre, i.pre, uint64(i.call)); err != nil {
		return err
	}
	c, _ := i.Bytes(i.call, abi.CallSize)
	i.skipModel = binary.LittleEndian.Uint32(c[abi.CallOffFlags:])&abi.FlagSkipModel != 0
	if n := binary.LittleEndian.Uint32(c[abi.CallOffContextLen:]); n > abi.MaxContext {
		return i.reject(abi.ExportPre, "request context of %d bytes exceeds the context buffer of %d bytes (call block context_cap)", n, abi.MaxContext)
	} else {
		i.reqCtxLen = n
	}
	return nil
}

// Context returns the request context the last Pre wrote (ABI.md §5.6): it aliases guest
// memory and stays valid until the next call on the instance.
func (i *Instance) Context() []byte {
	b, _ := i.Bytes(i.reqCtx, i.reqCtxLen)
	return b
}

// MaxResult caps the size of a post plugin's result.
const MaxResult = 16 << 20

// Post runs edgehost_post and returns the result, which aliases guest memory and stays
// valid until the next call on the instance.
// reqCtx is the request context from the pre instance (at most abi.MaxContext bytes), copied
// into this instance's context buffer before the call.
func (i *Instance) Post(ctx context.Context, reqCtx []byte) ([]byte, error) {
	if i.post == nil {
		return nil, fmt.Errorf("plugin %s is not a post plugin", i.m.Name())
	}
	if len(reqCtx) > abi.MaxContext {
		return nil, fmt.Errorf("plugin %s: request context of %d bytes exceeds %d", i.m.Name(), len(reqCtx), abi.MaxContext)
	}
	cb, _ := i.Bytes(i.reqCtx, abi.MaxContext)
	copy(cb, reqCtx) // a shared instance's own context: the same bytes, a no-op move
	i.writeCall(0, 0, uint32(len(reqCtx)), true, nil)
	if err := i.callStatus(ctx, abi.ExportPost, i.post, uint64(i.call)); err != nil {
		return nil, err
	}
	c, _ := i.Bytes(i.call, abi.CallSize)
	p, n := binary.LittleEndian.Uint32(c[abi.CallOffOutput:]), binary.LittleEndian.Uint32(c[abi.CallOffOutLen:])
	if p == 0 && n == 0 {
		return nil, i.reject(abi.ExportPost, "returned ok but set no result (output and output_len are 0 in the call block): set the result before returning (eh_set_output, SetResult, set_output), or return a status and an error message")
	}
	if n > MaxResult {
		return nil, i.reject(abi.ExportPost, "result of %d bytes exceeds the cap of %d bytes", n, MaxResult)
	}
	b, ok := i.Bytes(p, n)
	if !ok {
		return nil, i.reject(abi.ExportPost, "%v", &boundsError{what: "result", ptr: p, n: n, size: i.mod.Memory().Size()})
	}
	return b, nil
}

// FrameError is a raw frame the host refuses to hand to a pre plugin: the plugin does not
// declare the frame's pixel format in its manifest (ABI 1.3 §5.7), or the frame's geometry
// does not match its size.
type FrameError struct{ Plugin, Msg string }

func (e *FrameError) Error() string { return fmt.Sprintf("pre plugin %s: %s", e.Plugin, e.Msg) }

// CheckFrame checks that a pre plugin with manifest m takes raw frames like fr, of n bytes.
func CheckFrame(m abi.Manifest, fr *Frame, n uint32) error {
	name := m.Name + "@" + m.Version
	bpp := uint64(fr.Format.BytesPerPixel())
	switch {
	case bpp == 0:
		return &FrameError{Plugin: name, Msg: fmt.Sprintf("unknown pixel format code %d", fr.Format)}
	case !m.TakesFrames(fr.Format):
		return &FrameError{Plugin: name, Msg: fmt.Sprintf("does not take raw %s frames: its manifest lists %q in \"frames\" (ABI 1.3, §5.7); a stream source with ffmpeg needs a pre plugin that declares the format", fr.Format, m.Frames)}
	case fr.Width == 0 || fr.Height == 0 || uint64(fr.Stride) < uint64(fr.Width)*bpp || uint64(fr.Stride)*uint64(fr.Height) != uint64(n):
		return &FrameError{Plugin: name, Msg: fmt.Sprintf("frame %dx%d stride %d (%s) does not match its %d bytes", fr.Width, fr.Height, fr.Stride, fr.Format, n)}
	}
	return nil
}

type boundsError struct {
	what   string
	ptr, n uint32
	size   uint32
}

func (e *boundsError) Error() string {
	return fmt.Sprintf("%s [%d, +%d) lies outside guest memory (%d bytes)", e.what, e.ptr, e.n, e.size)
}

// Close closes the instance and unmaps its memory. No call may be running on it and
// nothing (TFLite) may still point into its memory.
func (i *Instance) Close(ctx context.Context) {
	if i.mod == nil {
		return
	}
	i.m.rt.instances.Delete(i.mod)
	_ = i.mod.Close(ctx)
	i.mod = nil
	closeRoots(i.roots)
	i.roots = nil
}

// ABIVersion calls edgehost_abi_version: the cheapest full host→guest call, with the time
// budget armed (used to measure call overhead).
func (i *Instance) ABIVersion(ctx context.Context) (int32, error) {
	stack := i.stack[:]
	if err := i.invoke(ctx, abi.ExportABIVersion, i.abiVersion, stack); err != nil {
		return 0, err
	}
	return int32(stack[0]), nil
}

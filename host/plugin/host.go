package plugin

import (
	"context"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero/api"
)

// MaxMessage caps a log line or error message from a plugin.
const MaxMessage = 4096

// LogBudget is how many log lines one instance may write per call; the rest are dropped
// and counted.
const LogBudget = 64

func (r *Runtime) instantiateHost(ctx context.Context) error {
	i32 := api.ValueTypeI32
	_, err := r.rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").Export(abi.ImportLog).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostSetError), []api.ValueType{i32, i32}, nil).
		WithParameterNames("ptr", "len").Export(abi.ImportSetError).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(r.hostFuel), nil, []api.ValueType{i32}).
		Export(FuelImport).
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

// guestString reads a message from guest memory, cut at MaxMessage. A pointer or length
// outside guest memory panics, which wazero turns into a trap of the calling guest.
func guestString(mod api.Module, ptr, n uint32) string {
	if n > MaxMessage {
		n = MaxMessage
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(&boundsError{what: "message", ptr: ptr, n: n, size: mod.Memory().Size()})
	}
	return string(b)
}

func (r *Runtime) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	inst := r.caller(mod)
	msg := guestString(mod, ptr, n)
	if inst == nil {
		return
	}
	if inst.logLines >= LogBudget {
		inst.logDropped++
		return
	}
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
	inst := r.caller(mod)
	if inst != nil && !inst.deadline.IsZero() && time.Now().After(inst.deadline) {
		inst.timedOut = true
		panic(&TimeoutError{Plugin: inst.m.Name(), Func: inst.calling, Budget: inst.m.cfg.Timeout})
	}
	if err := ctx.Err(); err != nil && inst != nil {
		// The request was cancelled (client gone, request_timeout): stop the guest too.
		inst.cancelled = err
		panic(err)
	}
	stack[0] = FuelRefill
}

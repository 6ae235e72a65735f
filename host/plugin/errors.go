package plugin

import (
	"fmt"
	"strings"
	"time"

	"github.com/edgehost/edgehost/abi"
)

// LoadError says why a plugin file could not be loaded or validated.
type LoadError struct {
	Path string
	Err  error
}

func (e *LoadError) Error() string { return fmt.Sprintf("plugin %s: %v", e.Path, e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// StatusError is a plugin call that returned a non-zero status, with the plugin's message.
type StatusError struct {
	Plugin string // name@version
	Func   string
	Status abi.Status
	Msg    string
	// Budget is the plugin's memory budget in bytes, named in the message of a too_large
	// status (the plugin does not know it).
	Budget uint64
	// Host is set when the call returned ok but the host rejected what it handed back
	// (no result, a result outside memory or over the cap, an oversized context).
	Host bool
}

func (e *StatusError) Error() string {
	if e.Host {
		return fmt.Sprintf("plugin %s: %s broke the ABI: %s", e.Plugin, e.Func, e.Msg)
	}
	msg := e.Msg
	if msg == "" {
		msg = "(the plugin set no error message)"
	}
	if e.Status == abi.StatusTooLarge {
		return fmt.Sprintf("plugin %s: %s returned status %d (%s): %s: over the plugin's memory budget of %d MiB (memory_limit_mb): send a smaller input or raise the budget",
			e.Plugin, e.Func, e.Status, statusName(e.Status), msg, e.Budget>>20)
	}
	return fmt.Sprintf("plugin %s: %s returned status %d (%s): %s", e.Plugin, e.Func, e.Status, statusName(e.Status), msg)
}

func statusName(s abi.Status) string {
	switch s {
	case abi.StatusBadInput:
		return "bad_input"
	case abi.StatusInternal:
		return "internal"
	case abi.StatusUnsupported:
		return "unsupported"
	case abi.StatusBadParams:
		return "bad_params"
	case abi.StatusTooLarge:
		return "too_large"
	}
	return "unknown"
}

// TrapError is a plugin call that trapped (including an exceeded budget) or broke the ABI
// (an out-of-bounds pointer, an oversized result). The instance is discarded.
type TrapError struct {
	Plugin string // name@version
	Func   string
	Err    error // wazero's error, with the guest stack trace
	// Msg is the message the guest set with set_error before it trapped (the Rust SDK's
	// panic hook sets the panic message); Output is the last lines it wrote to stdout or
	// stderr during the call.
	Msg    string
	Output []string
	// OutOfMemory is set when the guest wrote its runtime's out-of-memory message before it
	// trapped (Go's "fatal error: out of memory", Rust's "memory allocation of N bytes
	// failed"): the input needed more than the memory budget, Budget bytes. The host answers
	// such a trap as too_large (413), not as a plugin fault.
	OutOfMemory bool
	Budget      uint64
}

// Error is one line: the guest stack trace's frames are joined with " | ", and anything a
// module's name section could smuggle into it is escaped (see Sanitize).
func (e *TrapError) Error() string {
	lines := strings.Split(e.Err.Error(), "\n")
	for k, l := range lines {
		lines[k] = strings.TrimSpace(l)
	}
	s := fmt.Sprintf("plugin %s: %s trapped: ", e.Plugin, e.Func)
	if e.OutOfMemory {
		s = fmt.Sprintf("plugin %s: %s ran out of the plugin's memory budget of %d MiB (memory_limit_mb) on this input: send a smaller input or raise the budget; it trapped: ",
			e.Plugin, e.Func, e.Budget>>20)
	}
	if e.Msg != "" {
		// What the guest said before it trapped (a Rust panic's message) reads first.
		s += "plugin error: " + e.Msg + "; "
	}
	s += Sanitize(strings.Join(lines, " | "))
	if len(e.Output) > 0 {
		s += "; last output: " + strings.Join(e.Output, " | ")
	}
	return s
}
func (e *TrapError) Unwrap() error { return e.Err }

// TimeoutError is a plugin call stopped because it exceeded its time budget. The instance
// is discarded.
type TimeoutError struct {
	Plugin string // name@version
	Func   string
	Budget time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("plugin %s: %s exceeded its time budget of %v and was stopped", e.Plugin, e.Func, e.Budget)
}

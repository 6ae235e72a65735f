package plugin

import (
	"fmt"
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
}

func (e *StatusError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = "(the plugin set no error message)"
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
	}
	return "unknown"
}

// TrapError is a plugin call that trapped (including an exceeded budget) or broke the ABI
// (an out-of-bounds pointer, an oversized result). The instance is discarded.
type TrapError struct {
	Plugin string // name@version
	Func   string
	Err    error // wazero's error, with the guest stack trace
}

// Error is one line: the guest stack trace's line breaks, and anything a module's name
// section could smuggle into it, are escaped (see Sanitize).
func (e *TrapError) Error() string {
	return fmt.Sprintf("plugin %s: %s trapped: %s", e.Plugin, e.Func, Sanitize(e.Err.Error()))
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

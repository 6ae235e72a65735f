package edgehost

import (
	"fmt"

	"github.com/edgehost/edgehost/abi"
)

// Error is an error with an ABI status. Return one from a handler to choose the status;
// any other error is reported as abi.StatusInternal.
type Error struct {
	Status abi.Status
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// BadInput reports malformed request data (HTTP 400).
func BadInput(format string, a ...any) error {
	return &Error{abi.StatusBadInput, fmt.Sprintf(format, a...)}
}

// Unsupported reports well-formed input the plugin does not handle (HTTP 415).
func Unsupported(format string, a ...any) error {
	return &Error{abi.StatusUnsupported, fmt.Sprintf(format, a...)}
}

// TooLarge reports well-formed input that needs more memory than the plugin's budget
// (HTTP 413; the host adds the budget to the message).
func TooLarge(format string, a ...any) error {
	return &Error{abi.StatusTooLarge, fmt.Sprintf(format, a...)}
}

// BadParams reports invalid plugin parameters from init.
func BadParams(format string, a ...any) error {
	return &Error{abi.StatusBadParams, fmt.Sprintf(format, a...)}
}

package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// Error classes, as reported in JSON errors and the errors metric.
const (
	ClassBadInput      = "bad_input"
	ClassNotFound      = "not_found"
	ClassTooLarge      = "too_large"
	ClassUnsupported   = "unsupported"
	ClassOverloaded    = "overloaded"
	ClassPluginTrap    = "plugin_trap"
	ClassPluginError   = "plugin_error"
	ClassTimeout       = "timeout"
	ClassPluginTimeout = "plugin_timeout"
	ClassInternal      = "internal"
)

// badRequest is an error in the request itself, found by the server.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, a ...any) error { return &badRequest{msg: sprintf(format, a...)} }

// classify is the one table that maps errors to HTTP statuses and error classes.
func classify(err error) (int, string) {
	var (
		br      *badRequest
		pbr     *pipeline.BadRequestError
		se      *plugin.StatusError
		trap    *plugin.TrapError
		tooBig  *http.MaxBytesError
		timeout *plugin.TimeoutError
	)
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, ClassTooLarge
	case errors.As(err, &br), errors.As(err, &pbr):
		return http.StatusBadRequest, ClassBadInput
	case errors.Is(err, engine.ErrNotFound):
		return http.StatusNotFound, ClassNotFound
	case errors.Is(err, pipeline.ErrOverloaded):
		return http.StatusServiceUnavailable, ClassOverloaded
	case errors.As(err, &timeout):
		return http.StatusInternalServerError, ClassPluginTimeout
	case errors.As(err, &trap):
		return http.StatusInternalServerError, ClassPluginTrap
	case errors.As(err, &se):
		switch se.Status {
		case abi.StatusBadInput:
			return http.StatusBadRequest, ClassBadInput
		case abi.StatusUnsupported:
			return http.StatusUnsupportedMediaType, ClassUnsupported
		}
		return http.StatusInternalServerError, ClassPluginError
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, ClassTimeout
	case errors.Is(err, tflite.ErrBadModel):
		return http.StatusInternalServerError, ClassInternal
	}
	return http.StatusInternalServerError, ClassInternal
}

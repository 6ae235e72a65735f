package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"google.golang.org/grpc/codes"
)

// Error classes, as reported in JSON errors and the errors metric.
const (
	ClassBadInput    = "bad_input"
	ClassNotFound    = "not_found"
	ClassTooLarge    = "too_large"
	ClassUnsupported = "unsupported"
	ClassOverloaded  = "overloaded"
	// A pipeline that serve is still building at start (engine.ErrStarting).
	ClassStarting      = "starting"
	ClassPluginTrap    = "plugin_trap"
	ClassPluginError   = "plugin_error"
	ClassTimeout       = "timeout"
	ClassPluginTimeout = "plugin_timeout"
	ClassCanceled      = "canceled"
	ClassInternal      = "internal"
	ClassUnauthorized  = "unauthorized"
	ClassForbidden     = "forbidden"
	// A request for a sequence that is not live, without sequence_start (Triton answers
	// INVALID_ARGUMENT too).
	ClassUnknownSequence = "unknown_sequence"
	// A sequence start past the pipeline's sequences.max: the client may retry later.
	ClassTooManySequences = "too_many_sequences"
)

// errorTable is the one table of what each error class answers: its HTTP status and its
// gRPC code (the KServe v2 gRPC front end, host/grpcserver, uses the same classes).
var errorTable = map[string]struct {
	http int
	grpc codes.Code
}{
	ClassBadInput:      {http.StatusBadRequest, codes.InvalidArgument},
	ClassNotFound:      {http.StatusNotFound, codes.NotFound},
	ClassTooLarge:      {http.StatusRequestEntityTooLarge, codes.ResourceExhausted},
	ClassUnsupported:   {http.StatusUnsupportedMediaType, codes.InvalidArgument},
	ClassOverloaded:    {http.StatusServiceUnavailable, codes.Unavailable},
	ClassStarting:      {http.StatusServiceUnavailable, codes.Unavailable},
	ClassPluginTrap:    {http.StatusInternalServerError, codes.Internal},
	ClassPluginError:   {http.StatusInternalServerError, codes.Internal},
	ClassPluginTimeout: {http.StatusInternalServerError, codes.Internal},
	ClassTimeout:       {http.StatusGatewayTimeout, codes.DeadlineExceeded},
	// The client went away (closed the connection, cancelled the call) before the answer:
	// it never sees one; 499 is nginx's "client closed request", for the metrics and logs.
	ClassCanceled: {499, codes.Canceled},
	ClassInternal: {http.StatusInternalServerError, codes.Internal},
	// No valid token (server.tokens), or a token without the route's scope.
	ClassUnauthorized: {http.StatusUnauthorized, codes.Unauthenticated},
	ClassForbidden:    {http.StatusForbidden, codes.PermissionDenied},
	// Sequences (pipeline.Sequence).
	ClassUnknownSequence:  {http.StatusBadRequest, codes.InvalidArgument},
	ClassTooManySequences: {http.StatusTooManyRequests, codes.ResourceExhausted},
}

// Classify returns the class of err and, from the one error table, the HTTP status and the
// gRPC code it is answered with.
func Classify(err error) (class string, httpStatus int, grpcCode codes.Code) {
	class = classOf(err)
	row := errorTable[class]
	return class, row.http, row.grpc
}

// BadInput returns an error of class bad_input (HTTP 400, gRPC InvalidArgument) whose
// message is the formatted text.
func BadInput(format string, a ...any) error { return badf(format, a...) }

// badRequest is an error in the request itself, found by the server.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, a ...any) error { return &badRequest{msg: sprintf(format, a...)} }

// classify maps err to its HTTP status and error class.
func classify(err error) (int, string) {
	class, status, _ := Classify(err)
	return status, class
}

// classOf sorts errors into classes; errorTable says what each class answers.
func classOf(err error) string {
	var (
		br      *badRequest
		pbr     *pipeline.BadRequestError
		se      *plugin.StatusError
		trap    *plugin.TrapError
		tooBig  *http.MaxBytesError
		noRoom  *plugin.InputTooLargeError
		timeout *plugin.TimeoutError
		alloc   *plugin.AllocError
		seq     *pipeline.SequenceError
		mcall   *plugin.ModelCallError
	)
	switch {
	case errors.Is(err, ErrUnauthorized):
		return ClassUnauthorized
	case errors.Is(err, ErrForbidden):
		return ClassForbidden
	case errors.As(err, &tooBig), errors.As(err, &noRoom):
		return ClassTooLarge
	case errors.As(err, &br), errors.As(err, &pbr):
		return ClassBadInput
	case errors.Is(err, engine.ErrNotFound):
		return ClassNotFound
	case errors.Is(err, engine.ErrStarting):
		return ClassStarting
	case errors.Is(err, pipeline.ErrOverloaded), errors.Is(err, plugin.ErrModelBusy):
		return ClassOverloaded
	case errors.As(err, &seq):
		return ClassUnknownSequence
	case errors.Is(err, pipeline.ErrTooManySequences):
		return ClassTooManySequences
	case errors.As(err, &mcall) && errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout // a model call after the request's deadline (or the plugin's budget)
	case errors.As(err, &mcall) && errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.As(err, &mcall):
		return ClassPluginError // not granted, past max_model_calls, bad buffers, inference failed
	case errors.As(err, &timeout):
		return ClassPluginTimeout
	case errors.As(err, &alloc):
		return ClassPluginError
	case errors.As(err, &trap) && trap.OutOfMemory:
		return ClassTooLarge // the input needs more than the budget
	case errors.As(err, &trap):
		return ClassPluginTrap
	case errors.As(err, &se):
		switch se.Status {
		case abi.StatusBadInput:
			return ClassBadInput
		case abi.StatusUnsupported:
			return ClassUnsupported
		case abi.StatusTooLarge:
			return ClassTooLarge
		}
		return ClassPluginError
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	}
	return ClassInternal
}

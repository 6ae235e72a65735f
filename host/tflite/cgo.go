package tflite

/*
#cgo CFLAGS: -I${SRCDIR}/include -I${SRCDIR}/../../.deps/tflite/include -O2
#cgo LDFLAGS: -ltensorflowlite_c -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"unsafe"

	gotflite "github.com/mattn/go-tflite"
)

// rawInterpreter returns the TfLiteInterpreter* that go-tflite v1.0.1 wraps. Its
// Interpreter and InterpreterOptions types are structs of exactly one pointer field;
// TestRawPointers checks this against the library, and go.mod pins the version.
func rawInterpreter(i *gotflite.Interpreter) *C.TfLiteInterpreter {
	return *(**C.TfLiteInterpreter)(unsafe.Pointer(i))
}

func rawOptions(o *gotflite.InterpreterOptions) *C.TfLiteInterpreterOptions {
	return *(**C.TfLiteInterpreterOptions)(unsafe.Pointer(o))
}

// cDelegate adapts a C TfLiteDelegate* to go-tflite's delegates.Delegater.
type cDelegate struct{ p *C.TfLiteDelegate }

func (d cDelegate) Ptr() unsafe.Pointer { return unsafe.Pointer(d.p) }
func (d cDelegate) Delete()             {}

package tflite

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import "errors"

// XNNPACK delegate flags (TFLITE_XNNPACK_DELEGATE_FLAG_*): quantized kernels, and the
// mask of every flag a release has defined so far (up to 0x400).
const (
	xnnQS8        = 0x1
	xnnQU8        = 0x2
	xnnKnownFlags = 0x7ff
)

// xnnReadBack is what the shim wrote into the XNNPACK options for one thread count and
// force setting, and the flags a delegate built from them reports.
type xnnReadBack struct {
	Threads         int32
	Flags           uint32
	SmallABI        bool   // the library returns its default options in registers (before 2.10)
	DelegateFlags   uint32 // TfLiteXNNPackDelegateGetFlags of a delegate built the same way
	DelegateReports bool   // the library exports TfLiteXNNPackDelegateGetFlags
}

// xnnpackOptions reads back the options eh_xnnpack_create passes to the library (tests).
func xnnpackOptions(threads int, force bool) (xnnReadBack, error) {
	f := C.int(0)
	if force {
		f = 1
	}
	buf := C.malloc(C.EH_XNN_OPTIONS_MAX)
	defer C.free(buf)
	var th C.int32_t
	var fl C.uint32_t
	if C.eh_xnnpack_options(C.int(threads), f, buf, &th, &fl) != 0 {
		return xnnReadBack{}, errors.New("the TFLite library has no TfLiteXNNPackDelegateOptionsDefault")
	}
	r := xnnReadBack{Threads: int32(th), Flags: uint32(fl), SmallABI: C.eh_xnnpack_small_abi() != 0}
	d := C.eh_xnnpack_create(C.int(threads), f)
	if d == nil {
		return r, errors.New("TfLiteXNNPackDelegateCreate failed, or the delegate's flags differ from the options")
	}
	defer C.eh_xnnpack_delete(d)
	var got C.uint32_t
	if C.eh_xnnpack_flags(d, &got) == 0 {
		r.DelegateFlags, r.DelegateReports = uint32(got), true
	}
	return r, nil
}

package tflite

/*
#include "shim.h"
*/
import "C"

import "fmt"

// Capabilities describes what the loaded TFLite C library can do.
type Capabilities struct {
	Version          string // TfLiteVersion(), e.g. "2.17.1"
	XNNPACK          bool   // the XNNPACK delegate is built in
	CustomAllocation bool   // TfLiteInterpreterSetCustomAllocationForTensor: zero-copy tensors
}

// Probe reports the capabilities of the TFLite library the process loaded.
func Probe() Capabilities {
	return Capabilities{
		Version:          C.GoString(C.TfLiteVersion()),
		XNNPACK:          C.eh_has_xnnpack() != 0,
		CustomAllocation: C.eh_has_custom_allocation() != 0 && C.eh_has_tensor_index() != 0,
	}
}

func (c Capabilities) String() string {
	return fmt.Sprintf("tflite %s (xnnpack=%v custom_allocation=%v)", c.Version, c.XNNPACK, c.CustomAllocation)
}

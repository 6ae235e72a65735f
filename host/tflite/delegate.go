package tflite

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// ExternalOptions names a vendor delegate shared library that implements TFLite's
// external-delegate plugin interface (tflite_plugin_create_delegate /
// tflite_plugin_destroy_delegate), as the Edge TPU runtime does, with its options.
type ExternalOptions struct {
	Path    string
	Options map[string]string
}

// loadExternal dlopens the library and creates one delegate instance for one interpreter.
// The result is C memory owned by the caller (eh_external_unload, then free).
func loadExternal(o *ExternalOptions) (*C.eh_external, error) {
	if o.Path == "" {
		return nil, errors.New("empty delegate path")
	}
	keys := make([]string, 0, len(o.Options))
	for k := range o.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := len(keys)
	ck := (**C.char)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof(uintptr(0)))))
	cv := (**C.char)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof(uintptr(0)))))
	ks, vs := unsafe.Slice(ck, n+1), unsafe.Slice(cv, n+1)
	for j, k := range keys {
		ks[j], vs[j] = C.CString(k), C.CString(o.Options[k])
	}
	defer func() {
		for j := 0; j < n; j++ {
			C.free(unsafe.Pointer(ks[j]))
			C.free(unsafe.Pointer(vs[j]))
		}
		C.free(unsafe.Pointer(ck))
		C.free(unsafe.Pointer(cv))
	}()
	path := C.CString(o.Path)
	defer C.free(unsafe.Pointer(path))
	var errb [512]C.char
	ext := (*C.eh_external)(C.calloc(1, C.sizeof_eh_external))
	if C.eh_external_load(path, ck, cv, C.size_t(n), ext, &errb[0], C.size_t(len(errb))) != 0 {
		C.free(unsafe.Pointer(ext))
		return nil, fmt.Errorf("%s: %s", o.Path, C.GoString(&errb[0]))
	}
	return ext, nil
}

package tflite

/*
#cgo LDFLAGS: -lpthread
#include "shim.h"
*/
import "C"

// ArenaMax is the number of glibc malloc arenas the process is limited to when the
// environment does not set MALLOC_ARENA_MAX (see shim.c, eh_malloc_tune).
const ArenaMax = C.EH_ARENA_MAX

// mallocArenas reports how many malloc arenas glibc has after threads C threads have each
// allocated at the same time.
func mallocArenas(threads int) int { return int(C.eh_malloc_arenas(C.int(threads))) }

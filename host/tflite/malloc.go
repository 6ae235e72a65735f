package tflite

/*
#cgo LDFLAGS: -lpthread
#include <malloc.h>
#include "shim.h"
*/
import "C"

// ArenaMax is the number of glibc malloc arenas the process is limited to when the
// environment does not set MALLOC_ARENA_MAX (see shim.c, eh_malloc_tune).
const ArenaMax = C.EH_ARENA_MAX

// mallocArenas reports how many malloc arenas glibc has after threads C threads have each
// allocated at the same time.
func mallocArenas(threads int) int { return int(C.eh_malloc_arenas(C.int(threads))) }

// TrimCHeap hands the free memory of every malloc arena back to the system (glibc's
// malloc_trim(0)): after a start or a swap that freed interpreters, glibc keeps their pages
// (RATIONALE.md, "Idle memory: where it goes"). It returns whether any was released. Slow
// (it walks every arena): call it once after a start or a burst of swaps, not per request.
func TrimCHeap() bool { return C.malloc_trim(0) != 0 }

package tflite

import (
	"os"
	"reflect"
	"testing"

	gotflite "github.com/mattn/go-tflite"
)

// TestRawPointers: go-tflite's Model, Interpreter and InterpreterOptions are structs of
// exactly one pointer, which cgo.go and model.go rely on.
func TestRawPointers(t *testing.T) {
	for _, v := range []any{gotflite.Model{}, gotflite.Interpreter{}, gotflite.InterpreterOptions{}} {
		ty := reflect.TypeOf(v)
		if ty.NumField() != 1 || ty.Field(0).Type.Kind() != reflect.Pointer {
			t.Errorf("%s is no longer a struct of one pointer: go-tflite changed", ty)
		}
	}
}

// TestMallocArenaMax: without MALLOC_ARENA_MAX in the environment, the process has at most
// ArenaMax malloc arenas however many threads allocate at once.
func TestMallocArenaMax(t *testing.T) {
	if os.Getenv("MALLOC_ARENA_MAX") != "" {
		t.Skip("MALLOC_ARENA_MAX is set: the operator's value applies")
	}
	if n := mallocArenas(16); n < 1 || n > ArenaMax {
		t.Fatalf("%d malloc arenas after 16 threads allocated, want 1..%d", n, ArenaMax)
	} else {
		t.Logf("%d arenas after 16 threads allocated at once", n)
	}
}

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

// TestXNNPACKOptions: the options handed to TfLiteXNNPackDelegateCreate carry the thread
// count and the flags asked for, on top of the library's own defaults, read back after the
// default-options call (TFLite 2.9 returns them in a register, 2.17 through a pointer; a
// mismatched call copies garbage, e.g. flags 0x7ffe). Where the library can report a
// delegate's flags, the delegate built from those options reports the same.
func TestXNNPACKOptions(t *testing.T) {
	if !Probe().XNNPACK {
		t.Skip("the TFLite library has no XNNPACK")
	}
	// The defaults each supported library is known to return (read from its code).
	defaults := map[string]uint32{"2.9.0": 0, "2.17.1": xnnQS8 | xnnQU8}
	version := Probe().Version
	def, known := defaults[version]
	for _, threads := range []int{1, 3} {
		for _, force := range []bool{false, true} {
			o, err := xnnpackOptions(threads, force)
			if err != nil {
				t.Fatal(err)
			}
			if o.Threads != int32(threads) {
				t.Errorf("threads=%d force=%v: options say %d threads", threads, force, o.Threads)
			}
			want := def
			if force {
				want |= xnnQS8 | xnnQU8
			}
			if known && o.Flags != want {
				t.Errorf("TFLite %s threads=%d force=%v: flags %#x, want %#x", version, threads, force, o.Flags, want)
			}
			if o.Flags&^xnnKnownFlags != 0 {
				t.Errorf("threads=%d force=%v: flags %#x has bits no release defines (garbage read as options?)", threads, force, o.Flags)
			}
			if o.DelegateReports && o.DelegateFlags != o.Flags {
				t.Errorf("threads=%d force=%v: the delegate reports flags %#x, the options said %#x", threads, force, o.DelegateFlags, o.Flags)
			}
			t.Logf("TFLite %s (small ABI %v) threads=%d force=%v: flags %#x, delegate reports %v %#x", version, o.SmallABI, threads, force, o.Flags, o.DelegateReports, o.DelegateFlags)
		}
	}
}

package wasm

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/tetratelabs/wazero"
)

func oneFunc(locals, code []byte) []byte {
	return Module(Section(1, Vec([]byte{0x60, 0, 0})), Section(3, Vec([]byte{0})), Section(10, Vec(Body(locals, code))))
}

func TestMeasureCompile(t *testing.T) {
	if os.Getenv("MEASURE") == "" {
		t.Skip("MEASURE=1")
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	try := func(name string, b []byte) {
		start := time.Now()
		_, err := Validate(ctx, b, Limits{ModuleBytes: 1 << 30, CodeBytes: 1 << 30, Functions: 1 << 30, FunctionBytes: 1 << 30, Locals: 1 << 30, Nesting: 1 << 30, Blocks: 1 << 30}, "edgehost")
		v := time.Since(start)
		if err != nil {
			t.Logf("%s: %v", name, err)
			return
		}
		out, err := rewrite(b, Options{})
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		c, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		t.Logf("%s (%d bytes): validate %v, compile instrumented %v", name, len(b), v, time.Since(start))
	}
	if os.Getenv("MEASURE") == "shape" {
		for _, p := range []string{"imagepre-go", "imagepre-c", "ssd-go", "classify-go"} {
			b, _ := os.ReadFile(Root + "/plugins/examples/" + p + "/" + p + ".wasm")
			sh, err := CheckLimits(b, Limits{})
			sh.funcTypes = nil
			t.Logf("%s shape %+v %v", p, sh, err)
		}
		return
	}
	for _, n := range []int{250, 500, 1000, 2000} {
		var code []byte
		for i := 0; i < n; i++ {
			code = append(code, 0x03, 0x40, 0x0b)
		}
		try("loops-"+itoa(n), oneFunc([]byte{0}, append(code, 0x0b)))
	}
	for _, n := range []int{5000, 20000} {
		var code []byte
		for i := 0; i < n; i++ {
			code = append(code, 0x02, 0x40, 0x0b)
		}
		try("blocks-"+itoa(n), oneFunc([]byte{0}, append(code, 0x0b)))
	}
	if os.Getenv("MEASURE") == "short" {
		return
	}
	for _, n := range []int{1000, 4096, 20000} {
		var code []byte
		for i := 0; i < n; i++ {
			code = append(code, 0x02, 0x40)
		}
		for i := 0; i < n; i++ {
			code = append(code, 0x0b)
		}
		try("nest-"+itoa(n), oneFunc([]byte{0}, append(code, 0x0b)))
	}
	for _, n := range []uint64{10000, 1 << 20} {
		try("locals-"+itoa(int(n)), oneFunc(append([]byte{1}, append(ULEB(n), 0x7f)...), []byte{0x0b}))
	}
	for _, p := range []string{"imagepre-go", "imagepre-c", "ssd-go"} {
		b, err := os.ReadFile(Root + "/plugins/examples/" + p + "/" + p + ".wasm")
		if err != nil {
			t.Fatal(err)
		}
		sh, err := CheckLimits(b, Limits{})
		sh.funcTypes = nil
		t.Logf("%s shape %+v %v", p, sh, err)
		try(p, b)
	}
}

func itoa(n int) string {
	s := ""
	for ; n > 0 || s == ""; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// TestMeasureAtLimits compiles (as a load does: validate, rewrite, compile) the worst modules
// that DefaultLimits admit, one per shape, and logs the CPU time each took: the figure behind
// "any module is accepted or rejected within 5 s". MEASURE=limits.
func TestMeasureAtLimits(t *testing.T) {
	if os.Getenv("MEASURE") != "limits" {
		t.Skip("MEASURE=limits")
	}
	ctx := context.Background()
	l := DefaultLimits
	try := func(name string, fn func() []byte) {
		b := fn()
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		start, cpu0 := time.Now(), cpuTime()
		out, err := Instrument(ctx, b, Options{})
		if err != nil {
			t.Logf("%s: rejected: %v", name, err)
			return
		}
		c, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		t.Logf("%s (%d bytes): wall %v, cpu %v, peak RSS of the test process so far %d MiB", name, len(b), time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond), ru.Maxrss>>10)
	}
	// fill the total with functions each just under the per-function limit
	perFunc := func(unit []byte, weight uint64, open int) func() []byte {
		return func() []byte {
			n := int(uint64(l.Blocks) / weight)
			funcs := int(l.TotalBlocks / (uint64(n) * weight))
			var code []byte
			for i := 0; i < n; i++ {
				code = append(code, unit...)
			}
			if open > 0 {
				for i := 0; i < n; i++ {
					code = append(code, 0x0b)
				}
			}
			return sameFuncs(append(code, 0x0b), funcs)
		}
	}
	try("loops", perFunc([]byte{0x03, 0x40, 0x0b}, LoopWeight, 0))
	try("blocks", perFunc([]byte{0x02, 0x40, 0x0b}, 1, 0))
	try("nested-blocks", func() []byte {
		n := int(l.Nesting) - 1
		funcs := int(l.TotalBlocks / uint64(n))
		var code []byte
		for i := 0; i < n; i++ {
			code = append(code, 0x02, 0x40)
		}
		for i := 0; i < n; i++ {
			code = append(code, 0x0b)
		}
		return sameFuncs(append(code, 0x0b), funcs)
	})
	for _, p := range []string{"imagepre-go", "imagepre-c"} {
		try(p, func() []byte { b, _ := os.ReadFile(Root + "/plugins/examples/" + p + "/" + p + ".wasm"); return b })
	}
}

// sameFuncs is a module of n () -> () functions, each with the given code.
func sameFuncs(code []byte, n int) []byte {
	bodies, idx := make([][]byte, n), make([][]byte, n)
	for i := range bodies {
		bodies[i], idx[i] = Body([]byte{0}, code), []byte{0}
	}
	return Module(Section(1, Vec([]byte{0x60, 0, 0})), Section(3, Vec(idx...)), Section(10, Vec(bodies...)))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

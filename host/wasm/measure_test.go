package wasm

import (
	"context"
	"os"
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

package plugin

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/cpu"
)

// Which wazero engine runs the plugins (RuntimeOptions.Engine, config [runtime] wasm_engine).
const (
	EngineAuto        = ""            // the compiler where wazero has one, else the interpreter
	EngineCompiler    = "compiler"    // wazero's optimising compiler (amd64 with SSE4.1, arm64)
	EngineInterpreter = "interpreter" // wazero's interpreter: every architecture, 30-70x slower
)

// CompilerSupported reports whether wazero's compiler exists for this machine: the same
// test as wazero's internal platform.CompilerSupported (which is not exported), for the
// operating systems edgehost builds for. Elsewhere (armhf, 386, riscv64...) asking for the
// compiler panics with "unsupported architecture".
func CompilerSupported() bool {
	switch runtime.GOARCH {
	case "arm64":
		return true
	case "amd64":
		return cpu.X86.HasSSE41
	}
	return false
}

// chooseEngine resolves an engine name: auto picks the compiler where it exists; asking
// for the compiler where it does not is an error rather than wazero's panic.
func chooseEngine(name string) (string, error) {
	switch name {
	case EngineAuto:
		if CompilerSupported() {
			return EngineCompiler, nil
		}
		return EngineInterpreter, nil
	case EngineCompiler:
		if !CompilerSupported() {
			return "", fmt.Errorf("wazero has no compiler for %s/%s: use wasm_engine = %q or leave it unset", runtime.GOOS, runtime.GOARCH, EngineInterpreter)
		}
		return name, nil
	case EngineInterpreter:
		return name, nil
	}
	return "", fmt.Errorf("unknown wasm engine %q (want %q, %q or unset)", name, EngineCompiler, EngineInterpreter)
}

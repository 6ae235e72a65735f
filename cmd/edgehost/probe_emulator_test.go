package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeEmulator: with EDGEHOST_PROBE_EMULATOR set, the model probe child is started
// through that command (make test-arm's fallback where no binfmt_misc of its own can be
// mounted: qemu then runs the ARM probe); the command gets the binary and the probe's
// arguments, and a probe it fails fails the load.
func TestProbeEmulator(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "called")
	wrapper := filepath.Join(dir, "emulator")
	// The "emulator" records its arguments, then runs them (as qemu-aarch64 -L ROOT would).
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" >> "+marker+"\nshift\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(repoRoot(t), ".deps/models/mobilenet_quant_v1_224.tflite")
	cmd := exec.Command(bin, "inspect", model)
	cmd.Env = append(os.Environ(), "EDGEHOST_PROBE_EMULATOR="+wrapper+" -L/sysroot")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "XNNPACK takes 29") {
		t.Fatalf("inspect through the emulator: %v\n%s", err, out)
	}
	args, err := os.ReadFile(marker)
	if err != nil {
		t.Fatalf("the emulator was not called: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(args)), "\n")
	if len(lines) < 3 || lines[0] != "-L/sysroot" || lines[1] != bin || lines[2] != probeCommand {
		t.Errorf("emulator arguments %q, want -L/sysroot, the binary, %s, ...", lines, probeCommand)
	}
	// An emulator that cannot run the child fails the load, saying so.
	cmd = exec.Command(bin, "inspect", model)
	cmd.Env = append(os.Environ(), "EDGEHOST_PROBE_EMULATOR=/bin/false")
	if out, err := cmd.CombinedOutput(); err == nil || strings.Contains(string(out), "XNNPACK takes") {
		t.Errorf("a failing emulator passed the probe (%v):\n%s", err, out)
	}
}

package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks deploy/systemd/edgehost.service with systemd-analyze verify (the
// binary path swapped for one that exists here) and that its sandboxing keys stay set.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/edgehost.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"StateDirectory=edgehost", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"DynamicUser=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "UMask=0077"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: only the keys were checked")
	}
	true_, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "edgehost.service")
	os.WriteFile(p, []byte(strings.Replace(unit, "/opt/edgehost/bin/edgehost", true_, 1)), 0o644)
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

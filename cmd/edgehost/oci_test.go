package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/internal/testservers"
)

// TestPluginPushPull: `edgehost plugin push` and `pull` round-trip a plugin and a model
// through a real registry (docker-registry 2.8.2 on loopback), by tag and by the digest push
// prints; wrong usage exits 2, a missing artifact 1.
func TestPluginPushPull(t *testing.T) {
	reg := testservers.Registry(t)
	dir := t.TempDir()
	for _, f := range []string{"../../plugins/examples/classify-c/classify-c.wasm", "../../.deps/models/mobilenet_quant_v1_224.tflite"} {
		ref := reg.Addr + "/edgehost/" + strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".wasm"), ".tflite") + ":v1"
		code, out, errs := edgehost(t, "plugin", "push", ref, f)
		if code != 0 {
			t.Fatalf("push %s: exit %d: %s", f, code, errs)
		}
		pin := out[strings.Index(out, "oci://"):strings.LastIndex(out, `"`)]
		for _, r := range []string{ref, "oci://" + ref, pin} {
			dst := filepath.Join(dir, "pulled")
			if code, _, errs := edgehost(t, "plugin", "pull", r, dst); code != 0 {
				t.Fatalf("pull %s: exit %d: %s", r, code, errs)
			}
			want, _ := os.ReadFile(f)
			got, _ := os.ReadFile(dst)
			if !bytes.Equal(want, got) {
				t.Fatalf("pull %s: %d bytes differ from the %d pushed", r, len(got), len(want))
			}
		}
		t.Logf("%s", strings.TrimSpace(out))
	}
	if code, _, errs := edgehost(t, "plugin", "pull", reg.Addr+"/edgehost/nothing:v1", filepath.Join(dir, "x")); code != 1 {
		t.Errorf("pull of a missing artifact: exit %d (%s), want 1", code, errs)
	}
	if code, _, _ := edgehost(t, "plugin", "push", "not a ref", "../../plugins/examples/classify-c/classify-c.wasm"); code != 2 {
		t.Errorf("push with a bad reference: exit %d, want 2", code)
	}
	if code, _, _ := edgehost(t, "plugin", "pull", reg.Addr+"/edgehost/x:v1"); code != 2 {
		t.Errorf("pull without OUT: exit %d, want 2", code)
	}
}

package plugin_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// TestDecoderSIMDMatchesScalar: imagepre-c's decoders (shared by people-c) built for wasm32
// with -msimd128, as the plugins are, give the same bytes as the same C built natively, where
// the Wasm SIMD128 loops (IDCT stores, YCbCr to RGB) are replaced by their scalar versions:
// every fixture of the native tests and ssd_example.jpg at 1/1, 1/2, 1/4 and 1/8, and resized
// into u8, i8 and f32 tensors (test/simd.c prints a hash per result). The native suite
// (test/run.sh) checks the scalar paths against references; this carries its checks over to
// the code the plugins run.
func TestDecoderSIMDMatchesScalar(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the native build needs gcc")
	}
	src := filepath.Join(testplugins.Root, "plugins/examples/imagepre-c")
	srcs := []string{filepath.Join(src, "test/simd.c")}
	for _, f := range []string{"png.c", "jpeg.c", "inflate.c", "image.c", "resize.c"} {
		srcs = append(srcs, filepath.Join(src, f))
	}
	files, _ := filepath.Glob(filepath.Join(src, "test/testdata/*.jpg"))
	files = append(files, testplugins.Model("ssd_example.jpg"), testplugins.Model("peacock.png"))
	var args []string // paths as the guest sees them: the repository mounted at /r
	for _, f := range files {
		rel, err := filepath.Rel(testplugins.Root, f)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "/r/"+filepath.ToSlash(rel))
	}
	dir := t.TempDir()
	native := filepath.Join(dir, "simd")
	if out, err := exec.Command(gcc, append([]string{"-O2", "-o", native}, append(srcs, "-lm")...)...).CombinedOutput(); err != nil {
		t.Fatalf("native build: %v\n%s", err, out)
	}
	want, err := exec.Command(native, files...).Output()
	if err != nil {
		t.Fatalf("native run: %v", err)
	}
	mod := filepath.Join(dir, "simd.wasm")
	testplugins.BuildC(t, true, append([]string{"-O2", "-msimd128", "-mexec-model=command", "-o", mod}, srcs...)...)
	bin, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var got bytes.Buffer
	cfg := wazero.NewModuleConfig().WithArgs(append([]string{"simd"}, args...)...).WithStdout(&got).WithStderr(os.Stderr).
		WithFSConfig(wazero.NewFSConfig().WithReadOnlyDirMount(testplugins.Root, "/r"))
	if _, err := rt.InstantiateWithConfig(ctx, bin, cfg); err != nil {
		t.Fatalf("wasm run: %v", err)
	}
	wl, gl := strings.Split(strings.TrimSpace(string(want)), "\n"), strings.Split(strings.TrimSpace(got.String()), "\n")
	if len(wl) != len(gl) {
		t.Fatalf("%d lines natively, %d in Wasm:\n%s\n---\n%s", len(wl), len(gl), want, got.String())
	}
	for i := range wl {
		if wl[i] != gl[i] {
			t.Errorf("native %q, Wasm SIMD %q", wl[i], gl[i])
		}
	}
	t.Logf("%d decodes and tensors identical over %d files", len(wl), len(files))
}

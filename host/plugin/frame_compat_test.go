package plugin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/edgehost/edgehost/abi"
	. "github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// TestFrameCompat: ABI 1.3 grew the call block to 64 bytes and added FLAG_FRAME. A plugin
// written for 1.0–1.2 must see exactly what it saw before on every request it can get:
// flags == FLAG_CONTEXT (a plugin may compare it whole), and bytes 48–63, which it never
// allocated room for in its own view, zero. This hand-written pre plugin (no "frames" in
// its manifest) returns status 2 otherwise. Handed a raw frame, it is refused with a
// FrameError before its code runs, and stays in service.
func TestFrameCompat(t *testing.T) {
	rt := newRuntime(t)
	// (load32(call+28) != 1) | load32(call+48) | …+52 | …+56 | …+60 ? 2 : 0
	load := func(off byte) []byte { return []byte{0x20, 0, 0x28, 0x02, off} }
	pre := append(load(28), 0x41, 1, 0x47)
	for _, off := range []byte{48, 52, 56, 60} {
		pre = append(append(pre, load(off)...), 0x72)
	}
	pre = append(pre, 0x04, 0x7f, 0x41, 2, 0x05, 0x41, 0, 0x0b, 0x0b)
	inst := rawInstance(t, rt, "compat-12", RawPlugin(PluginSpec{Pre: pre}), plugin.Config{})
	ctx := context.Background()
	if err := inst.Pre(ctx, 1); err != nil {
		t.Fatalf("a 1.2-style plugin sees a changed call block: %v", err)
	}
	// After a frame was refused, the next ordinary call still sees the old layout.
	err := inst.PreFrame(ctx, 12, &plugin.Frame{Width: 2, Height: 2, Stride: 6, Format: abi.PixelRGB24})
	var fe *plugin.FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("raw frame to a plugin without \"frames\": %v, want a FrameError", err)
	}
	if inst.Broken() != nil {
		t.Fatalf("refusing a frame broke the instance: %v", inst.Broken())
	}
	if err := inst.Pre(ctx, 1); err != nil {
		t.Fatalf("after a refused frame: %v", err)
	}
}

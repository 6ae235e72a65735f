package stream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/plugin"
)

// fakeFFmpeg writes a shell script standing in for ffmpeg (unit tests of the process
// handling; the real ffmpeg runs in host/engine's TestStreamFFmpeg).
func fakeFFmpeg(t *testing.T, body string) (string, *Stream) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ffmpeg")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := false
	cfg := config.Stream{URL: filepath.Join(dir, "clip.mp4"), Decoder: "ffmpeg", FFmpeg: bin, Width: 4, Height: 2, PixelFormat: "rgb24", Realtime: &rt}
	cfg.ReadTimeout.Duration = 500 * time.Millisecond
	return dir, &Stream{name: "t", cfg: cfg, pool: newBufPool(), box: newMailbox()}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestFFmpegStalls: a decoder that writes nothing (a camera that hangs, or ffmpeg stuck) is
// killed after read_timeout with its whole process group: a child it started goes too.
func TestFFmpegStalls(t *testing.T) {
	dir, s := fakeFFmpeg(t, "sleep 60 &\necho $! > \"$(dirname \"$0\")/child.pid\"\nwait\n")
	t0 := time.Now()
	err := s.readFFmpeg(context.Background(), func(*[]byte, *plugin.Frame) { t.Error("a frame from nothing") })
	if err == nil || !strings.Contains(err.Error(), "read_timeout") {
		t.Fatalf("err %v", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("took %v for a 500 ms read_timeout", took)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "child.pid"))
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for child > 0 && alive(child) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 || alive(child) {
		t.Errorf("the decoder's child %d outlived it", child)
	}
	if s.FFmpegPID() != 0 {
		t.Errorf("pid %d still recorded", s.FFmpegPID())
	}
}

// TestFFmpegFrames: exact raw frames come through with their geometry; a decoder that
// exits says why (its stderr); a stopped stream kills it at once.
func TestFFmpegFrames(t *testing.T) {
	// Two 4x2 rgb24 frames (24 bytes each), then an error and exit 1.
	_, s := fakeFFmpeg(t, "printf 'AAAAAAAAAAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBBBBBBBBB'\necho 'Connection refused' >&2\nexit 1\n")
	var got []string
	err := s.readFFmpeg(context.Background(), func(buf *[]byte, f *plugin.Frame) {
		if f.Width != 4 || f.Height != 2 || f.Stride != 12 || f.Format.String() != "rgb24" {
			t.Errorf("geometry %+v", f)
		}
		got = append(got, string(*buf))
	})
	if len(got) != 2 || got[0] != strings.Repeat("A", 24) || got[1] != strings.Repeat("B", 24) {
		t.Errorf("frames %q", got)
	}
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("err %v, want ffmpeg's message", err)
	}
	// Stopping: ctx ends while the decoder runs.
	_, s = fakeFFmpeg(t, "exec sleep 60\n")
	s.cfg.ReadTimeout.Duration = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.readFFmpeg(ctx, func(*[]byte, *plugin.Frame) {}) }()
	for i := 0; s.FFmpegPID() == 0 && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	pid := s.FFmpegPID()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("stopped: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the decoder was not stopped")
	}
	if pid == 0 || alive(pid) {
		t.Errorf("decoder pid %d alive after the stop", pid)
	}
}

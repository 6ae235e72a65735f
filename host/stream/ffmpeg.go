package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/plugin"
)

// ffmpegArgs is the command line: decode cfg.URL, scale to the configured size (and rate),
// and write raw frames of the configured pixel format to stdout; nothing else (no audio,
// no stdin, errors only on stderr).
func (s *Stream) ffmpegArgs() []string {
	c := s.cfg
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	us := strconv.FormatInt(c.ReadTimeout.Microseconds(), 10)
	switch {
	case strings.HasPrefix(c.URL, "rtsp://") || strings.HasPrefix(c.URL, "rtsps://"):
		if c.RTSPTransport != "auto" && c.RTSPTransport != "" {
			args = append(args, "-rtsp_transport", c.RTSPTransport)
		}
		args = append(args, "-timeout", us)
	case strings.HasPrefix(c.URL, "http://") || strings.HasPrefix(c.URL, "https://"):
		args = append(args, "-rw_timeout", us)
	default: // a file
		if *c.Realtime {
			args = append(args, "-re")
		}
		if c.Loop {
			args = append(args, "-stream_loop", "-1")
		}
	}
	vf := fmt.Sprintf("scale=%d:%d", c.Width, c.Height)
	if c.FPS > 0 {
		vf = fmt.Sprintf("fps=%g,%s", c.FPS, vf)
	}
	return append(args, "-i", c.URL, "-an", "-sn", "-dn", "-vf", vf,
		"-pix_fmt", c.PixelFormat, "-f", "rawvideo", "pipe:1")
}

// tail keeps the last bytes ffmpeg wrote to stderr, for the log when it exits.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

// readFFmpeg runs one ffmpeg child process and hands each raw frame it writes to emit.
// ffmpeg runs in its own process group and is killed with it (SIGKILL to the group) when
// this returns: when ctx ends (stream stopped or restarted), when no whole frame came
// within read_timeout, or when ffmpeg exits (the camera went away, the file ended).
func (s *Stream) readFFmpeg(ctx context.Context, emit func(buf *[]byte, raw *plugin.Frame)) error {
	c := s.cfg
	format := abi.PixelFormats[c.PixelFormat]
	stride := c.Width * format.BytesPerPixel()
	size := stride * c.Height
	cmd := exec.Command(c.FFmpeg, s.ffmpegArgs()...)
	cmd.SysProcAttr = procAttr()
	var stderr tail
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting ffmpeg: %w", err)
	}
	s.pid.Store(int64(cmd.Process.Pid))
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group: ffmpeg and anything it started
			_ = cmd.Process.Kill()
		})
	}
	stalled := false
	var stalledMu sync.Mutex
	watchdog := time.AfterFunc(c.ReadTimeout.Duration, func() {
		stalledMu.Lock()
		stalled = true
		stalledMu.Unlock()
		kill()
	})
	stop := context.AfterFunc(ctx, kill)
	defer func() {
		stop()
		watchdog.Stop()
		kill()
		_ = cmd.Wait()
		s.pid.Store(0)
	}()
	geom := plugin.Frame{Width: uint32(c.Width), Height: uint32(c.Height), Stride: uint32(stride), Format: format}
	for {
		buf := s.pool.get(size)
		_, err := io.ReadFull(out, *buf)
		if err != nil {
			s.pool.put(buf)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			stalledMu.Lock()
			st := stalled
			stalledMu.Unlock()
			if st {
				return fmt.Errorf("no complete frame from ffmpeg within read_timeout (%v)", c.ReadTimeout.Duration)
			}
			_ = cmd.Wait()
			msg := stderr.String()
			if errors.Is(err, io.EOF) && msg == "" {
				return errors.New("ffmpeg ended (end of the input)")
			}
			return fmt.Errorf("ffmpeg ended (%v): %s", cmd.ProcessState, msg)
		}
		watchdog.Reset(c.ReadTimeout.Duration)
		g := geom
		emit(buf, &g)
	}
}

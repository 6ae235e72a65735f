package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
)

func testJPEG(t testing.TB, n int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), uint8(n * 8), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testStream(url string, maxFrame int64, readTimeout time.Duration) *Stream {
	cfg := config.Stream{URL: url, Decoder: "mjpeg", MaxFrameBytes: maxFrame}
	cfg.ReadTimeout.Duration = readTimeout
	return &Stream{name: "t", cfg: cfg, pool: newBufPool(), box: newMailbox()}
}

// collect reads one connection and returns the frames it delivered and how it ended.
func collect(s *Stream) ([][]byte, error, time.Duration) {
	var frames [][]byte
	t0 := time.Now()
	err := s.readMJPEG(context.Background(), func(buf *[]byte) {
		frames = append(frames, append([]byte(nil), (*buf)...))
		s.pool.put(buf)
	})
	return frames, err, time.Since(t0)
}

// TestMJPEGParts: well-formed parts come out whole and in order; a part that is not a JPEG
// is skipped and counted; the end of the stream ends the connection.
func TestMJPEGParts(t *testing.T) {
	want := [][]byte{testJPEG(t, 0), testJPEG(t, 1), testJPEG(t, 2)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
		for i, j := range want {
			fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(j))
			w.Write(j)
			w.Write([]byte("\r\n"))
			if i == 0 {
				w.Write([]byte("--frame\r\nContent-Type: text/plain\r\n\r\nhello\r\n"))
			}
		}
		w.Write([]byte("--frame--\r\n"))
	}))
	defer srv.Close()
	s := testStream(srv.URL, 1<<20, 5*time.Second)
	got, err, _ := collect(s)
	if len(got) != 3 {
		t.Fatalf("got %d frames (%v), want 3", len(got), err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d differs (%d vs %d bytes)", i, len(got[i]), len(want[i]))
		}
	}
	if s.stats.Bad.Load() != 1 {
		t.Errorf("bad parts %d, want 1", s.stats.Bad.Load())
	}
	if err == nil || !strings.Contains(err.Error(), "ended") {
		t.Errorf("end: %v", err)
	}
}

// TestMJPEGHostile: a hostile or broken camera costs a bounded amount of memory and time:
// a part over max_frame_bytes, a stream with no boundary at all, garbage, a wrong content
// type, and a slowloris that trickles bytes and never finishes a frame (the watchdog drops it
// after read_timeout) each end the connection with a reason.
func TestMJPEGHostile(t *testing.T) {
	const limit = 64 << 10
	jpg := testJPEG(t, 0)
	cases := []struct {
		name    string
		handler func(w http.ResponseWriter)
		want    string
		maxTime time.Duration
	}{
		{"huge part", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=b")
			w.Write([]byte("--b\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8"))
			chunk := bytes.Repeat([]byte{0x55}, 32<<10)
			for i := 0; i < 1000; i++ { // 32 MB offered
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, "max_frame_bytes", 10 * time.Second},
		{"no boundary", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=b")
			chunk := bytes.Repeat([]byte("x"), 32<<10)
			for i := 0; i < 1000; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, "", 10 * time.Second},
		{"garbage", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=b")
			w.Write([]byte("\x00\x01garbage\r\n--b-not-really\r\n\r\n"))
		}, "multipart", 10 * time.Second},
		{"not multipart", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "image/jpeg")
			w.Write(jpg)
		}, "want multipart", 10 * time.Second},
		{"slowloris", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=b")
			w.Write([]byte("--b\r\nContent-Type: image/jpeg\r\n\r\n"))
			for i := 0; i < 100; i++ {
				if _, err := w.Write(jpg[i : i+1]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}, "read_timeout", 3 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var wg sync.WaitGroup
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wg.Add(1)
				defer wg.Done()
				c.handler(w)
			}))
			defer srv.Close()
			s := testStream(srv.URL, limit, time.Second)
			frames, err, took := collect(s)
			if len(frames) != 0 || err == nil {
				t.Fatalf("%d frames, err %v", len(frames), err)
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
			if took > c.maxTime {
				t.Errorf("took %v", took)
			}
			// Memory: no buffer grew past the limit (plus the read that found it too big).
			for len(s.pool.free) > 0 {
				if b := <-s.pool.free; cap(*b) > limit+1 {
					t.Errorf("a buffer of %d bytes for a %d-byte limit", cap(*b), limit)
				}
			}
			t.Logf("%v after %v", err, took.Round(time.Millisecond))
		})
	}
}

// TestMJPEGUnreachable: a refused connection is an error at once (the reader's backoff
// paces the retries).
func TestMJPEGUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	s := testStream("http://"+addr+"/", 1<<20, time.Second)
	_, err, took := collect(s)
	if err == nil || took > 2*time.Second {
		t.Fatalf("err %v after %v", err, took)
	}
}

// TestMailboxNewestFirst: put replaces what nobody took; take gets the newest.
func TestMailboxNewestFirst(t *testing.T) {
	m := newMailbox()
	if r := m.put(&Frame{Seq: 1}); r != nil {
		t.Fatal("replaced a frame in an empty slot")
	}
	if r := m.put(&Frame{Seq: 2}); r == nil || r.Seq != 1 {
		t.Fatalf("replaced %v, want frame 1", r)
	}
	f, _ := m.take(context.Background())
	if f.Seq != 2 {
		t.Fatalf("took %d, want 2", f.Seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.take(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty slot: %v", err)
	}
}

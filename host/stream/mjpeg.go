package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"time"
)

// ErrFrameTooLarge is a part over max_frame_bytes: the connection is dropped (a camera that
// sends such parts is broken or hostile; reading on would hold its bytes).
var ErrFrameTooLarge = errors.New("frame over max_frame_bytes")

// readMJPEG reads one connection to an MJPEG camera: a GET whose answer is
// multipart/x-mixed-replace, each part a JPEG handed to emit. The standard library's
// mime/multipart splits the parts (its header limits apply); each part is read into a
// pooled buffer of at most max_frame_bytes. It returns when the connection ends, when no
// complete frame came within read_timeout (the watchdog cancels the request: a camera that
// stalls or trickles bytes), or when ctx ends.
func (s *Stream) readMJPEG(ctx context.Context, emit func(buf *[]byte)) error {
	cfg := s.cfg
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := fmt.Errorf("no complete frame within read_timeout (%v)", cfg.ReadTimeout.Duration)
	watchdog := time.AfterFunc(cfg.ReadTimeout.Duration, func() { cancel(stalled) })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
			return c
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("camera answered %s", resp.Status)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return fmt.Errorf("camera answered Content-Type %.100q, want multipart/x-mixed-replace with a boundary", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
				return c
			}
			if err == io.EOF {
				return errors.New("camera ended the stream")
			}
			return fmt.Errorf("reading the multipart stream: %w", err)
		}
		buf := s.pool.get(0)
		err = readBounded(part, buf, s.cfg.MaxFrameBytes)
		if err != nil {
			s.pool.put(buf)
			if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
				return c
			}
			return err
		}
		watchdog.Reset(cfg.ReadTimeout.Duration)
		b := *buf
		if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
			// Not a JPEG (a text part, an empty keep-alive part): skipped, counted.
			s.pool.put(buf)
			s.m.bad(s.name)
			s.stats.Bad.Add(1)
			continue
		}
		emit(buf)
	}
}

// readBounded reads r to its end into *buf (reusing its capacity), failing with
// ErrFrameTooLarge past max bytes.
func readBounded(r io.Reader, buf *[]byte, limit int64) error {
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			if int64(len(b)) > limit {
				*buf = b
				return ErrFrameTooLarge
			}
			nb := make([]byte, len(b), min(limit+1, int64(max(2*cap(b), 64<<10))))
			copy(nb, b)
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			*buf = b
			return ErrFrameTooLarge
		}
		if err == io.EOF {
			*buf = b
			return nil
		}
		if err != nil {
			*buf = b
			return err
		}
	}
}

// client is the HTTP client of MJPEG cameras: bounded connect and header times, no overall
// timeout (the stream never ends; the watchdog bounds it), no connection kept between
// attempts.
func (s *Stream) client() *http.Client {
	t := s.cfg.ReadTimeout.Duration
	return &http.Client{Transport: &http.Transport{
		DialContext:            (&net.Dialer{Timeout: t}).DialContext,
		TLSHandshakeTimeout:    t,
		ResponseHeaderTimeout:  t,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		Proxy:                  http.ProxyFromEnvironment,
	}}
}

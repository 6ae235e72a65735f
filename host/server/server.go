package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Version is edgehost's version, reported by the KServe server metadata endpoint.
var Version = "0.1.0"

// Server serves the raw, KServe v2, metrics and status endpoints for an engine.
type Server struct {
	e       *engine.Engine
	log     hclog.Logger
	cfg     config.Server
	Metrics *Metrics
	mux     *http.ServeMux
	ready   func() bool
	auth    *Auth
	conns   *connLimiter
	// stopping is closed when Serve begins to shut down: long-lived responses (SSE) end then,
	// so the graceful shutdown does not wait for them.
	stopping chan struct{}
	stopOnce sync.Once
}

// New builds the HTTP handlers. ready reports readiness (nil: always ready).
func New(e *engine.Engine, cfg config.Server, log hclog.Logger) *Server {
	s := &Server{e: e, log: log.Named("http"), cfg: cfg, Metrics: newMetrics(e), mux: http.NewServeMux(), auth: NewAuth(cfg),
		stopping: make(chan struct{})}
	s.mux.HandleFunc("POST /v1/pipelines/{name}", s.raw)
	s.mux.HandleFunc("GET /v1/pipelines", s.listPipelines)
	s.mux.HandleFunc("GET /v2", s.serverMetadata)
	s.mux.HandleFunc("GET /v2/health/live", s.live)
	s.mux.HandleFunc("GET /v2/health/ready", s.readyHandler)
	s.mux.HandleFunc("GET /v2/models/{name}", s.modelMetadata)
	s.mux.HandleFunc("GET /v2/models/{name}/versions/{version}", s.modelMetadata)
	s.mux.HandleFunc("GET /v2/models/{name}/ready", s.modelReady)
	s.mux.HandleFunc("GET /v2/models/{name}/versions/{version}/ready", s.modelReady)
	s.mux.HandleFunc("POST /v2/models/{name}/infer", s.infer)
	s.mux.HandleFunc("POST /v2/models/{name}/versions/{version}/infer", s.infer)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /status", s.status)
	s.mux.HandleFunc("GET /v1/streams/{name}/events", s.streamEvents)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, "", "", fmt.Errorf("%w: no route for %s %s (see README.md, HTTP API)", engine.ErrNotFound, r.Method, r.URL.Path))
	})
	return s
}

// SetReady installs the readiness check used by /v2/health/ready.
func (s *Server) SetReady(f func() bool) { s.ready = f }

// Auth is the token checker of server.tokens (shared with the gRPC front end).
func (s *Server) Auth() *Auth { return s.auth }

// ServeHTTP implements http.Handler.
// Every response says nosniff: a result is served only as the media type its plugin
// declared (one of abi.ResultTypes), never sniffed into something a browser would run.
// With server.tokens set, every route but health needs a token with its scope (routeScope).
// A request with a Transfer-Encoding closes its connection after the answer: Go's server
// drops a Content-Length sent beside chunked (RFC 9112 §6.3 says close), and the two
// together are request smuggling behind a proxy that frames by length.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
	if r.ContentLength != 0 {
		// A body that no handler reads (any route but POST; an error answered before it is
		// read, see fail) is read by Go's server before or after it writes the answer, to
		// keep the connection, with no deadline: a client that announces one and sends
		// nothing held its connection active for ever, out of the cap's reach. Such
		// answers close the connection instead.
		if r.Method != http.MethodPost {
			w.Header().Set("Connection", "close")
		}
		eb := &eofBody{ReadCloser: r.Body}
		r.Body = eb
		defer func() {
			if !eb.eof {
				// After the handler, Go's server reads what is left of the body (up to
				// 256 KiB) whatever the answer said: let that read end at once.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now())
			}
		}()
	}
	if scope := routeScope(r); scope != "" && s.auth.Enabled() {
		if err := s.auth.Check(r.Header.Get("Authorization"), scope); err != nil {
			if errors.Is(err, ErrUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="edgehost"`)
			}
			if r.ContentLength != 0 {
				// Take what the client has already sent (up to 1 MiB, for at most 200 ms)
				// before answering and closing: closing on a body still arriving resets
				// the connection, and the client sees a broken pipe instead of the 401
				// (tritonclient.http did, now and then). A client that sends nothing holds
				// the connection 200 ms.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				_, _ = io.CopyN(io.Discard, r.Body, 1<<20)
				w.Header().Set("Connection", "close")
			}
			s.fail(w, r, "", "", err)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Serve serves on l until ctx ends, then shuts down gracefully: it stops accepting, lets
// in-flight requests finish (up to the shutdown timeout) and returns nil.
//
// With server.tls it serves TLS (mutual TLS with client_ca_file; the files are reloaded when
// they change). It holds at most server.max_connections connections (see connLimiter).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.conns = newConnLimiter(MaxConns(s.cfg.MaxConnections))
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}), ConnState: s.conns.track}
	if err := s.auth.CheckFiles(); err != nil {
		return err
	}
	tc, err := TLSConfig(s.cfg)
	if err != nil {
		return err
	}
	l = s.conns.listen(l)
	if tc != nil {
		// HTTP/1.1 only on this listener: an HTTP/2 stream whose client grants no flow-control
		// window holds its connection active with no write blocked (the handler waits for a
		// window), so the cap could be held for ever and health shut out
		// (TestConnectionCapStalledH2). gRPC, on its own listener, keeps HTTP/2.
		tc.NextProtos = []string{"http/1.1"}
		hs.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		hs.TLSConfig = tc
		l = tls.NewListener(l, tc)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests", "timeout", s.cfg.ShutdownTimeout.Duration)
	s.stopOnce.Do(func() { close(s.stopping) })
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.Duration)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// eofBody records whether a request body was read to its end.
type eofBody struct {
	io.ReadCloser
	eof bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

type errorBody struct {
	Error string `json:"error"`
	Class string `json:"class"`
}

// fail writes err as JSON with the status from the error table, and counts it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, target, endpoint string, err error) {
	code, class := classify(err)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = fmt.Errorf("request body too large: the limit is server.max_body_bytes = %d bytes", tooBig.Limit)
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if b, ok := r.Body.(*eofBody); ok && !b.eof {
		w.Header().Set("Connection", "close") // the body is not read (see ServeHTTP)
	}
	msg := s.auth.Reveal(r.Header.Get("Authorization"), err.Error()) // where files live is for observers only
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg, Class: class})
	if target != "" {
		s.Metrics.Requests.WithLabelValues(target, endpoint, strconv.Itoa(code)).Inc()
		s.Metrics.Errors.WithLabelValues(target, class).Inc()
	}
	lvl := hclog.Debug
	if code >= 500 {
		lvl = hclog.Warn
	}
	s.log.Log(lvl, "request failed", "method", r.Method, "path", r.URL.Path, "status", code, "class", class, "error", err)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// body returns the request body limited to the configured size and its length if known.
// Slow clients: a request body is read whole, before any worker is taken, under a read
// deadline of server.transfer_timeout plus its length at server.min_transfer_rate (defaults
// TransferBase and MinTransferRate); a result larger than
// DirectResult is copied out of guest memory so that the worker is free before the write,
// which has the same kind of deadline. A client sending or reading slower than that is cut
// off; it never holds a worker (see RATIONALE.md, "Slow clients").
const (
	TransferBase    = 5 * time.Second // the default of server.transfer_timeout
	MinTransferRate = 64 << 10        // the default of server.min_transfer_rate, bytes per second
	DirectResult    = 64 << 10        // results up to this size are written from guest memory
	transferChunk   = 64 << 10        // a body of unknown length has its deadline moved every this many bytes
)

// transfer is the configured transfer timeout and minimum rate (the defaults where unset).
func (s *Server) transfer() (time.Duration, int64) {
	base, rate := s.cfg.TransferTimeout.Duration, s.cfg.MinTransferRate
	if base <= 0 {
		base = TransferBase
	}
	if rate <= 0 {
		rate = MinTransferRate
	}
	return base, rate
}

func (s *Server) transferDeadline(n int64) time.Time {
	base, rate := s.transfer()
	return time.Now().Add(base + time.Duration(n)*time.Second/time.Duration(rate))
}

// Request bodies are read into buffers kept for the next request (a camera frame of
// ~0.5 MB per request otherwise allocates and copies ~1 MB while its buffer doubles, and the
// garbage collector runs every few requests). Buffers over maxPooledBody are not kept.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

const maxPooledBody = 4 << 20

// body reads the whole request body (at most max_body_bytes) under its transfer deadline.
// Its buffer grows with the bytes received, not with the declared length (a client that
// declares 16 MB and sends nothing holds a 64 KiB buffer, or a pooled one).
// The bytes are valid until release is called; release is never nil.
func (s *Server) body(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		// Refused unread, and the connection closes after the 413. Take what the client has
		// already sent (up to 1 MiB, for at most 200 ms) first, as for a refused token:
		// closing on a body still arriving resets the connection, and the client sees a
		// broken pipe instead of the 413 (TestBadInput's oversized body did, on a busy
		// machine).
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, r.Body, 1<<20)
		return nil, func() {}, &http.MaxBytesError{Limit: limit}
	}
	n := r.ContentLength
	rc := http.NewResponseController(w)
	rd := http.MaxBytesReader(w, r.Body, limit)
	bp := bodyBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	release = func() {
		if cap(buf) <= maxPooledBody {
			*bp = buf[:0]
			bodyBuffers.Put(bp)
		}
	}
	start := time.Now()
	base, rate := s.transfer()
	move := int64(0) // length unknown (chunked): where the deadline moves next
	if n >= 0 {
		_ = rc.SetReadDeadline(s.transferDeadline(n))
	}
	for {
		if n < 0 && int64(len(buf)) >= move {
			// The deadline moves with the bytes received, chunk by chunk, so the minimum
			// rate holds from the start (a deadline sized for max_body_bytes would let a
			// stalled client hold the connection for minutes).
			move = int64(len(buf)) + transferChunk
			_ = rc.SetReadDeadline(start.Add(base + time.Duration(move)*time.Second/time.Duration(rate)))
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow (amortised doubling)
		}
		end := cap(buf)
		if n < 0 {
			end = min(end, int(move))
		}
		m, rerr := rd.Read(buf[len(buf):end])
		buf = buf[:len(buf)+m]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if err != nil {
		// The deadline stays: net/http would otherwise wait for the rest of the body
		// before it sends the error. The connection closes after the answer.
		w.Header().Set("Connection", "close")
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The body ended before its Content-Length: a malformed request (the client
			// may still be there, reading, after a half-close), answered 400; if it has
			// gone, nobody reads the answer.
			return nil, release, badf("request body ended after %d bytes of the %d its Content-Length declares", len(buf), n)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, release, badf("request body not received in time: the minimum transfer rate is %d bytes/s after %v (server.min_transfer_rate, server.transfer_timeout)",
				rate, base)
		}
		return nil, release, err
	}
	_ = rc.SetReadDeadline(time.Time{})
	return buf, release, nil
}

func (s *Server) pipeline(name string) (*engine.Pipeline, error) {
	p, ok := s.e.Pipeline(name)
	if !ok && s.e.Starting(name) {
		return nil, engine.StartingError(name)
	}
	if !ok {
		return nil, fmt.Errorf("%w: pipeline %q (GET /v1/pipelines lists them)", engine.ErrNotFound, name)
	}
	return p, nil
}

// RunPipeline runs input (an image, say) through p under server.request_timeout and ctx's
// own deadline, records the stage, copy and trap metrics, and hands the post plugin's
// result to fn; the result is valid only during fn. It is the pipeline path every front end
// shares.
func (s *Server) RunPipeline(ctx context.Context, p *engine.Pipeline, input []byte, fn pipeline.Result) error {
	return s.run(ctx, p, pipeline.Request{Body: bytes.NewReader(input), Size: len(input)}, fn)
}

// RunSequence is RunPipeline for a request of a sequence (seq.ID set) or of none.
func (s *Server) RunSequence(ctx context.Context, p *engine.Pipeline, input []byte, seq pipeline.Sequence, fn pipeline.Result) error {
	return s.run(ctx, p, pipeline.Request{Body: bytes.NewReader(input), Size: len(input), Sequence: seq}, fn)
}

// Count records one finished request for target (a pipeline or model) on endpoint in the
// requests metric, and a failed one in the errors metric too: err nil counts as code 200,
// else the HTTP status and class of the error table (the same for every front end).
func (s *Server) Count(target, endpoint string, err error) {
	if err == nil {
		s.Metrics.Requests.WithLabelValues(target, endpoint, "200").Inc()
		return
	}
	code, class := classify(err)
	s.Metrics.Requests.WithLabelValues(target, endpoint, strconv.Itoa(code)).Inc()
	s.Metrics.Errors.WithLabelValues(target, class).Inc()
}

// Ready reports readiness, as /v2/health/ready does: the check given to SetReady, or true.
func (s *Server) Ready() bool { return s.ready == nil || s.ready() }

// run runs a pipeline, records metrics, and hands the result to fn.
func (s *Server) run(ctx context.Context, p *engine.Pipeline, req pipeline.Request, fn pipeline.Result) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout.Duration)
	defer cancel()
	start := time.Now()
	st, err := p.Pipeline.Do(ctx, req, fn)
	if err == nil {
		s.Metrics.Stage.WithLabelValues(p.Name, "pre").Observe(st.Pre.Seconds())
		s.Metrics.Stage.WithLabelValues(p.Name, "inference").Observe(st.Infer.Seconds())
		s.Metrics.Stage.WithLabelValues(p.Name, "post").Observe(st.Post.Seconds())
		s.Metrics.Stage.WithLabelValues(p.Name, "total").Observe(time.Since(start).Seconds())
	}
	s.Metrics.CopiedBytes.WithLabelValues(p.Name).Add(float64(st.CopiedBytes))
	if tr := trapPlugin(err); tr != "" {
		s.Metrics.Traps.WithLabelValues(p.Name, tr).Inc()
	}
	return err
}

// raw serves POST /v1/pipelines/{name}: the body is the input (an image, say), the response
// is the post plugin's result as it wrote it.
func (s *Server) raw(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, err := s.pipeline(name)
	if err != nil {
		s.fail(w, r, "", "", err)
		return
	}
	body, release, err := s.body(w, r)
	defer release()
	if err == nil && len(body) == 0 {
		err = badf("empty request body: POST the input (for example a JPEG or PNG image)")
	}
	if err == nil {
		var copied []byte
		var ctype string
		err = s.run(r.Context(), p, pipeline.Request{Body: bytes.NewReader(body), Size: len(body)}, func(res []byte, ct string) error {
			if len(res) > DirectResult {
				// Free the worker before a slow reader can hold it: one copy of the result.
				copied, ctype = append([]byte(nil), res...), ct
				return nil
			}
			return s.writeResult(w, res, ct)
		})
		if err == nil && copied != nil {
			if werr := s.writeResult(w, copied, ctype); werr != nil {
				s.log.Debug("writing a result failed", "pipeline", name, "error", werr)
			}
		}
	}
	if err != nil {
		s.fail(w, r, name, "raw", err)
		return
	}
	s.Metrics.Requests.WithLabelValues(name, "raw", "200").Inc()
}

// writeResult writes a pipeline result under its transfer deadline.
func (s *Server) writeResult(w http.ResponseWriter, res []byte, ct string) error {
	_ = http.NewResponseController(w).SetWriteDeadline(s.transferDeadline(int64(len(res))))
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(res)))
	_, err := w.Write(res)
	return err
}

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) {
	type item struct {
		Name     string `json:"name"`
		Model    string `json:"model"`
		Pre      string `json:"pre"`
		Post     string `json:"post"`
		ZeroCopy bool   `json:"zero_copy"`
	}
	var out []item
	for _, p := range s.e.Pipelines() {
		out = append(out, item{p.Name, p.ModelName, p.Pre.Name(), p.Post.Name(), p.Pipeline.ZeroCopy()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": out})
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (s *Server) readyHandler(w http.ResponseWriter, r *http.Request) {
	if !s.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.e.Status())
}

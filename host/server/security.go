package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/internal/safefile"
	"golang.org/x/sys/unix"
)

// ErrUnauthorized is a request without a valid token (HTTP 401, gRPC Unauthenticated). Its
// text is all a caller learns.
var ErrUnauthorized = errors.New("unauthorized: a valid bearer token is required")

// ErrForbidden is a valid token without the scope a route needs (HTTP 403, gRPC
// PermissionDenied).
var ErrForbidden = errors.New("forbidden: the token lacks the scope this route needs")

// Auth checks bearer tokens against server.tokens. Token files are read again when they
// change (size, times or inode), so a rotated token applies without a restart. The zero
// Auth (no tokens configured) allows everything. It is safe for concurrent use.
type Auth struct {
	tokens []config.Token
	mu     sync.Mutex
	files  map[string]*tokenFile
}

type tokenFile struct {
	sig  string
	hash [32]byte // sha256 of the token; zero when the file is unreadable
	ok   bool
}

// NewAuth returns the checker for cfg.Tokens.
func NewAuth(cfg config.Server) *Auth {
	return &Auth{tokens: cfg.Tokens, files: map[string]*tokenFile{}}
}

// Enabled reports whether tokens are required.
func (a *Auth) Enabled() bool { return a != nil && len(a.tokens) > 0 }

// Check returns nil if header (an Authorization value, "Bearer TOKEN") names a token with
// scope, ErrForbidden if the token is valid without that scope, ErrUnauthorized otherwise.
func (a *Auth) Check(header, scope string) error {
	if !a.Enabled() {
		return nil
	}
	presented, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		presented, ok = strings.CutPrefix(header, "bearer ")
	}
	presented = strings.TrimSpace(presented)
	if !ok || presented == "" {
		return ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(presented))
	valid := false
	for _, t := range a.tokens {
		f := a.file(t.File)
		if !f.ok || subtle.ConstantTimeCompare(f.hash[:], sum[:]) != 1 {
			continue
		}
		valid = true
		for _, s := range t.Scopes {
			if s == scope {
				return nil
			}
		}
	}
	if valid {
		return ErrForbidden
	}
	return ErrUnauthorized
}

// has reports whether header carries a token with scope (always, when tokens are off).
func (a *Auth) has(header, scope string) bool { return a.Check(header, scope) == nil }

// Reveal returns an error text as a caller presenting the Authorization header may see
// it: whole with the observe scope (or without tokens configured), with absolute paths
// and content hashes replaced otherwise.
func (a *Auth) Reveal(header, msg string) string {
	if a.Enabled() && !a.has(header, config.ScopeObserve) {
		return redact(msg)
	}
	return msg
}

// file returns the token in path, read again if the file changed since the last look.
func (a *Auth) file(path string) *tokenFile {
	a.mu.Lock()
	defer a.mu.Unlock()
	sig := statSig(path)
	if f := a.files[path]; f != nil && f.sig == sig {
		return f
	}
	f := &tokenFile{sig: sig}
	if b, err := readSmall(path, 4096); err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 16 && !strings.ContainsAny(tok, " \t\r\n") {
			f.hash, f.ok = sha256.Sum256([]byte(tok)), true
		}
	}
	a.files[path] = f
	return f
}

// CheckFiles reads every token file once, so a missing, unreadable or too short token is
// a clear error at start rather than a 401 at the first request.
func (a *Auth) CheckFiles() error {
	for _, t := range a.tokens {
		if !a.file(t.File).ok {
			_, err := readSmall(t.File, 4096)
			if err == nil {
				err = errors.New("the token must be one word of at least 16 characters")
			}
			return fmt.Errorf("server.tokens: %s: %w", t.File, err)
		}
	}
	return nil
}

// statSig identifies a file's version: its inode, size and change time ("" when missing).
func statSig(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	s := fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += fmt.Sprint("|", st.Dev, st.Ino, st.Ctim.Nano())
	}
	return s
}

// readSmall reads a regular file of at most max bytes, without blocking on a FIFO (see
// internal/safefile, which every file a config names goes through).
func readSmall(path string, max int64) ([]byte, error) { return safefile.ReadFile(path, max) }

// TLSConfig returns the TLS configuration of server.tls (nil when TLS is off). The
// certificate, key and client CAs are loaded again at a handshake after their files
// changed; a change that does not load (a half-written key, say) keeps the last good ones.
func TLSConfig(cfg config.Server) (*tls.Config, error) {
	if cfg.TLS == nil {
		return nil, nil
	}
	r := &tlsFiles{cfg: *cfg.TLS}
	if err := r.load(); err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		_ = r.load() // keeps the last good files on error
		r.mu.Lock()
		defer r.mu.Unlock()
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{r.cert}
		if r.cas != nil {
			c.ClientCAs, c.ClientAuth = r.cas, tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base, nil
}

type tlsFiles struct {
	cfg  config.TLS
	mu   sync.Mutex
	sig  string
	cert tls.Certificate
	cas  *x509.CertPool
}

func (r *tlsFiles) load() error {
	sig := statSig(r.cfg.CertFile) + "/" + statSig(r.cfg.KeyFile) + "/" + statSig(r.cfg.ClientCAFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if sig == r.sig {
		return nil
	}
	certPEM, err := readSmall(r.cfg.CertFile, 1<<20)
	if err != nil {
		return fmt.Errorf("server.tls.cert_file: %w", err)
	}
	keyPEM, err := readSmall(r.cfg.KeyFile, 1<<20)
	if err != nil {
		return fmt.Errorf("server.tls.key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("server.tls: %s, %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	var cas *x509.CertPool
	if r.cfg.ClientCAFile != "" {
		pem, err := readSmall(r.cfg.ClientCAFile, 4<<20)
		if err != nil {
			return fmt.Errorf("server.tls.client_ca_file: %w", err)
		}
		cas = x509.NewCertPool()
		if !cas.AppendCertsFromPEM(pem) {
			return fmt.Errorf("server.tls.client_ca_file %s: no PEM certificate in it", r.cfg.ClientCAFile)
		}
	}
	r.sig, r.cert, r.cas = sig, cert, cas
	return nil
}

// routeScope is the scope each route needs: health needs none (probes), running anything
// needs infer, the rest (status, metrics, metadata, listings) observe.
func routeScope(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/v2/health/live" || p == "/v2/health/ready":
		return ""
	case r.Method == http.MethodPost, strings.HasPrefix(p, "/v1/streams/"):
		return config.ScopeInfer // stream events are inference results
	}
	return config.ScopeObserve
}

var (
	absPathRE = regexp.MustCompile(`(?:^|[\s"'=(:])(/[^\s"',;)]+)`)
	hashRE    = regexp.MustCompile(`\b[0-9a-f]{40,64}\b`)
)

// redact removes absolute paths and content hashes (sha1/sha256 in hex) from an error text
// for callers without the observe scope: the file layout of the machine and which exact
// files it serves are not theirs to learn.
func redact(msg string) string {
	msg = absPathRE.ReplaceAllStringFunc(msg, func(m string) string {
		i := strings.IndexByte(m, '/')
		end := ""
		if strings.HasSuffix(m, ":") { // "open /x/y: no such file"
			end = ":"
		}
		return m[:i] + "<path>" + end
	})
	return hashRE.ReplaceAllString(msg, "<hash>")
}

// connLimiter caps a listener's open connections. At the cap a new connection closes the
// idlest one (idle keep-alive first, then one that has not sent a request yet) instead of
// being refused: a health probe or a metrics scrape always gets in, whatever idle clients
// hold. The cap is also kept under the file-descriptor limit.
type connLimiter struct {
	max   int
	mu    sync.Mutex
	conns map[net.Conn]connInfo
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

// MaxConns returns the cap for a listener: configured (0: the default), and at most what RLIMIT_NOFILE leaves
// after room for models, plugins, the cache and the other listener.
func MaxConns(configured int) int {
	if configured <= 0 {
		configured = config.DefaultMaxConnections
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(1<<30) {
		room := int(rl.Cur)/2 - 64
		if room < 16 {
			room = 16
		}
		return min(configured, room)
	}
	return configured
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, conns: map[net.Conn]connInfo{}}
}

// track is an http.Server ConnState hook.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew:
		l.conns[c] = connInfo{state: st, since: time.Now()}
		if len(l.conns) > l.max {
			l.evict(c)
		}
	case http.StateActive, http.StateIdle:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connInfo{state: st, since: time.Now()}
		}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	}
}

// stuckWrite is how long an answer's write may block (the client reads nothing) before its
// connection counts as stuck: at the cap it is closed like an idle one.
const stuckWrite = time.Second

// evict closes the oldest idle connection, else the oldest that has sent nothing yet, else
// the one whose answer has been blocked longest (over stuckWrite: a client that does not read,
// or pipelines requests and never reads the answers, holds its connection active for ever),
// else the new one; l.mu is held.
func (l *connLimiter) evict(newest net.Conn) {
	var victim net.Conn
	var vt time.Time
	for _, want := range []http.ConnState{http.StateIdle, http.StateNew} {
		for c, in := range l.conns {
			if c != newest && in.state == want && (victim == nil || in.since.Before(vt)) {
				victim, vt = c, in.since
			}
		}
		if victim != nil {
			break
		}
	}
	if victim == nil {
		limit := time.Now().Add(-stuckWrite)
		for c, in := range l.conns {
			if ws := writingSince(c); c != newest && in.state == http.StateActive && !ws.IsZero() && ws.Before(limit) &&
				(victim == nil || ws.Before(vt)) {
				victim, vt = c, ws
			}
		}
	}
	if victim == nil {
		victim = newest
	}
	delete(l.conns, victim)
	_ = victim.Close()
}

// listen wraps l so that the limiter can tell a connection whose answer cannot be written
// (see evict).
func (l *connLimiter) listen(inner net.Listener) net.Listener { return writeTimedListener{inner} }

type writeTimedListener struct{ net.Listener }

func (w writeTimedListener) Accept() (net.Conn, error) {
	c, err := w.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeTimedConn{Conn: c}, nil
}

// writeTimedConn records when a Write in progress began (0: none).
type writeTimedConn struct {
	net.Conn
	since atomic.Int64
}

func (c *writeTimedConn) Write(b []byte) (int, error) {
	c.since.Store(time.Now().UnixNano())
	n, err := c.Conn.Write(b)
	c.since.Store(0)
	return n, err
}

// writingSince is when the Write in progress on c (or on the connection under its TLS)
// began; zero when none is.
func writingSince(c net.Conn) time.Time {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if wc, ok := c.(*writeTimedConn); ok {
		if ns := wc.since.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
	}
	return time.Time{}
}

// Open is the number of connections tracked (for tests and metrics).
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

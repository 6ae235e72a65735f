package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
)

var (
	secEngineOnce sync.Once
	secEngine     *engine.Engine
	secCfg        *config.Config
)

// securityEngine is one engine on the shipped config for the security tests, each of which
// serves it with its own [server] settings.
func securityEngine(t *testing.T) (*engine.Engine, config.Server) {
	t.Helper()
	secEngineOnce.Do(func() {
		cfg, err := config.Load(filepath.Join(testplugins.Root, "config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		relax(cfg)
		cfg.Runtime.CacheDir = ""
		if secEngine, err = engine.New(context.Background(), cfg, hclog.NewNullLogger()); err != nil {
			t.Fatal(err)
		}
		secCfg = cfg
	})
	if secEngine == nil {
		t.Fatal("engine did not start")
	}
	return secEngine, secCfg.Server
}

// serveWith serves the security engine with sc on a loopback port; it returns the address.
func serveWith(t *testing.T, sc config.Server) string {
	t.Helper()
	e, _ := securityEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(e, sc, hclog.NewNullLogger())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

func writeToken(t *testing.T, dir, name, tok string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func request(t *testing.T, c *http.Client, method, url, token string, body []byte) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "image/png")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestTokens: with server.tokens, every route but health needs a token with its scope; a
// missing or wrong token gets 401 and nothing else; an observe-only token can scrape
// /metrics but not infer, an infer-only token the reverse; a rotated token file applies
// without a restart; errors shown to a caller without observe name no absolute path.
func TestTokens(t *testing.T) {
	_, sc := securityEngine(t)
	dir := t.TempDir()
	both := "tok-both-0123456789abcdef"
	obs := "tok-observe-0123456789abcdef"
	inf := "tok-infer-0123456789abcdef"
	bothFile := writeToken(t, dir, "both", both)
	sc.Tokens = []config.Token{
		{File: bothFile, Scopes: []string{config.ScopeInfer, config.ScopeObserve}},
		{File: writeToken(t, dir, "obs", obs), Scopes: []string{config.ScopeObserve}},
		{File: writeToken(t, dir, "inf", inf), Scopes: []string{config.ScopeInfer}},
	}
	url := "http://" + serveWith(t, sc)
	c := http.DefaultClient
	img := peacock(t)
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"health without token", "GET", "/v2/health/ready", "", 200},
		{"live without token", "GET", "/v2/health/live", "", 200},
		{"infer without token", "POST", "/v1/pipelines/classify", "", 401},
		{"infer with a wrong token", "POST", "/v1/pipelines/classify", "not-a-token-0123456789", 401},
		{"status without token", "GET", "/status", "", 401},
		{"metrics without token", "GET", "/metrics", "", 401},
		{"infer with both", "POST", "/v1/pipelines/classify", both, 200},
		{"infer with observe only", "POST", "/v1/pipelines/classify", obs, 403},
		{"metrics with observe only", "GET", "/metrics", obs, 200},
		{"status with observe only", "GET", "/status", obs, 200},
		{"infer with infer only", "POST", "/v1/pipelines/classify", inf, 200},
		{"metrics with infer only", "GET", "/metrics", inf, 403},
		{"status with infer only", "GET", "/status", inf, 403},
	} {
		var body []byte
		if tc.method == "POST" {
			body = img
		}
		code, hdr, b := request(t, c, tc.method, url+tc.path, tc.token, body)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
			continue
		}
		if code == 401 {
			if hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: no WWW-Authenticate", tc.name)
			}
			if want := `{"error":"unauthorized: a valid bearer token is required","class":"unauthorized"}`; strings.TrimSpace(b) != want {
				t.Errorf("%s: body %q reveals more than %q", tc.name, b, want)
			}
		}
	}
	// An error for an infer-only caller names no file path; an observer sees it.
	code, _, b := request(t, c, "POST", url+"/v1/pipelines/nope", inf, img)
	if code != 404 || strings.Contains(b, testplugins.Root) {
		t.Errorf("unknown pipeline for an infer-only caller: %d %s", code, b)
	}
	// Rotation: the file gets a new token; the old one stops working at once.
	writeToken(t, dir, "both", "tok-rotated-0123456789abcdef")
	if code, _, b := request(t, c, "GET", url+"/status", both, nil); code != 401 {
		t.Errorf("old token after rotation: %d %s", code, b)
	}
	if code, _, b := request(t, c, "GET", url+"/status", "tok-rotated-0123456789abcdef", nil); code != 200 {
		t.Errorf("rotated token: %d %s", code, b)
	}
}

// certs makes a CA and a certificate it signs (server: for 127.0.0.1; client otherwise).
type certs struct {
	caPEM, certPEM, keyPEM []byte
	ca                     *x509.Certificate
	caKey                  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *certs {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &certs{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca: ca, caKey: key}
}

func (c *certs) issue(t *testing.T, cn string, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestTLS: server.tls serves HTTPS; with client_ca_file a client certificate from that CA
// is accepted and one from another CA (or none) is refused at the handshake; a renewed
// server certificate written over the files is served at the next handshake.
func TestTLS(t *testing.T) {
	_, sc := securityEngine(t)
	dir := t.TempDir()
	ca, other := newCA(t, "edgehost test CA"), newCA(t, "another CA")
	srvCert, srvKey := ca.issue(t, "edgehost", 10, true)
	cliCert, cliKey := ca.issue(t, "client", 11, false)
	badCert, badKey := other.issue(t, "intruder", 12, false)
	w := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	sc.TLS = &config.TLS{CertFile: w("srv.pem", srvCert), KeyFile: w("srv.key", srvKey), ClientCAFile: w("ca.pem", ca.caPEM)}
	addr := serveWith(t, sc)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.caPEM)
	client := func(cert, key []byte) *http.Client {
		tc := &tls.Config{RootCAs: roots}
		if cert != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	good := client(cliCert, cliKey)
	if code, _, b := request(t, good, "POST", "https://"+addr+"/v1/pipelines/classify", "", peacock(t)); code != 200 || top1(t, []byte(b)) != "peacock" {
		t.Fatalf("mTLS client with the right CA: %d %s", code, b)
	}
	for name, c := range map[string]*http.Client{"a client certificate from another CA": client(badCert, badKey), "no client certificate": client(nil, nil)} {
		resp, err := c.Get("https://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: accepted (%d)", name, resp.StatusCode)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
	// Plain HTTP to the TLS port gets no answer of edgehost's.
	if resp, err := http.Get("http://" + addr + "/v2/health/ready"); err == nil {
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP answered 200 on the TLS port")
		}
		resp.Body.Close()
	}
	// Renewal: a new certificate (serial 20) over the same files is served from the next
	// handshake on.
	newCert, newKey := ca.issue(t, "edgehost", 20, true)
	w("srv.key", newKey)
	w("srv.pem", newCert)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: good.Transport.(*http.Transport).TLSClientConfig.Certificates})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 20 {
		t.Errorf("after renewal the server presents serial %d, want 20", got)
	}
}

// TestConnectionCap: with more idle connections than server.max_connections (keep-alive
// clients that stay, and connections that never send a request), health still answers
// within 100 ms: the idlest connection is closed to make room.
func TestConnectionCap(t *testing.T) {
	_, sc := securityEngine(t)
	sc.MaxConnections = 32
	addr := serveWith(t, sc)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// 40 keep-alive connections that made one request and stay idle, then 60 that never
	// send anything.
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i < 40 {
			fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 512)
			if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
				t.Fatalf("keep-alive request %d: %v %q", i, err, buf[:n])
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	worst := time.Duration(0)
	for i := 0; i < 10; i++ {
		start := time.Now()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/v2/health/ready")
		if err != nil {
			t.Fatalf("health at the connection cap: %v", err)
		}
		resp.Body.Close()
		worst = max(worst, time.Since(start))
	}
	t.Logf("health at the cap (32) with 100 idle connections: worst of 10 %v", worst)
	if worst > 100*time.Millisecond {
		t.Errorf("health took %v at the connection cap, want within 100 ms", worst)
	}
	// The server holds at most 32: the others were closed by it (read: EOF).
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed < 100-32 {
		t.Errorf("the server closed %d of 100 idle connections, want at least %d (cap 32)", closed, 100-32)
	}
}

// TestContentLengthAndChunked: a request with both Content-Length and Transfer-Encoding:
// chunked is answered and its connection closed (RFC 9112 §6.3): nothing after it on the
// connection is read as a second request.
func TestContentLengthAndChunked(t *testing.T) {
	_, sc := securityEngine(t)
	addr := serveWith(t, sc)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/pipelines/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"+
		"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	all, _ := io.ReadAll(c)
	if n := strings.Count(string(all), "HTTP/1.1 "); n != 1 || !strings.Contains(string(all), "Connection: close") {
		t.Fatalf("want one answer and the connection closed, got %d answers:\n%s", n, all)
	}
}

package server_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestConnectionCapStuckReaders: clients that pipeline requests and never read the answers
// keep their connections active (the server blocks writing an answer: no write deadline),
// and active connections are never closed at the cap. With the cap held that way by anyone
// who can connect (no token: health answers them), health must still get in, as it does
// past idle connections (TestConnectionCap).
func TestConnectionCapStuckReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("pipelines megabytes of requests: not under -race -short")
	}
	_, sc := securityEngine(t)
	sc.MaxConnections = 16
	addr := serveWith(t, sc)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	burst := bytes.Repeat([]byte("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"), 2000)
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for i := 0; i < 24; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Write until the server stops reading (its answers fill the socket), or 4 s.
			c.SetWriteDeadline(time.Now().Add(4 * time.Second))
			for {
				if _, err := c.Write(burst); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	var last error
	for i := 0; i < 5; i++ {
		resp, err := client.Get("http://" + addr + "/v2/health/live")
		if err != nil {
			failed++
			last = err
			continue
		}
		resp.Body.Close()
	}
	if failed > 0 {
		t.Errorf("health failed %d of 5 times with the cap (16) held by connections that do not read their answers: %v", failed, last)
	}
}

// TestConnectionCapStalledH2: over TLS, HTTP/2 clients that open a stream and grant no flow
// control window (SETTINGS_INITIAL_WINDOW_SIZE 0) keep each connection active for ever: the
// answer is never written to the socket (no write blocks), the handler waits for a window.
// With the cap held that way by anyone who can connect, health must still get in.
func TestConnectionCapStalledH2(t *testing.T) {
	_, sc := securityEngine(t)
	dir := t.TempDir()
	ca := newCA(t, "edgehost test CA")
	srvCert, srvKey := ca.issue(t, "edgehost", 10, true)
	w := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	sc.TLS = &config.TLS{CertFile: w("srv.pem", srvCert), KeyFile: w("srv.key", srvKey)}
	sc.MaxConnections = 16
	addr := serveWith(t, sc)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.caPEM)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 24; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
		if err != nil {
			continue // at the cap: the cap is held already
		}
		conns = append(conns, c)
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			if i == 0 {
				t.Logf("HTTP/2 refused (ALPN %q): nothing to stall", p)
			}
			continue
		}
		c.Write([]byte(http2.ClientPreface))
		fr := http2.NewFramer(c, c)
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/v2/health/live"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		go io.Copy(io.Discard, c) // read everything (the server's frames), grant nothing
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	failed := 0
	var last error
	for i := 0; i < 5; i++ {
		resp, err := client.Get("https://" + addr + "/v2/health/live")
		if err != nil {
			failed++
			last = err
			continue
		}
		resp.Body.Close()
	}
	if failed > 0 {
		t.Errorf("health failed %d of 5 times with the cap (16) held by HTTP/2 connections granting no window: %v", failed, last)
	}
}

// TestConnectionCapUnsentBodies: requests that announce a body and never send it (health
// itself, GET with Content-Length: 1000): the handler does not read it, and Go's server
// reads it before it writes the answer (to keep the connection), with no read deadline
// outside the handlers that read bodies. Each such connection stays active for ever,
// nothing written, so nothing evictable: anyone who can connect held the cap.
func TestConnectionCapUnsentBodies(t *testing.T) {
	for _, req := range []string{
		"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
		// with tokens required: answered 401 before the body is read
		"POST /v1/pipelines/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
		"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
	} {
		t.Run(strings.Fields(req)[0]+" "+strings.Fields(req)[1], func(t *testing.T) { unsentBodies(t, req) })
	}
}

func unsentBodies(t *testing.T, req string) {
	_, sc := securityEngine(t)
	sc.MaxConnections = 16
	sc.Tokens = []config.Token{{File: writeToken(t, t.TempDir(), "tok", "tok-0123456789abcdef-cap"), Scopes: []string{config.ScopeInfer, config.ScopeObserve}}}
	addr := serveWith(t, sc)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 24; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte(req))
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	var last error
	for i := 0; i < 5; i++ {
		resp, err := client.Get("http://" + addr + "/v2/health/live")
		if err != nil {
			failed++
			last = err
			continue
		}
		resp.Body.Close()
	}
	if failed > 0 {
		t.Errorf("health failed %d of 5 times with the cap (16) held by requests whose announced body never comes: %v", failed, last)
	}
}

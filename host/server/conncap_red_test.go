package server_test

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConnectionCapStuckReaders: clients that pipeline requests and never read the answers
// keep their connections active (the server blocks writing an answer: no write deadline),
// and active connections are never closed at the cap. With the cap held that way by anyone
// who can connect (no token: health answers them), health must still get in, as it does
// past idle connections (TestConnectionCap).
func TestConnectionCapStuckReaders(t *testing.T) {
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

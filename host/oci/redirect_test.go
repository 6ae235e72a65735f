package oci

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRedirectHTTPSToHTTP: a redirect from https to http is refused, even to a host that
// redirect_hosts allows, and the http server never hears from the client.
func TestRedirectHTTPSToHTTP(t *testing.T) {
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/blob", http.StatusTemporaryRedirect)
	}))
	defer tls.Close()
	c := client(Options{RedirectHosts: []string{"127.0.0.1"}})
	c.Transport = tls.Client().Transport
	resp, err := c.Get(tls.URL + "/v2/m/blobs/x")
	if err == nil {
		resp.Body.Close()
		t.Fatal("a redirect from https to http was followed")
	}
	if !strings.Contains(err.Error(), "from https to http") {
		t.Errorf("error %q does not say why", err)
	}
	if plainHits.Load() != 0 {
		t.Error("the http server was contacted")
	}
	// https to https on another host that is allowed: followed.
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	tls.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/blob", http.StatusTemporaryRedirect)
	})
	if resp, err := c.Get(tls.URL + "/v2/m/blobs/x"); err != nil {
		t.Errorf("an https redirect to an allowed host: %v", err)
	} else {
		resp.Body.Close()
	}
	// ... and refused when the host is not allowed.
	c2 := client(Options{})
	c2.Transport = tls.Client().Transport
	if resp, err := c2.Get(tls.URL + "/v2/m/blobs/x"); err == nil {
		resp.Body.Close()
		t.Error("an https redirect to another port was followed without redirect_hosts")
	}
}

package mqtt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/mqtt"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/prometheus/client_golang/prometheus"
)

// pki is a certificate authority and the certificates it signed, as PEM files in a
// directory.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	p := &pki{dir: dir}
	p.ca, p.caKey = p.issue(t, name, &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	return p
}

// issue signs tmpl (self-signed while p has no CA yet) and writes file.pem and file.key.
func (p *pki) issue(t *testing.T, file string, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	parent, parentKey := p.ca, p.caKey
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(file+".pem", "CERTIFICATE", der)
	write(file+".key", "EC PRIVATE KEY", kder)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// TestTLSAndPassword: the bridge talks to a mosquitto that takes only TLS (its certificate
// signed by ca_file), asks for a client certificate, and checks a user name and password
// (password_file); an image is answered. A wrong password, a CA that did not sign the
// broker's certificate, and no client certificate are each a clear error from Start.
func TestTLSAndPassword(t *testing.T) {
	passwd := filepath.Join(testplugins.Root, ".deps/mosquitto/usr/bin/mosquitto_passwd")
	if _, err := os.Stat(passwd); err != nil {
		t.Skipf("%s is not there: `make brokers` fetches it", passwd)
	}
	dir := t.TempDir()
	p := newPKI(t, dir, "ca")
	p.issue(t, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature})
	p.issue(t, "client", &x509.Certificate{Subject: pkix.Name{CommonName: "edgehost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	other := newPKI(t, t.TempDir(), "other-ca")
	cmd := exec.Command(passwd, "-c", "-b", p.path("passwd"), "edgehost", "s3cret pass")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(testplugins.Root, ".deps/mosquitto/usr/lib/x86_64-linux-gnu"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	for name, text := range map[string]string{"password": "s3cret pass\n", "wrong": "s3cret\n"} {
		if err := os.WriteFile(p.path(name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := mosquittoWith(t, func(string) string {
		return strings.Join([]string{"allow_anonymous false", "password_file " + p.path("passwd"),
			"cafile " + p.path("ca.pem"), "certfile " + p.path("server.pem"), "keyfile " + p.path("server.key"),
			"require_certificate true"}, "\n")
	})
	cert, err := tls.LoadX509KeyPair(p.path("client.pem"), p.path("client.key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	f := newFixtureWith(t, opts{maxInflight: 2, addr: addr, scheme: "mqtts",
		mqtt: strings.Join([]string{`ca_file = "` + p.path("ca.pem") + `"`, `cert_file = "` + p.path("client.pem") + `"`,
			`key_file = "` + p.path("client.key") + `"`, `username = "edgehost"`, `password_file = "` + p.path("password") + `"`}, "\n"),
		clientCfg: func(c *autopaho.ClientConfig) {
			c.ServerUrls = []*url.URL{{Scheme: "mqtts", Host: addr}}
			c.TlsCfg = &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}
			c.ConnectUsername, c.ConnectPassword = "edgehost", []byte("s3cret pass")
		}})
	collector := f.client(t, "collector-tls", "results/p", "errors/p")
	pub := f.client(t, "pub-tls")
	f.answered(t, pub, collector, "over-tls", burstWait)

	for _, c := range []struct {
		name string
		edit func(*config.MQTT)
		want string
	}{
		{"wrong password", func(m *config.MQTT) { m.PasswordFile = p.path("wrong") }, "wrong credentials"},
		{"untrusted broker certificate", func(m *config.MQTT) { m.CAFile = other.path("other-ca.pem") }, "not trusted"},
		{"no client certificate", func(m *config.MQTT) { m.CertFile, m.KeyFile = "", "" }, "refused the TLS handshake"},
	} {
		cfg := f.cfg
		cfg.ClientID = "edgehost-bad"
		c.edit(&cfg)
		start := time.Now()
		b, err := mqtt.Start(context.Background(), f.e, "p", cfg, 30*time.Second, mqtt.NewMetrics(prometheus.NewRegistry()), f.log)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			b.Close(ctx)
			cancel()
			t.Errorf("%s: Start succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		t.Logf("%s: Start failed in %v: %v", c.name, time.Since(start).Round(time.Millisecond), err)
	}
	// A broker that takes every connection and resets it at once (what a broker refusing the
	// client looks like when the RST overtakes its TLS alert, seen under -race on a busy
	// machine): Start fails saying so, instead of returning a bridge that never connects.
	restore := mqtt.SetStartWait(2 * time.Second)
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		}
	}()
	rcfg := f.cfg
	rcfg.ClientID, rcfg.Broker = "edgehost-reset", "mqtts://"+rl.Addr().String()
	if b, err := mqtt.Start(context.Background(), f.e, "p", rcfg, 30*time.Second, mqtt.NewMetrics(prometheus.NewRegistry()), f.log); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b.Close(ctx)
		cancel()
		t.Error("a broker that resets every connection: Start succeeded")
	} else if !strings.Contains(err.Error(), "closed every connection right after it") {
		t.Errorf("a broker that resets every connection: %v", err)
	} else {
		t.Logf("a broker that resets every connection: %v", err)
	}
	restore()

	// A broker that is down is no config error: Start returns, the bridge retries.
	cfg := f.cfg
	cfg.ClientID, cfg.Broker = "edgehost-down", "mqtts://127.0.0.1:"+strconv.Itoa(testservers.FreePort(t))
	start := time.Now()
	b, err := mqtt.Start(context.Background(), f.e, "p", cfg, 30*time.Second, mqtt.NewMetrics(prometheus.NewRegistry()), f.log)
	if err != nil {
		t.Fatalf("a broker that is down: %v", err)
	}
	t.Logf("a broker that is down: Start returned in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.Close(ctx)
}

package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/internal/safefile"
)

// maxPEM bounds a certificate, key or CA bundle file. Like every file a config names, they
// are read through safefile: a FIFO or a device is refused, never waited on.
const maxPEM = 1 << 20

// tlsConfig is the TLS configuration for cfg's broker: nil for a plain one; its ca_file's
// authorities (else the system's) and its client certificate.
func tlsConfig(cfg config.MQTT) (*tls.Config, error) {
	if !cfg.TLS() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := safefile.ReadFile(cfg.CAFile, maxPEM)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	if cfg.CertFile != "" {
		certPEM, err := safefile.ReadFile(cfg.CertFile, maxPEM)
		if err != nil {
			return nil, fmt.Errorf("cert_file: %w", err)
		}
		keyPEM, err := safefile.ReadFile(cfg.KeyFile, maxPEM)
		if err != nil {
			return nil, fmt.Errorf("key_file: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// password reads cfg's password_file ("" without one), dropping one trailing newline.
func password(cfg config.MQTT) ([]byte, error) {
	if cfg.PasswordFile == "" {
		return nil, nil
	}
	b, err := safefile.ReadFile(cfg.PasswordFile, safefile.MaxKey)
	if err != nil {
		return nil, fmt.Errorf("password_file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return []byte(s), nil
}

// refusals are the CONNACK reason codes that trying again does not mend: the config does.
var refusals = map[byte]string{
	0x84: "unsupported protocol version (the broker does not speak MQTT 5)",
	0x85: "client identifier not valid (client_id)",
	0x86: "bad user name or password (username, password_file)",
	0x87: "not authorized: wrong credentials, or no rights (username, password_file, client certificate)",
	0x8A: "banned",
	0x8C: "bad authentication method",
}

// fatal says why a failed connection attempt is a config error (wrong credentials, a
// certificate the other side does not trust, TLS to a plain listener), "" when it may pass
// (the broker is down or unreachable: retried with backoff).
func fatal(err error) string {
	if err == nil {
		return ""
	}
	var ca *autopaho.ConnackError
	if errors.As(err, &ca) {
		if why, ok := refusals[ca.ReasonCode]; ok {
			return fmt.Sprintf("the broker refused the connection: %s (CONNACK reason 0x%02X)", why, ca.ReasonCode)
		}
		return ""
	}
	var (
		verify *tls.CertificateVerificationError
		unkCA  x509.UnknownAuthorityError
		host   x509.HostnameError
		inval  x509.CertificateInvalidError
		record tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unkCA), errors.As(err, &host), errors.As(err, &inval):
		return "the broker's certificate is not trusted (ca_file): " + err.Error()
	case strings.Contains(err.Error(), "remote error: tls: "): // crypto/tls's alert type is not exported
		return "the broker refused the TLS handshake (client certificate: cert_file, key_file): " + err.Error()
	case errors.As(err, &record):
		return "the broker did not answer in TLS (a plain listener? use mqtt://): " + err.Error()
	}
	return ""
}

// unreachable says whether err is a failure to reach the broker at all (no connection, or
// no answer in time): it may be down, and is retried with backoff. A reset while dialling
// is not: something took the connection and reset it (the kernel completed the handshake
// for a listener that then closed it with RST), as a broker that refuses the client does.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return !errors.Is(err, syscall.ECONNRESET)
	}
	return errors.Is(err, context.DeadlineExceeded)
}

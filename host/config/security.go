package config

import (
	"fmt"
	"slices"
)

// TLS serves HTTP and gRPC over TLS. The files are read at every handshake they changed for:
// a renewed certificate applies without a restart.
type TLS struct {
	CertFile string `toml:"cert_file"` // PEM certificate chain; required
	KeyFile  string `toml:"key_file"`  // PEM private key; required
	// ClientCAFile, when set, turns on mutual TLS: a client must present a certificate
	// signed by one of these CAs (PEM), or the handshake fails.
	ClientCAFile string `toml:"client_ca_file"`
}

// Token is one bearer token that callers present as "Authorization: Bearer TOKEN" (gRPC:
// the "authorization" metadata). Several tokens at once allow rotation.
type Token struct {
	File string `toml:"file"` // holds the token (one line, at least 16 characters); re-read when it changes
	// Scopes: "infer" (run pipelines and models, list and describe them) and "observe"
	// (/status, /metrics, metadata). Default: both.
	Scopes []string `toml:"scopes"`
}

// Scopes a token can grant.
const (
	ScopeInfer   = "infer"
	ScopeObserve = "observe"
)

// DefaultMaxConnections bounds the open connections of each listener when
// server.max_connections is unset (further bounded by the file-descriptor limit).
const DefaultMaxConnections = 1024

// completeSecurity checks the [server.tls] table, the [[server.tokens]] and
// max_connections, and makes their paths absolute.
func (s *Server) completeSecurity(abs func(string) string, bad func(string, ...string)) {
	if t := s.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			bad("cert_file and key_file are both required for TLS", "server", "tls")
		}
		t.CertFile, t.KeyFile, t.ClientCAFile = abs(t.CertFile), abs(t.KeyFile), abs(t.ClientCAFile)
	}
	for i := range s.Tokens {
		tk := &s.Tokens[i]
		if tk.File == "" {
			bad("file is required (the file holding the token)", "server", "tokens", fmt.Sprint(i), "file")
		}
		tk.File = abs(tk.File)
		if len(tk.Scopes) == 0 {
			tk.Scopes = []string{ScopeInfer, ScopeObserve}
		}
		for _, sc := range tk.Scopes {
			if sc != ScopeInfer && sc != ScopeObserve {
				bad(fmt.Sprintf("scope %q: want %q or %q", sc, ScopeInfer, ScopeObserve), "server", "tokens", fmt.Sprint(i), "scopes")
			}
		}
		slices.Sort(tk.Scopes)
		tk.Scopes = slices.Compact(tk.Scopes)
	}
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultMaxConnections
	} else if s.MaxConnections < 16 {
		bad(fmt.Sprintf("max_connections %d: at least 16 (health probes need room)", s.MaxConnections), "server", "max_connections")
	}
}

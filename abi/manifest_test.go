package abi

import (
	"strings"
	"testing"
)

// TestManifestBounds: manifest strings that reach logs and responses are bounded, and a
// post plugin cannot declare a result type a browser would run.
func TestManifestBounds(t *testing.T) {
	good := Manifest{Name: "x", Version: "1.0.0+build.7", ABI: Version, Kind: KindPost}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*Manifest)
		want string
	}{
		{"1 MB version", func(m *Manifest) { m.Version = strings.Repeat("v", 1<<20) }, "version must be 1 to 64"},
		{"version with a newline", func(m *Manifest) { m.Version = "1\n[INFO] forged" }, "version must be"},
		{"long description", func(m *Manifest) { m.Description = strings.Repeat("d", 2000) }, "description of 2000 bytes"},
		{"text/html", func(m *Manifest) { m.ContentType = "text/html" }, "not allowed"},
		{"svg", func(m *Manifest) { m.ContentType = "image/svg+xml" }, "not allowed"},
		{"odd parameter", func(m *Manifest) { m.ContentType = "text/plain; x=<script>" }, "not allowed"},
	} {
		m := good
		c.edit(&m)
		err := m.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if err != nil && len(err.Error()) > 600 {
			t.Errorf("%s: error of %d bytes", c.name, len(err.Error()))
		}
	}
	for _, ct := range []string{"application/json", "text/plain; charset=utf-8", "image/png"} {
		if !ResultTypeAllowed(ct) {
			t.Errorf("%q refused", ct)
		}
	}
}

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

// TestSectionLayoutAsDocumented: a manifest section written byte by byte as ABI.md §6
// describes it (id 0, LEB128 size n+18, name length 17, the name, the JSON) is the one the
// host reads, and the last of two wins.
func TestSectionLayoutAsDocumented(t *testing.T) {
	leb := func(v int) []byte { return AppendULEB(nil, uint64(v)) }
	section := func(man string) []byte {
		b := append([]byte{0}, leb(len(man)+18)...)
		b = append(append(b, 0x11), "edgehost.manifest"...)
		return append(b, man...)
	}
	mod := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	first := `{"name":"first","version":"1","abi":1,"kind":"pre"}`
	// A manifest over 127 bytes needs a two-byte size.
	second := `{"name":"second","version":"1.0.0","abi":1,"kind":"post","description":"` + strings.Repeat("x", 200) + `"}`
	mod = append(append(mod, section(first)...), section(second)...)
	raw, ok, err := CustomSection(mod, ManifestSection)
	if err != nil || !ok || string(raw) != second {
		t.Fatalf("read %q, %v, %v; want the second manifest", raw, ok, err)
	}
	if m, err := ParseManifest(raw); err != nil || m.Name != "second" {
		t.Fatalf("parse: %+v, %v", m, err)
	}
}

// TestUnknownManifestKeys: keys a later 1.x host may define are accepted and listed (ABI.md
// §6, §9); the known keys still have to be valid.
func TestUnknownManifestKeys(t *testing.T) {
	m, err := ParseManifest([]byte(`{"name":"x","version":"1","abi":1,"kind":"post","homepage":"h","min_host":"1.2"}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Unknown, ",") != "homepage,min_host" {
		t.Errorf("Unknown = %v, want [homepage min_host]", m.Unknown)
	}
	for _, bad := range []string{`{"name":"x","version":"1","abi":"1","kind":"post"}`, `null`, `{"name":"x","version":"1","abi":1,"kind":"post"} {}`} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

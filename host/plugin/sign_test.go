package plugin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// testKey is a deterministic ed25519 key pair derived from seed byte b.
func testKey(b byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testplugins.Example(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSign(t *testing.T, wasm []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	s, err := plugin.Sign(wasm, key)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return s
}

// tamperCode flips one byte in the middle of the code section (id 10).
func tamperCode(t *testing.T, wasm []byte) []byte {
	t.Helper()
	secs, err := abi.Sections(wasm)
	if err != nil {
		t.Fatal(err)
	}
	off := 8 // sections follow the 8-byte header
	for _, s := range secs {
		if s.ID == 10 {
			out := append([]byte(nil), wasm...)
			out[off+len(s.Raw)/2] ^= 0x01
			return out
		}
		off += len(s.Raw)
	}
	t.Fatal("module has no code section")
	return nil
}

// tamperManifest replaces the manifest with one claiming another version.
func tamperManifest(t *testing.T, wasm []byte) []byte {
	t.Helper()
	raw, ok, err := abi.CustomSection(wasm, abi.ManifestSection)
	if err != nil || !ok {
		t.Fatalf("no manifest: %v", err)
	}
	changed := bytes.Replace(raw, []byte(`"1.0.0"`), []byte(`"6.6.6"`), 1)
	if bytes.Equal(changed, raw) {
		t.Fatalf("manifest %s has no version 1.0.0", raw)
	}
	out, err := abi.SetCustomSection(wasm, abi.ManifestSection, changed)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSignVerify(t *testing.T) {
	wasm := readExample(t, "classify-go")
	pubA, privA := testKey(1)
	pubB, privB := testKey(2)
	signed := mustSign(t, wasm, privA)

	t.Run("round trip", func(t *testing.T) {
		id, err := plugin.Verify(signed, []ed25519.PublicKey{pubA})
		if err != nil || id != plugin.KeyID(pubA) {
			t.Fatalf("Verify = %q, %v; want %q", id, err, plugin.KeyID(pubA))
		}
		// Among several trusted keys.
		if id, err := plugin.Verify(signed, []ed25519.PublicKey{pubB, pubA}); err != nil || id != plugin.KeyID(pubA) {
			t.Fatalf("Verify with two keys = %q, %v", id, err)
		}
		// The signature is a custom section: the code and the manifest are untouched.
		stripped, err := abi.SetCustomSection(signed, abi.SignatureSection, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stripped, wasm) {
			t.Error("removing the signature section does not give back the original module")
		}
		if _, ok, _ := abi.CustomSection(signed, abi.SignatureSection); !ok {
			t.Error("signed module has no signature section")
		}
	})
	t.Run("resigning replaces the signature", func(t *testing.T) {
		again := mustSign(t, signed, privB)
		if id, err := plugin.Verify(again, []ed25519.PublicKey{pubB}); err != nil || id != plugin.KeyID(pubB) {
			t.Fatalf("Verify = %q, %v", id, err)
		}
		if _, err := plugin.Verify(again, []ed25519.PublicKey{pubA}); err == nil || !strings.Contains(err.Error(), "not among the trusted keys") {
			t.Fatalf("old key still accepted: %v", err)
		}
	})
	t.Run("tampered code", func(t *testing.T) {
		_, err := plugin.Verify(tamperCode(t, signed), []ed25519.PublicKey{pubA})
		if err == nil || !strings.Contains(err.Error(), "modified after signing") {
			t.Fatalf("Verify = %v, want modified after signing", err)
		}
	})
	t.Run("tampered manifest", func(t *testing.T) {
		_, err := plugin.Verify(tamperManifest(t, signed), []ed25519.PublicKey{pubA})
		if err == nil || !strings.Contains(err.Error(), "modified after signing") {
			t.Fatalf("Verify = %v, want modified after signing", err)
		}
	})
	t.Run("added section", func(t *testing.T) {
		extra, err := abi.SetCustomSection(signed, "extra", []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plugin.Verify(extra, []ed25519.PublicKey{pubA}); err == nil || !strings.Contains(err.Error(), "modified after signing") {
			t.Fatalf("Verify = %v, want modified after signing", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		_, err := plugin.Verify(signed, []ed25519.PublicKey{pubB})
		if err == nil || !strings.Contains(err.Error(), "not among the trusted keys") || !strings.Contains(err.Error(), plugin.KeyID(pubA)) {
			t.Fatalf("Verify = %v, want key %s not among the trusted keys", err, plugin.KeyID(pubA))
		}
		if _, err := plugin.Verify(signed, nil); err == nil || !strings.Contains(err.Error(), "not among the trusted keys") {
			t.Fatalf("Verify with no keys = %v", err)
		}
	})
	t.Run("forged signature under a trusted key id", func(t *testing.T) {
		// B signs, then the key id is rewritten to A's: the signature does not verify.
		byB := mustSign(t, wasm, privB)
		raw, _, _ := abi.CustomSection(byB, abi.SignatureSection)
		forged := bytes.Replace(raw, []byte(plugin.KeyID(pubB)), []byte(plugin.KeyID(pubA)), 1)
		mod, err := abi.SetCustomSection(byB, abi.SignatureSection, forged)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plugin.Verify(mod, []ed25519.PublicKey{pubA}); err == nil || !strings.Contains(err.Error(), "modified after signing") {
			t.Fatalf("Verify = %v", err)
		}
	})
	t.Run("garbage signature section", func(t *testing.T) {
		for payload, want := range map[string]string{
			"not json":                          "not valid JSON",
			`{"key_id":"00","sig":"!!!"}`:       "no valid ed25519 signature",
			`{"key_id":"00","sig":"c2hvcnQ="}`:  "no valid ed25519 signature",
			`{"key_id":"00","sig":""}`:          "no valid ed25519 signature",
			`{"key_id":"","sig":null,"x":true}`: "no valid ed25519 signature",
		} {
			mod, err := abi.SetCustomSection(wasm, abi.SignatureSection, []byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := plugin.Verify(mod, []ed25519.PublicKey{pubA}); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("payload %s: Verify = %v, want %q", payload, err, want)
			}
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		if _, err := plugin.Verify(wasm, []ed25519.PublicKey{pubA}); !errors.Is(err, plugin.ErrUnsigned) {
			t.Fatalf("Verify = %v, want ErrUnsigned", err)
		}
	})
	t.Run("sign without manifest", func(t *testing.T) {
		bare, err := abi.SetCustomSection(wasm, abi.ManifestSection, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plugin.Sign(bare, privA); err == nil || !strings.Contains(err.Error(), "no manifest") {
			t.Fatalf("Sign = %v, want no manifest", err)
		}
	})
	t.Run("sign garbage", func(t *testing.T) {
		if _, err := plugin.Sign([]byte("not wasm"), privA); err == nil {
			t.Fatal("signed a non-module")
		}
		if _, err := plugin.Verify([]byte("not wasm"), []ed25519.PublicKey{pubA}); err == nil || errors.Is(err, plugin.ErrUnsigned) {
			t.Fatalf("Verify of a non-module = %v", err)
		}
	})
	t.Run("keys parse", func(t *testing.T) {
		if _, err := plugin.ParsePublicKey("bm90IGEga2V5"); err == nil {
			t.Error("short public key accepted")
		}
		if _, err := plugin.ParsePrivateKey("%%%"); err == nil {
			t.Error("garbage private key accepted")
		}
	})
}

// TestSignedLoad: Runtime.Load enforces TrustedKeys and RequireSignature.
func TestSignedLoad(t *testing.T) {
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	wasm := readExample(t, "classify-go")
	pubA, privA := testKey(1)
	pubB, privB := testKey(2)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	signed := write("signed.wasm", mustSign(t, wasm, privA))
	unsigned := write("unsigned.wasm", wasm)
	tamperedManifest := write("tampered-manifest.wasm", tamperManifest(t, mustSign(t, wasm, privA)))
	tamperedCode := write("tampered-code.wasm", tamperCode(t, mustSign(t, wasm, privA)))
	otherKey := write("other-key.wasm", mustSign(t, wasm, privB))
	trusted := []ed25519.PublicKey{pubA}

	cases := []struct {
		name    string
		path    string
		keys    []ed25519.PublicKey
		require bool
		want    string // "" loads; otherwise the error contains it
	}{
		{"signed, required", signed, trusted, true, ""},
		{"signed, keys only", signed, trusted, false, ""},
		{"signed, no keys, not required", signed, nil, false, ""},
		{"signed, second of two keys", signed, []ed25519.PublicKey{pubB, pubA}, true, ""},
		{"unsigned, required", unsigned, trusted, true, "unsigned, and signatures are required"},
		{"unsigned, required, no keys", unsigned, nil, true, "unsigned, and signatures are required"},
		{"unsigned, keys, not required", unsigned, trusted, false, ""},
		{"unsigned, nothing configured", unsigned, nil, false, ""},
		{"tampered manifest, keys, not required", tamperedManifest, trusted, false, "modified after signing"},
		{"tampered manifest, required", tamperedManifest, trusted, true, "modified after signing"},
		{"tampered code, keys, not required", tamperedCode, trusted, false, "modified after signing"},
		{"untrusted key, keys, not required", otherKey, trusted, false, "not among the trusted keys"},
		{"untrusted key, required", otherKey, trusted, true, "not among the trusted keys"},
		{"signed, required, no keys", signed, nil, true, "not among the trusted keys"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := rt.Load(ctx, plugin.Config{Path: c.path, TrustedKeys: c.keys, RequireSignature: c.require})
			if c.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				defer m.Close(ctx)
				if m.Manifest.Name != "classify-go" {
					t.Errorf("manifest name %q", m.Manifest.Name)
				}
				return
			}
			if err == nil {
				m.Close(ctx)
				t.Fatalf("Load succeeded, want an error containing %q", c.want)
			}
			var le *plugin.LoadError
			if !errors.As(err, &le) || le.Path != c.path {
				t.Errorf("error %T %v is not a LoadError naming %s", err, err, c.path)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rejected") || !strings.Contains(err.Error(), c.path) {
				t.Errorf("error %q: want %q, \"rejected\" and the path", err, c.want)
			}
		})
	}
}

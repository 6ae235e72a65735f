package plugin

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/edgehost/edgehost/abi"
)

// A signature binds a module's bytes, manifest included: it signs
// "edgehost-plugin-v1\n" + sha256 of the module without its signature section.

const signDomain = "edgehost-plugin-v1\n"

// signature is the JSON payload of the abi.SignatureSection custom section.
type signature struct {
	KeyID string `json:"key_id"` // KeyID of the signing key
	Sig   string `json:"sig"`    // base64 ed25519 signature
}

// KeyID names a public key: the first 8 bytes of its sha256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

func signedDigest(wasm []byte) ([]byte, error) {
	unsigned, err := abi.SetCustomSection(wasm, abi.SignatureSection, nil)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(unsigned)
	return append([]byte(signDomain), d[:]...), nil
}

// Sign returns wasm with an abi.SignatureSection made with key (replacing any earlier one).
func Sign(wasm []byte, key ed25519.PrivateKey) ([]byte, error) {
	msg, err := signedDigest(wasm)
	if err != nil {
		return nil, err
	}
	if _, ok, _ := abi.CustomSection(wasm, abi.ManifestSection); !ok {
		return nil, errors.New("module has no manifest: embed it before signing (the signature covers it)")
	}
	payload, _ := json.Marshal(signature{KeyID: KeyID(key.Public().(ed25519.PublicKey)), Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))})
	return abi.SetCustomSection(wasm, abi.SignatureSection, payload)
}

// ErrUnsigned is returned by Verify for a module without a signature section.
var ErrUnsigned = errors.New("module is not signed")

// Verify checks the module's signature against the trusted keys and returns the KeyID of
// the key that signed it.
func Verify(wasm []byte, trusted []ed25519.PublicKey) (string, error) {
	raw, ok, err := abi.CustomSection(wasm, abi.SignatureSection)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrUnsigned
	}
	var s signature
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("signature section is not valid JSON: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", errors.New("signature section holds no valid ed25519 signature")
	}
	msg, err := signedDigest(wasm)
	if err != nil {
		return "", err
	}
	for _, k := range trusted {
		if KeyID(k) == s.KeyID {
			if !ed25519.Verify(k, msg, sig) {
				return "", fmt.Errorf("signature by key %s does not match the module: it was modified after signing", s.KeyID)
			}
			return s.KeyID, nil
		}
	}
	return "", fmt.Errorf("signed by key %s, which is not among the trusted keys", s.KeyID)
}

// ParsePublicKey decodes a base64 ed25519 public key as written by `edgehost plugin keygen`.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not a base64 ed25519 public key (%d bytes)", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// PrivateKeyPrefix starts a private key file, so that a public key (also 32 bytes of
// base64) is never mistaken for one.
const PrivateKeyPrefix = "edgehost-ed25519-private:"

// FormatPrivateKey encodes a private key as `edgehost plugin keygen` writes it.
func FormatPrivateKey(k ed25519.PrivateKey) string {
	return PrivateKeyPrefix + base64.StdEncoding.EncodeToString(k.Seed())
}

// ParsePrivateKey decodes a private key written by FormatPrivateKey.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, PrivateKeyPrefix) {
		return nil, fmt.Errorf("not an edgehost private key (it must start with %q; is this the .pub file?)", PrivateKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PrivateKeyPrefix))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("not a base64 ed25519 private key seed (%d bytes)", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

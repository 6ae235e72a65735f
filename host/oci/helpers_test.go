package oci_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func digestOf(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(s[:]))
}

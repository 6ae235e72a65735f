package oci_test

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/opencontainers/go-digest"
)

func digestOf(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(s[:]))
}

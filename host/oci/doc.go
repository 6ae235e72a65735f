// Package oci pushes plugins and models to an OCI distribution registry and pulls them
// back into a local cache, checking every digest (manifest and layer) on the way, through
// oras-go. It knows nothing about loading or serving: host/engine decides when to pull and
// what a pulled file must pass. Imports host/config (for the reference type) and
// internal/safefile only.
package oci

package abi

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Manifest is the JSON object in a module's ManifestSection custom section.
type Manifest struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	ABI         int    `json:"abi"`
	Kind        Kind   `json:"kind"`
	ContentType string `json:"content_type,omitempty"`
	Description string `json:"description,omitempty"`
	// Frames (ABI 1.3, §5.7) lists the raw-frame pixel formats a pre plugin takes ("rgb24",
	// "gray"). A pipeline fed raw frames by a stream source needs its pre plugin to list the
	// source's format; a plugin without the key gets only encoded bytes.
	Frames []string `json:"frames,omitempty"`
	// Unknown lists the top-level keys ParseManifest did not know, sorted. A later 1.x host
	// may define them (ABI.md §9): they are ignored, and reported by `edgehost plugin check`.
	Unknown []string `json:"-"`
}

// knownKeys are the manifest keys of this ABI version.
var knownKeys = map[string]bool{"name": true, "version": true, "abi": true, "kind": true, "content_type": true, "description": true,
	"frames": true}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Manifest string bounds: the name and version appear in every log line and error response
// about a plugin.
const (
	MaxVersionLen     = 64
	MaxDescriptionLen = 1024
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)

// ResultTypes are the media types a post plugin's result may declare. Types a browser would
// render as active content under the server's origin (text/html, image/svg+xml, XML,
// JavaScript) are not among them; every response also carries X-Content-Type-Options: nosniff.
var ResultTypes = []string{"application/json", "text/plain", "text/csv", "application/octet-stream",
	"application/x-protobuf", "application/cbor", "image/png", "image/jpeg", "image/webp"}

// ResultTypeAllowed reports whether ct is one of ResultTypes, optionally followed by
// "; charset=…".
func ResultTypeAllowed(ct string) bool {
	base, params, _ := strings.Cut(ct, ";")
	base = strings.TrimSpace(base)
	if params = strings.TrimSpace(params); params != "" {
		k, v, ok := strings.Cut(params, "=")
		if !ok || strings.TrimSpace(strings.ToLower(k)) != "charset" || !charsetRE.MatchString(strings.TrimSpace(v)) {
			return false
		}
	}
	for _, t := range ResultTypes {
		if base == t {
			return true
		}
	}
	return false
}

var charsetRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// ParseManifest decodes and validates a manifest section's payload.
// Keys it does not know are accepted and listed in Unknown (ABI.md §9: a new manifest key
// keeps the ABI version, so a manifest written for a later 1.x host still loads); the known
// keys must have the right types, and the payload must be one JSON object.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	var keys map[string]json.RawMessage
	dec := json.NewDecoder(bytesReader(b))
	if err := dec.Decode(&keys); err != nil {
		return m, fmt.Errorf("manifest: invalid JSON: %w", err)
	}
	if keys == nil {
		return m, errors.New("manifest: want a JSON object, got null")
	}
	if dec.More() {
		return m, errors.New("manifest: invalid JSON: data after the object")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: invalid JSON: %w", err)
	}
	for k := range keys {
		if !knownKeys[k] {
			m.Unknown = append(m.Unknown, k)
		}
	}
	sort.Strings(m.Unknown)
	return m, m.Validate()
}

// Validate checks the manifest's required fields.
func (m Manifest) Validate() error {
	var errs []error
	if !nameRE.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("manifest: name %q must match %s", m.Name, nameRE))
	}
	switch {
	case m.Version == "":
		errs = append(errs, errors.New("manifest: version is missing"))
	case !versionRE.MatchString(m.Version):
		// The version is in every log line and error response about the plugin.
		errs = append(errs, fmt.Errorf("manifest: version must be 1 to %d printable ASCII characters without spaces (letters, digits, . _ + -)", MaxVersionLen))
	}
	if len(m.Description) > MaxDescriptionLen {
		errs = append(errs, fmt.Errorf("manifest: description of %d bytes exceeds %d", len(m.Description), MaxDescriptionLen))
	}
	if m.ContentType != "" && !ResultTypeAllowed(m.ContentType) {
		errs = append(errs, fmt.Errorf("manifest: content_type %.64q is not allowed: use one of %s (a charset parameter may follow)", m.ContentType, strings.Join(ResultTypes, ", ")))
	}
	if m.ABI != Version {
		errs = append(errs, fmt.Errorf("manifest: abi %d is not supported (this host supports %d)", m.ABI, Version))
	}
	for _, f := range m.Frames {
		if _, ok := PixelFormats[f]; !ok {
			errs = append(errs, fmt.Errorf("manifest: frames: unknown pixel format %.32q (known: rgb24, gray)", f))
		}
	}
	if len(m.Frames) > 0 && m.Kind == KindPost {
		errs = append(errs, errors.New("manifest: frames is for pre plugins (kind pre or both)"))
	}
	switch m.Kind {
	case KindPre, KindPost, KindBoth:
	default:
		errs = append(errs, fmt.Errorf("manifest: kind %q must be pre, post or both", m.Kind))
	}
	return errors.Join(errs...)
}

// TakesFrames reports whether the plugin declares raw frames of format f (§5.7).
func (m Manifest) TakesFrames(f PixelFormat) bool {
	for _, n := range m.Frames {
		if PixelFormats[n] == f {
			return true
		}
	}
	return false
}

// ResultType is the media type of a post plugin's result.
func (m Manifest) ResultType() string {
	if m.ContentType == "" {
		return "application/json"
	}
	return m.ContentType
}

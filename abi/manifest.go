package abi

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// Manifest is the JSON object in a module's ManifestSection custom section.
type Manifest struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	ABI         int    `json:"abi"`
	Kind        Kind   `json:"kind"`
	ContentType string `json:"content_type,omitempty"`
	Description string `json:"description,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ParseManifest decodes and validates a manifest section's payload.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("manifest: invalid JSON: %w", err)
	}
	return m, m.Validate()
}

// Validate checks the manifest's required fields.
func (m Manifest) Validate() error {
	var errs []error
	if !nameRE.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("manifest: name %q must match %s", m.Name, nameRE))
	}
	if m.Version == "" {
		errs = append(errs, errors.New("manifest: version is missing"))
	}
	if m.ABI != Version {
		errs = append(errs, fmt.Errorf("manifest: abi %d is not supported (this host supports %d)", m.ABI, Version))
	}
	switch m.Kind {
	case KindPre, KindPost, KindBoth:
	default:
		errs = append(errs, fmt.Errorf("manifest: kind %q must be pre, post or both", m.Kind))
	}
	return errors.Join(errs...)
}

// ResultType is the media type of a post plugin's result.
func (m Manifest) ResultType() string {
	if m.ContentType == "" {
		return "application/json"
	}
	return m.ContentType
}

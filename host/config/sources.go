package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// OCIRef is a parsed `source = "oci://registry/repository:tag"` (or `@sha256:…`).
type OCIRef struct {
	Registry   string // host[:port]
	Repository string // path inside the registry, e.g. "plugins/imagepre"
	Tag        string // "" when pinned by Digest
	Digest     string // "sha256:<64 hex>", "" for a tag
}

var (
	repoRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	hostRE   = regexp.MustCompile(`^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?$`)
)

// ParseOCIRef parses "oci://host[:port]/repo[:tag|@sha256:hex]"; without a tag or digest
// the tag is "latest".
func ParseOCIRef(s string) (OCIRef, error) {
	rest, ok := strings.CutPrefix(s, "oci://")
	if !ok {
		return OCIRef{}, fmt.Errorf("source %q must start with oci:// (oci://host:port/repo:tag or oci://host:port/repo@sha256:…)", s)
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" || path == "" {
		return OCIRef{}, fmt.Errorf("source %q: want oci://host:port/repo:tag", s)
	}
	if !hostRE.MatchString(host) {
		return OCIRef{}, fmt.Errorf("source %q: %q is not a registry host[:port]", s, host)
	}
	r := OCIRef{Registry: host}
	if repo, dg, ok := strings.Cut(path, "@"); ok {
		if !digestRE.MatchString(dg) {
			return OCIRef{}, fmt.Errorf("source %q: digest %q must be sha256: and 64 lower-case hex digits", s, dg)
		}
		r.Repository, r.Digest = repo, dg
	} else if i := strings.LastIndex(path, ":"); i >= 0 {
		r.Repository, r.Tag = path[:i], path[i+1:]
		if !tagRE.MatchString(r.Tag) {
			return OCIRef{}, fmt.Errorf("source %q: %q is not a valid tag", s, r.Tag)
		}
	} else {
		r.Repository, r.Tag = path, "latest"
	}
	if !repoRE.MatchString(r.Repository) {
		return OCIRef{}, fmt.Errorf("source %q: repository %q must be lower-case path components (a-z, 0-9, '.', '_', '-')", s, r.Repository)
	}
	return r, nil
}

// String is the reference as oras and docker write it: host/repo:tag or host/repo@digest.
func (r OCIRef) String() string {
	if r.Digest != "" {
		return r.Registry + "/" + r.Repository + "@" + r.Digest
	}
	return r.Registry + "/" + r.Repository + ":" + r.Tag
}

// CachePath is where the artifact of r is kept under dir: one file per reference, replaced
// by rename when a tag moves.
func (r OCIRef) CachePath(dir, file string) string {
	host := strings.NewReplacer(":", "_", "[", "", "]", "").Replace(r.Registry)
	ver := r.Tag
	if r.Digest != "" {
		ver = strings.Replace(r.Digest, ":", "-", 1)
	}
	return filepath.Join(dir, host, filepath.FromSlash(r.Repository), ver, file)
}

// Source is one artifact the config pulls from a registry.
type Source struct {
	Ref  OCIRef
	Raw  string // as written
	Path string // the cached copy the loaders read
	// Plugin is true for a plugin, false for a model.
	Plugin bool
	// RequireSignature is true when a plugin must carry a trusted signature (the pipeline's
	// require_signatures or trust.require_signatures).
	RequireSignature bool
	// AllowDowngrade is true when a plugin's tag may move to a lower version (the plugin's
	// allow_downgrade, in every place that names the source).
	AllowDowngrade bool
}

// complete applies [oci]'s defaults and checks its values.
func (o *OCI) complete(runtimeCacheDir string, abs func(string) string, bad func(msg string, key ...string)) {
	switch {
	case o.CacheDir != "":
		o.CacheDir = abs(o.CacheDir)
	case runtimeCacheDir != "":
		// Named edgehost-*: the compilation cache's prune never enters such a directory.
		o.CacheDir = filepath.Join(runtimeCacheDir, "edgehost-oci")
	default:
		o.CacheDir = abs(".oci-cache")
	}
	if o.PollInterval == nil {
		o.PollInterval = &Duration{time.Minute}
	}
	if o.MaxArtifactMB == 0 {
		o.MaxArtifactMB = 512
	} else if o.MaxArtifactMB < 1 || o.MaxArtifactMB > 2048 {
		bad(fmt.Sprintf("max_artifact_mb %d must be between 1 and 2048 (a model is at most 2 GiB)", o.MaxArtifactMB), "oci", "max_artifact_mb")
	}
	for _, h := range o.RedirectHosts {
		if !redirectHostRE.MatchString(h) {
			bad(fmt.Sprintf("redirect host %q must be a host, host:port or *.domain (no scheme or path)", h), "oci", "redirect_hosts")
		}
	}
}

var redirectHostRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?$`)

// Sources returns every registry artifact of the config, one per cache path.
func (c *Config) Sources() []Source {
	byPath := map[string]int{}
	var out []Source
	add := func(s Source) {
		if i, ok := byPath[s.Path]; ok {
			out[i].RequireSignature = out[i].RequireSignature || s.RequireSignature
			out[i].AllowDowngrade = out[i].AllowDowngrade && s.AllowDowngrade
			return
		}
		byPath[s.Path] = len(out)
		out = append(out, s)
	}
	for _, name := range c.ModelNames() {
		if m := c.Models[name]; m.Source != "" {
			r, _ := ParseOCIRef(m.Source)
			add(Source{Ref: r, Raw: m.Source, Path: m.Path})
		}
	}
	for _, name := range c.PipelineNames() {
		p := c.Pipelines[name]
		for _, pl := range []Plugin{p.Pre, p.Post} {
			if pl.Source != "" {
				r, _ := ParseOCIRef(pl.Source)
				add(Source{Ref: r, Raw: pl.Source, Path: pl.Path, Plugin: true,
					RequireSignature: p.RequireSignatures || c.Trust.RequireSignatures, AllowDowngrade: pl.AllowDowngrade})
			}
		}
	}
	return out
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/oci"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/internal/safefile"
)

// Plugins and models with `source = "oci://…"` are pulled into the cache at
// [oci].cache_dir: the layer is streamed to a temporary file there (its declared size bounded
// by [oci].max_artifact_mb, the download cut off at that size), checked (manifest and layer
// digests; a plugin's signature when the config requires one; rollback protection: a tag
// never moves a plugin below the version the cache record says serves, unless the config
// pins a digest or sets allow_downgrade) and only then moved, by rename, to the path the
// loaders read, with its record (digests, size, version) beside it. Everything after that —
// validation, the golden check, the swap, probation and rollback — is the reload path of a
// file change. A tag is polled: when it moves, the new artifact goes through the same checks
// and ReloadFile; a version the reload rejects is put back off the disk (the cache keeps the
// version that serves) and not tried again until the tag moves once more. With the registry
// down, every start serves the verified cached copy.

// SourceStatus is the state of one registry artifact in GET /status.
type SourceStatus struct {
	Ref       string    `json:"ref"`
	Path      string    `json:"path"`
	Manifest  string    `json:"manifest,omitempty"` // the digest serving
	Layer     string    `json:"layer,omitempty"`
	Version   string    `json:"version,omitempty"`   // the plugin's version serving
	CheckedAt time.Time `json:"checked_at,omitzero"` // last contact with the registry
	Rejected  string    `json:"rejected,omitempty"`  // manifest digest refused, not retried until the tag moves
	Why       string    `json:"rejected_why,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"last_error_at,omitzero"`
}

// sources is the engine's registry state, by cache path.
type sources struct {
	mu sync.Mutex
	st map[string]*SourceStatus
}

func (s *sources) get(path string) *SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		s.st = map[string]*SourceStatus{}
	}
	if s.st[path] == nil {
		s.st[path] = &SourceStatus{Path: path}
	}
	return s.st[path]
}

func (s *sources) update(path string, f func(*SourceStatus)) {
	st := s.get(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	f(st)
}

func (s *sources) snapshot() map[string]SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]SourceStatus{}
	for _, v := range s.st {
		out[v.Ref] = *v
	}
	return out
}

func ociOptions(c *config.Config) oci.Options {
	return oci.Options{PlainHTTP: c.OCI.PlainHTTP, MaxArtifact: int64(c.OCI.MaxArtifactMB) << 20, RedirectHosts: c.OCI.RedirectHosts}
}

// checkArtifact is what a pulled artifact must pass before it is written where the loaders
// read: the kind the config expects and, for a plugin that must be signed, a trusted
// signature (the same check the loader makes again). It returns a plugin's version (from
// its manifest; "" for a model or a plugin without a readable manifest, which the loader
// then refuses).
func checkArtifact(cfg *config.Config, src config.Source, a *oci.Artifact) (string, error) {
	want := oci.ArtifactModel
	if src.Plugin {
		want = oci.ArtifactPlugin
	}
	if a.Type != want {
		return "", fmt.Errorf("artifact %s is a %s, the config uses it as a %s", a.Manifest, a.Type, want)
	}
	if !src.Plugin {
		return "", nil
	}
	b, err := a.ReadAll(safefile.MaxPlugin)
	if err != nil {
		return "", err
	}
	return checkPlugin(cfg, src, string(a.Manifest), b)
}

func checkPlugin(cfg *config.Config, src config.Source, what string, b []byte) (string, error) {
	if src.RequireSignature {
		keys, err := TrustedKeys(cfg.Trust)
		if err != nil {
			return "", err
		}
		if _, err := plugin.Verify(b, keys); err != nil {
			return "", fmt.Errorf("artifact %s: signature required: %w", what, err)
		}
	}
	return pluginVersion(b), nil
}

// pluginVersion is the version in a module's manifest, "" without a valid one.
func pluginVersion(b []byte) string {
	raw, ok, err := abi.CustomSection(b, abi.ManifestSection)
	if err != nil || !ok {
		return ""
	}
	m, err := abi.ParseManifest(raw)
	if err != nil {
		return ""
	}
	return m.Version
}

// checkDowngrade is rollback protection: a tag source never moves from the version it
// serves to a lower one (semantic versioning order) unless the config pins a digest or
// sets allow_downgrade. Versions that cannot be ordered are refused when they differ.
func checkDowngrade(src config.Source, serving, next string) error {
	if !src.Plugin || src.Ref.Digest != "" || src.AllowDowngrade || serving == "" || next == serving {
		return nil
	}
	how := "to roll back on purpose, pin the digest (source = \"oci://…@sha256:…\") or set allow_downgrade = true on the plugin"
	c, ok := compareVersions(next, serving)
	if !ok {
		return fmt.Errorf("rollback protection: version %q cannot be ordered against %q, the version this source serves (not semantic versions): refused; %s", next, serving, how)
	}
	if c < 0 {
		return fmt.Errorf("rollback protection: version %s is lower than %s, the version this source has served: refused; %s", next, serving, how)
	}
	return nil
}

// syncSources makes every registry artifact of cfg present in the cache. A digest already
// cached (and still matching its record) needs no registry; a tag is resolved again. When
// the registry cannot be reached or the artifact fails its checks (digests, signature,
// rollback protection), the verified cached copy is used and the reason is kept for
// /status; with no usable copy the source is an error.
func (e *Engine) syncSources(ctx context.Context, cfg *config.Config) error {
	var errs []error
	for _, src := range cfg.Sources() {
		e.src.update(src.Path, func(s *SourceStatus) { s.Ref = src.Raw })
		if err := e.syncSource(ctx, cfg, src); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src.Raw, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) syncSource(ctx context.Context, cfg *config.Config, src config.Source) error {
	rec, cerr := oci.Load(src.Path)
	if cerr == nil && src.Plugin && rec.Version == "" { // a record written before versions were kept
		if b, err := safefile.ReadFile(src.Path, safefile.MaxPlugin); err == nil {
			rec.Version = pluginVersion(b)
		}
	}
	if cerr == nil && src.Ref.Digest != "" && rec.MatchesPin(src.Ref.Digest) == nil {
		e.src.update(src.Path, func(s *SourceStatus) { s.Manifest, s.Layer, s.Version = rec.Manifest, rec.Layer, rec.Version })
		return nil // pinned and present: nothing to ask the registry
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a, err := oci.Pull(pctx, src.Ref, filepath.Dir(src.Path), ociOptions(cfg))
	defer a.Close()
	var version string
	rejected := false // the registry answered with an artifact that must not serve
	if err == nil {
		version, err = checkArtifact(cfg, src, a)
		rejected = err != nil
	}
	if err == nil && cerr == nil && rec.Manifest != string(a.Manifest) {
		err = checkDowngrade(src, rec.Version, version)
		rejected = err != nil
	}
	now := time.Now()
	if err == nil {
		switch {
		case cerr != nil || rec.Manifest != string(a.Manifest) || rec.Layer != string(a.Layer) || rec.MatchesPin(string(a.Manifest)) != nil:
			// Also when the record names the manifest pulled but not its layer (or keeps no
			// manifest, as records before manifest_body): the registry's bytes replace the copy.
			if err = oci.Store(src.Path, a, oci.Cached{Ref: src.Raw, Version: version}); err == nil {
				oci.DropPrevious(src.Path) // no swap to undo at start
				e.log.Info("artifact pulled", "source", src.Raw, "manifest", a.Manifest, "version", version, "bytes", a.Size)
			}
		case rec.Version != version:
			err = oci.SetVersion(src.Path, version)
		}
	}
	if err == nil {
		e.src.update(src.Path, func(s *SourceStatus) {
			s.Manifest, s.Layer, s.Version, s.CheckedAt, s.LastError, s.Rejected, s.Why = string(a.Manifest), string(a.Layer), version, now, "", "", ""
		})
		return nil
	}
	e.src.update(src.Path, func(s *SourceStatus) {
		s.LastError, s.ErrorAt = err.Error(), now
		if rejected {
			s.Rejected, s.Why, s.CheckedAt = string(a.Manifest), err.Error(), now
		}
	})
	if rejected {
		e.reloadFailures.Add(1)
		e.log.Error("registry artifact rejected", "source", src.Raw, "manifest", a.Manifest, "version", version, "error", err)
	}
	if cerr == nil && (src.Ref.Digest == "" || rec.MatchesPin(src.Ref.Digest) == nil) && checkCached(cfg, src) == nil {
		e.log.Warn("registry artifact unavailable or refused; serving the verified cached copy", "source", src.Raw, "cached", rec.Manifest, "version", rec.Version, "error", err)
		e.src.update(src.Path, func(s *SourceStatus) { s.Manifest, s.Layer, s.Version = rec.Manifest, rec.Layer, rec.Version })
		return nil
	}
	if cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
		return fmt.Errorf("%w (and %v)", err, cerr)
	}
	return err
}

// checkCached checks the cached copy of src as checkArtifact checks a pulled one.
func checkCached(cfg *config.Config, src config.Source) error {
	f, _, err := safefile.Open(src.Path, safefile.MaxModel)
	if err != nil {
		return err
	}
	head := make([]byte, 8)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return err
	}
	at, _, err := oci.Kind(head)
	if err != nil {
		return err
	}
	if src.Plugin != (at == oci.ArtifactPlugin) {
		return fmt.Errorf("the cached copy %s is not the kind the config uses", src.Path)
	}
	if !src.Plugin {
		return nil
	}
	b, err := safefile.ReadFile(src.Path, safefile.MaxPlugin)
	if err != nil {
		return err
	}
	_, err = checkPlugin(cfg, src, "cached copy", b)
	return err
}

// servesHash reports whether the model or plugin loaded from path now has content hash h.
func (e *Engine) servesHash(path, h string) bool {
	for _, m := range e.Models() {
		if m.Config.Path == path && m.Hash == h {
			return true
		}
	}
	for _, p := range e.Pipelines() {
		if p.Pre.Path == path && p.Pre.Hash == h || p.Post.Path == path && p.Post.Hash == h {
			return true
		}
	}
	return false
}

// pollSource checks one tag: when it names a new manifest, pull, check, write and reload.
func (e *Engine) pollSource(ctx context.Context, src config.Source) {
	cfg := e.Config()
	st := *e.src.get(src.Path)
	now := time.Now()
	fail := func(err error) {
		e.src.update(src.Path, func(s *SourceStatus) { s.LastError, s.ErrorAt = err.Error(), now })
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := oci.Resolve(rctx, src.Ref, ociOptions(cfg))
	if err != nil {
		fail(fmt.Errorf("registry unreachable, version %s keeps serving: %w", short(st.Manifest), err))
		return
	}
	e.src.update(src.Path, func(s *SourceStatus) { s.CheckedAt = now })
	if string(d) == st.Manifest || string(d) == st.Rejected {
		e.src.update(src.Path, func(s *SourceStatus) { // the registry answers again: the last word is about the artifact
			if string(d) == s.Manifest {
				s.LastError = ""
			} else {
				s.LastError = s.Why
			}
		})
		return
	}
	reject := func(err error) {
		e.reloadFailures.Add(1)
		e.log.Error("registry artifact rejected; the previous version keeps serving", "source", src.Raw, "manifest", d, "error", err)
		e.src.update(src.Path, func(s *SourceStatus) {
			s.Rejected, s.Why, s.LastError, s.ErrorAt = string(d), err.Error(), err.Error(), now
		})
	}
	pctx, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	a, err := oci.Pull(pctx, src.Ref, filepath.Dir(src.Path), ociOptions(cfg))
	if err != nil {
		fail(fmt.Errorf("pulling the new version: %w", err))
		return
	}
	defer a.Close()
	if a.Manifest != d { // the tag moved again meanwhile: the next poll takes it
		return
	}
	version, err := checkArtifact(cfg, src, a)
	if err != nil {
		reject(err)
		return
	}
	serving := st.Version
	if rec, err := oci.Load(src.Path); err == nil && rec.Version != "" {
		serving = rec.Version // the cache's record: what serves, also across restarts
	}
	if err := checkDowngrade(src, serving, version); err != nil {
		reject(err)
		return
	}
	if err := oci.Store(src.Path, a, oci.Cached{Ref: src.Raw, Version: version}); err != nil {
		fail(err)
		return
	}
	e.log.Info("registry tag moved: new version pulled", "source", src.Raw, "manifest", a.Manifest, "version", version)
	e.ReloadFile(ctx, src.Path)
	if !e.servesHash(src.Path, a.Layer.Encoded()) {
		why, _ := e.errs.get(src.Path)
		if why == "" {
			why = "the reload did not apply it (see the pipeline's last_error)"
		}
		if err := oci.Restore(src.Path); err != nil {
			e.log.Error("could not put the serving version back in the cache", "path", src.Path, "error", err)
		}
		reject(fmt.Errorf("version %s rejected by the reload: %s", a.Manifest, why))
		return
	}
	oci.DropPrevious(src.Path)
	e.src.update(src.Path, func(s *SourceStatus) {
		s.Manifest, s.Layer, s.Version, s.Rejected, s.Why, s.LastError = string(a.Manifest), string(a.Layer), version, "", "", ""
	})
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// PollSources starts polling every tag source of the config at [oci].poll_interval (the
// config in force at each round). The returned function stops it and waits.
func (e *Engine) PollSources(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			iv := e.Config().OCI.PollInterval.Duration
			if iv <= 0 {
				iv = time.Second // polling off: look again later in case a config reload turns it on
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(iv):
			}
			if e.Config().OCI.PollInterval.Duration <= 0 {
				continue
			}
			for _, src := range e.Config().Sources() {
				if src.Ref.Digest == "" && ctx.Err() == nil {
					e.pollSource(ctx, src)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

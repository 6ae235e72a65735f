package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/internal/safefile"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
)

// Media types of edgehost artifacts: one layer, the file itself.
const (
	ArtifactPlugin = "application/vnd.edgehost.plugin.v1"
	ArtifactModel  = "application/vnd.edgehost.model.v1"
	LayerPlugin    = "application/vnd.edgehost.plugin.layer.v1+wasm"
	LayerModel     = "application/vnd.edgehost.model.layer.v1+tflite"
)

// DefaultMaxArtifact is the largest layer Pull accepts when Options.MaxArtifact is 0: a
// manifest declaring more is refused before any byte of the layer is read.
const DefaultMaxArtifact = 512 << 20

// maxManifest bounds a manifest (edgehost's are a few hundred bytes).
const maxManifest = 1 << 20

// Options says how to reach a registry.
type Options struct {
	PlainHTTP bool          // plain HTTP for every registry; loopback ones always are
	Timeout   time.Duration // per HTTP request; default 30s
	// MaxArtifact bounds the layer's declared size, in bytes; default DefaultMaxArtifact. A
	// plugin's layer is bounded further by safefile.MaxPlugin.
	MaxArtifact int64
	// RedirectHosts are the hosts (host or host:port, or *.domain) other than the registry's
	// own that a registry may redirect to (a blob store or CDN). A redirect from https to
	// http is always refused.
	RedirectHosts []string
}

func (o Options) maxArtifact() int64 {
	if o.MaxArtifact > 0 {
		return o.MaxArtifact
	}
	return DefaultMaxArtifact
}

// Kind tells a plugin (Wasm) from a model (TFLite flatbuffer) by its first bytes.
func Kind(b []byte) (artifactType, layerType string, err error) {
	switch {
	case len(b) >= 8 && bytes.Equal(b[:4], []byte("\x00asm")):
		return ArtifactPlugin, LayerPlugin, nil
	case len(b) >= 8 && string(b[4:8]) == "TFL3":
		return ArtifactModel, LayerModel, nil
	}
	return "", "", errors.New("neither a WebAssembly module (\\0asm) nor a TFLite model (TFL3): edgehost pushes only plugins and models")
}

// Loopback reports whether a registry host[:port] is on this machine.
func Loopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func repository(ref config.OCIRef, o Options) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("oci://%s: %w", ref, err)
	}
	repo.PlainHTTP = o.PlainHTTP || Loopback(ref.Registry)
	repo.Client = client(o)
	return repo, nil
}

// client is the HTTP client of every registry request: a timeout per request and the
// redirect policy.
func client(o Options) *http.Client {
	t := o.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return &http.Client{Timeout: t, CheckRedirect: redirectPolicy(o.RedirectHosts)}
}

// redirectPolicy follows a redirect only to the host the request was first made to (same
// host and port) or to one of allowed, never from https to http, at most 10 times.
func redirectPolicy(allowed []string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		for _, v := range via {
			if v.URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("refused a redirect from https to %s://%s: never followed", req.URL.Scheme, req.URL.Host)
			}
		}
		if hostPort(via[0].URL) == hostPort(req.URL) || redirectAllowed(req.URL, allowed) {
			return nil
		}
		return fmt.Errorf("refused a redirect from %s to another host, %s (allow it in [oci].redirect_hosts)", via[0].URL.Host, req.URL.Host)
	}
}

// hostPort is u's host:port with the scheme's default port made explicit.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// redirectAllowed reports whether u's host is one of allowed: a host name (any port), a
// host:port, or *.domain (any host under domain).
func redirectAllowed(u *url.URL, allowed []string) bool {
	host := strings.ToLower(u.Hostname())
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if strings.HasPrefix(a, "*.") {
			if strings.HasSuffix(host, a[1:]) {
				return true
			}
			continue
		}
		if strings.Trim(a, "[]") == host || a == strings.ToLower(u.Host) || a == hostPort(u) {
			return true
		}
	}
	return false
}

// Pushed is what Push stored.
type Pushed struct {
	Manifest digest.Digest // what a pinned source names: oci://…@<Manifest>
	Layer    digest.Digest // sha256 of the file
	Size     int64
	Type     string // ArtifactPlugin or ArtifactModel
}

// Push stores file b as a one-layer artifact at ref (a tag, or a digest that must then
// equal the manifest's).
func Push(ctx context.Context, ref config.OCIRef, b []byte, name string, o Options) (Pushed, error) {
	at, lt, err := Kind(b)
	if err != nil {
		return Pushed{}, err
	}
	repo, err := repository(ref, o)
	if err != nil {
		return Pushed{}, err
	}
	layer := content.NewDescriptorFromBytes(lt, b)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: filepath.Base(name)}
	if err := repo.Push(ctx, layer, bytes.NewReader(b)); err != nil && !strings.Contains(err.Error(), "already exists") {
		return Pushed{}, fmt.Errorf("pushing the layer to %s: %w", ref, err)
	}
	man, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, at, oras.PackManifestOptions{
		Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		return Pushed{}, fmt.Errorf("pushing the manifest to %s: %w", ref, err)
	}
	if ref.Digest != "" {
		if string(man.Digest) != ref.Digest {
			return Pushed{}, fmt.Errorf("the manifest's digest is %s, not the %s the reference names", man.Digest, ref.Digest)
		}
	} else if err := repo.Tag(ctx, man, ref.Tag); err != nil {
		return Pushed{}, fmt.Errorf("tagging %s: %w", ref, err)
	}
	return Pushed{Manifest: man.Digest, Layer: layer.Digest, Size: layer.Size, Type: at}, nil
}

// Resolve returns the manifest digest a reference names now (one HEAD request).
func Resolve(ctx context.Context, ref config.OCIRef, o Options) (digest.Digest, error) {
	repo, err := repository(ref, o)
	if err != nil {
		return "", err
	}
	r := ref.Tag
	if ref.Digest != "" {
		r = ref.Digest
	}
	d, err := repo.Resolve(ctx, r)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	return d.Digest, nil
}

// Artifact is a pulled, digest-checked artifact. Its layer is in File, a temporary file
// that Store moves into the cache; Close removes it when it is not stored.
type Artifact struct {
	Manifest digest.Digest
	// ManifestBody is the manifest as the registry served it (its sha256 is Manifest): kept
	// in the cache record so that a copy served for a pinned digest is tied to that digest.
	ManifestBody []byte
	Layer        digest.Digest
	Type         string // ArtifactPlugin or ArtifactModel
	Size         int64
	File         string
}

// ReadAll reads the artifact's file, refusing more than limit bytes.
func (a *Artifact) ReadAll(limit int64) ([]byte, error) {
	return safefile.ReadFile(a.File, limit)
}

// Close removes the artifact's temporary file if Store has not moved it.
func (a *Artifact) Close() {
	if a != nil && a.File != "" {
		os.Remove(a.File)
		a.File = ""
	}
}

// Pull fetches the artifact ref names into a temporary file in dir (created if needed; the
// cache directory, so that Store's rename stays on one file system). The manifest is
// checked against its digest (and against ref's digest when ref is pinned); the layer,
// streamed to the file and never held in memory, must declare a size within
// Options.MaxArtifact, is cut off at that size and must hash to the digest the manifest
// names; it must be one edgehost artifact of one file. The caller stores or closes it.
func Pull(ctx context.Context, ref config.OCIRef, dir string, o Options) (*Artifact, error) {
	repo, err := repository(ref, o)
	if err != nil {
		return nil, err
	}
	r := ref.Tag
	if ref.Digest != "" {
		r = ref.Digest
	}
	desc, err := repo.Resolve(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", ref, err)
	}
	if ref.Digest != "" && string(desc.Digest) != ref.Digest {
		return nil, fmt.Errorf("%s: the registry answered with manifest %s", ref, desc.Digest)
	}
	if desc.Size < 0 || desc.Size > maxManifest {
		return nil, fmt.Errorf("%s: manifest of %d bytes is too large for an edgehost artifact", ref, desc.Size)
	}
	mb, err := content.FetchAll(ctx, repo, desc) // checks size and digest
	if err != nil {
		return nil, fmt.Errorf("fetching the manifest of %s: %w", ref, err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, fmt.Errorf("%s: manifest is not JSON: %w", ref, err)
	}
	if man.ArtifactType != ArtifactPlugin && man.ArtifactType != ArtifactModel {
		return nil, fmt.Errorf("%s: artifact type %q is not an edgehost plugin or model (push it with `edgehost plugin push`)", ref, man.ArtifactType)
	}
	if len(man.Layers) != 1 {
		return nil, fmt.Errorf("%s: %d layers, want exactly one (the file)", ref, len(man.Layers))
	}
	layer := man.Layers[0]
	want, limit, what := LayerPlugin, min(o.maxArtifact(), safefile.MaxPlugin), "plugin"
	if man.ArtifactType == ArtifactModel {
		want, limit, what = LayerModel, o.maxArtifact(), "model"
	}
	if layer.MediaType != want {
		return nil, fmt.Errorf("%s: layer media type %q, want %q", ref, layer.MediaType, want)
	}
	if layer.Size < 0 || layer.Size > limit {
		return nil, fmt.Errorf("%s: the manifest declares a layer of %d bytes, over the %d-byte limit for a %s ([oci].max_artifact_mb): refused before reading it", ref, layer.Size, limit, what)
	}
	if err := layer.Digest.Validate(); err != nil || layer.Digest.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("%s: layer digest %q is not a sha256 digest", ref, layer.Digest)
	}
	a := &Artifact{Manifest: desc.Digest, ManifestBody: mb, Layer: layer.Digest, Type: man.ArtifactType, Size: layer.Size}
	if err := fetchToFile(ctx, repo, layer, dir, a); err != nil {
		return nil, fmt.Errorf("fetching the layer of %s: %w", ref, err)
	}
	if at, err := kindOfFile(a.File); err != nil || at != man.ArtifactType {
		a.Close()
		return nil, fmt.Errorf("%s: the layer is not the %s its manifest says", ref, man.ArtifactType)
	}
	return a, nil
}

// fetchToFile streams the layer into a new temporary file in dir: at most its declared
// size is read (VerifyReader), then one byte more must be the end, and the digest must
// match. The file is a.File on success and removed otherwise.
func fetchToFile(ctx context.Context, repo *remote.Repository, layer ocispec.Descriptor, dir string, a *Artifact) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sweepStale(dir)
	rc, err := repo.Fetch(ctx, layer)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, ".pull-*")
	if err != nil {
		return err
	}
	vr := content.NewVerifyReader(rc, layer)
	_, err = io.CopyBuffer(f, vr, make([]byte, 64<<10))
	if err == nil {
		err = vr.Verify() // the end of the stream, and the digest
	}
	if errors.Is(err, content.ErrTrailingData) {
		err = fmt.Errorf("the registry sent more than the %d bytes the manifest declares: %w", layer.Size, err)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	a.File = f.Name()
	return nil
}

// sweepStale removes temporary files of pulls that a crash left in dir (a pull never takes
// an hour).
func sweepStale(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, ".pull-*"))
	for _, f := range old {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(f)
		}
	}
}

func kindOfFile(path string) (string, error) {
	f, _, err := safefile.Open(path, safefile.MaxModel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 8)
	if _, err := io.ReadFull(f, head); err != nil {
		return "", err
	}
	at, _, err := Kind(head)
	return at, err
}

// Cached is the record kept beside a cached artifact (PATH.oci.json).
type Cached struct {
	Ref      string    `json:"ref"`
	Manifest string    `json:"manifest"`
	Layer    string    `json:"layer"`
	Size     int64     `json:"size,omitempty"`
	PulledAt time.Time `json:"pulled_at"`
	// Version is the plugin manifest's version of the cached copy: the version this source
	// serves, which rollback protection never lets a tag move below (empty for a model).
	Version string `json:"version,omitempty"`
	// ManifestBody is the pulled manifest (base64 in the JSON): see MatchesPin.
	ManifestBody []byte `json:"manifest_body,omitempty"`
}

// MatchesPin reports whether the record ties its layer to the manifest digest d: the
// manifest it keeps hashes to d, and its one layer is the record's layer. The record is
// otherwise the cache's word (whoever can write the cache writes it), so a copy is served
// for a pinned reference only when this holds (Load has checked the file against the layer).
func (rec Cached) MatchesPin(d string) error {
	sum := sha256.Sum256(rec.ManifestBody)
	if rec.Manifest != d || "sha256:"+hex.EncodeToString(sum[:]) != d {
		return fmt.Errorf("the cache record does not hold the manifest %s", d)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(rec.ManifestBody, &man); err != nil || len(man.Layers) != 1 || string(man.Layers[0].Digest) != rec.Layer {
		return fmt.Errorf("the cached copy is not the layer manifest %s names", d)
	}
	return nil
}

func recordPath(path string) string { return path + ".oci.json" }
func prevPath(path string) string   { return path + ".prev" }

// Store moves a pulled artifact's file to path (by rename, so a reader never sees half of
// it) and writes rec beside it, its digests and size taken from a. The copy it replaces is
// kept (hard links) for Restore.
func Store(path string, a *Artifact, rec Cached) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rec.Manifest, rec.Layer, rec.Size, rec.ManifestBody = string(a.Manifest), string(a.Layer), a.Size, a.ManifestBody
	if rec.PulledAt.IsZero() {
		rec.PulledAt = time.Now().UTC()
	}
	if err := writeAtomic(recordPath(path)+".next", mustJSON(rec)); err != nil {
		return err
	}
	os.Remove(prevPath(path))
	os.Remove(recordPath(prevPath(path)))
	if os.Link(path, prevPath(path)) == nil {
		_ = os.Link(recordPath(path), recordPath(prevPath(path)))
	}
	if err := os.Rename(a.File, path); err != nil {
		return err
	}
	a.File = ""
	return os.Rename(recordPath(path)+".next", recordPath(path))
}

// Restore puts back the copy the last Store replaced, with its record (after a rejected
// swap).
func Restore(path string) error {
	if _, err := os.Stat(recordPath(prevPath(path))); err != nil {
		return fmt.Errorf("no previous copy to put back: %w", err)
	}
	if err := os.Rename(prevPath(path), path); err != nil {
		return err
	}
	return os.Rename(recordPath(prevPath(path)), recordPath(path))
}

// DropPrevious deletes the copy the last Store kept for Restore, once the new one serves.
func DropPrevious(path string) {
	os.Remove(prevPath(path))
	os.Remove(recordPath(prevPath(path)))
}

// SetVersion rewrites the record of the cached copy at path with version v.
func SetVersion(path, v string) error {
	rec, err := readRecord(path)
	if err != nil {
		return err
	}
	rec.Version = v
	return writeAtomic(recordPath(path), mustJSON(rec))
}

func readRecord(path string) (Cached, error) { return readRecordFile(recordPath(path)) }

func readRecordFile(file string) (Cached, error) {
	var rec Cached
	rb, err := safefile.ReadFile(file, maxManifest)
	if err != nil {
		return rec, fmt.Errorf("no cached copy: %w", err)
	}
	if err := json.Unmarshal(rb, &rec); err != nil {
		return rec, fmt.Errorf("cache record %s: %w", file, err)
	}
	return rec, nil
}

// Load checks the cached artifact at path against its record, reading it as a stream: the
// bytes must still hash to the layer digest that was pulled.
func Load(path string) (Cached, error) {
	rec, err := readRecord(path)
	if err != nil {
		return rec, err
	}
	f, _, err := safefile.Open(path, safefile.MaxModel)
	if err != nil {
		return rec, fmt.Errorf("no cached copy: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return rec, fmt.Errorf("cached copy %s: %w", path, err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got == rec.Layer {
		return rec, nil
	}
	// A Store interrupted between its two renames left the new bytes with their record
	// still at .next: finish it.
	if next, err := readRecordFile(recordPath(path) + ".next"); err == nil && next.Layer == got {
		if err := os.Rename(recordPath(path)+".next", recordPath(path)); err == nil {
			return next, nil
		}
	}
	return rec, fmt.Errorf("cached copy %s hashes to %s, not the pulled %s: it was modified", path, got, rec.Layer)
}

func mustJSON(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".pull-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

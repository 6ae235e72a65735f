package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/config"
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

// MaxArtifact is the largest layer Pull accepts (a manifest naming more is refused before
// any byte of the layer is read).
const MaxArtifact = 1 << 30

// Options says how to reach a registry.
type Options struct {
	PlainHTTP bool          // plain HTTP for every registry; loopback ones always are
	Timeout   time.Duration // per HTTP request; default 30s
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
	t := o.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	repo.Client = &http.Client{Timeout: t}
	return repo, nil
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

// Artifact is a pulled, digest-checked artifact.
type Artifact struct {
	Manifest digest.Digest
	Layer    digest.Digest
	Type     string // ArtifactPlugin or ArtifactModel
	Data     []byte
}

// Pull fetches the artifact ref names. The manifest's bytes are checked against its
// digest (and against ref's digest when ref is pinned), the layer's against the digest the
// manifest names, and the layer must be one edgehost artifact of one file.
func Pull(ctx context.Context, ref config.OCIRef, o Options) (*Artifact, error) {
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
	if desc.Size > 1<<20 {
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
	want := LayerPlugin
	if man.ArtifactType == ArtifactModel {
		want = LayerModel
	}
	if layer.MediaType != want {
		return nil, fmt.Errorf("%s: layer media type %q, want %q", ref, layer.MediaType, want)
	}
	if layer.Size < 0 || layer.Size > MaxArtifact {
		return nil, fmt.Errorf("%s: layer of %d bytes is over the %d-byte limit", ref, layer.Size, MaxArtifact)
	}
	if err := layer.Digest.Validate(); err != nil || layer.Digest.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("%s: layer digest %q is not a sha256 digest", ref, layer.Digest)
	}
	data, err := content.FetchAll(ctx, repo, layer) // checks size and digest
	if err != nil {
		return nil, fmt.Errorf("fetching the layer of %s: %w", ref, err)
	}
	if at, _, err := Kind(data); err != nil || at != man.ArtifactType {
		return nil, fmt.Errorf("%s: the layer is not the %s its manifest says", ref, man.ArtifactType)
	}
	return &Artifact{Manifest: desc.Digest, Layer: layer.Digest, Type: man.ArtifactType, Data: data}, nil
}

// Cached is the record kept beside a cached artifact (PATH.oci.json).
type Cached struct {
	Ref      string    `json:"ref"`
	Manifest string    `json:"manifest"`
	Layer    string    `json:"layer"`
	PulledAt time.Time `json:"pulled_at"`
}

func recordPath(path string) string { return path + ".oci.json" }

// Store writes a pulled artifact to path (temp file + rename, so a reader never sees half
// of it) and its record beside it.
func Store(path, ref string, a *Artifact) error {
	if err := writeAtomic(recordPath(path)+".next", mustJSON(Cached{Ref: ref, Manifest: string(a.Manifest), Layer: string(a.Layer), PulledAt: time.Now().UTC()})); err != nil {
		return err
	}
	if err := writeAtomic(path, a.Data); err != nil {
		return err
	}
	return os.Rename(recordPath(path)+".next", recordPath(path))
}

// Restore puts earlier bytes back at path with their record (after a rejected swap).
func Restore(path string, data []byte, rec Cached) error {
	if err := writeAtomic(path, data); err != nil {
		return err
	}
	return writeAtomic(recordPath(path), mustJSON(rec))
}

// Load reads the cached artifact at path and checks it against its record: the bytes must
// still hash to the layer digest that was pulled.
func Load(path string) ([]byte, Cached, error) {
	var rec Cached
	rb, err := os.ReadFile(recordPath(path))
	if err != nil {
		return nil, rec, fmt.Errorf("no cached copy: %w", err)
	}
	if err := json.Unmarshal(rb, &rec); err != nil {
		return nil, rec, fmt.Errorf("cache record %s: %w", recordPath(path), err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, rec, fmt.Errorf("no cached copy: %w", err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != rec.Layer {
		return nil, rec, fmt.Errorf("cached copy %s hashes to %s, not the pulled %s: it was modified", path, got, rec.Layer)
	}
	return b, rec, nil
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

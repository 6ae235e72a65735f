package oci_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/oci"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostileRegistry is a registry (OCI distribution API, plain HTTP on loopback) serving one
// tag, "v1", of repository "m": a one-layer edgehost model whose manifest declares a layer
// of declared bytes. The blob handler is blob; served counts the bytes it wrote.
type hostileRegistry struct {
	srv    *httptest.Server
	layer  digest.Digest
	served atomic.Int64
	blob   func(w http.ResponseWriter, r *http.Request, h *hostileRegistry)
}

func newHostileRegistry(t *testing.T, declared int64, layer digest.Digest, blob func(http.ResponseWriter, *http.Request, *hostileRegistry)) *hostileRegistry {
	t.Helper()
	h := &hostileRegistry{layer: layer, blob: blob}
	man, err := json.Marshal(ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: oci.ArtifactModel,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{{MediaType: oci.LayerModel, Digest: layer, Size: declared}},
	})
	if err != nil {
		t.Fatal(err)
	}
	md := digestOf(man)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/v2/m/manifests/v1" || r.URL.Path == "/v2/m/manifests/"+string(md):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", string(md))
			w.Header().Set("Content-Length", strconv.Itoa(len(man)))
			if r.Method != http.MethodHead {
				w.Write(man)
			}
		case r.URL.Path == "/v2/m/blobs/"+string(layer):
			h.blob(w, r, h)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostileRegistry) ref(t *testing.T) string {
	return "oci://" + strings.TrimPrefix(h.srv.URL, "http://") + "/m:v1"
}

// zeros streams zero bytes until the client goes away (chunked: no Content-Length).
func zeros(w http.ResponseWriter, r *http.Request, h *hostileRegistry) {
	buf := make([]byte, 64<<10)
	for r.Context().Err() == nil {
		n, err := w.Write(buf)
		h.served.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// rss returns the process's resident set size, and its peak since the last resetPeak, in bytes.
func rss(t *testing.T) (cur, peak int64) {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(s.Text(), "VmRSS: %d kB", &kb); n == 1 {
			cur = kb << 10
		}
		if n, _ := fmt.Sscanf(s.Text(), "VmHWM: %d kB", &kb); n == 1 {
			peak = kb << 10
		}
	}
	return cur, peak
}

// TestPullEndlessBlob: a registry whose manifest declares a large layer and whose blob
// streams zeros without end. A layer declared over max_artifact is refused before a byte
// of it is read; one declared under it is streamed to a temporary file and cut off at its
// declared size, with peak RSS under 64 MiB over the baseline (it was held in memory: the
// red team saw 2038 MB for a 1 GiB layer), no file left behind, and a digest error.
func TestPullEndlessBlob(t *testing.T) {
	layer := digestOf([]byte("not these bytes"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("declared over the limit", func(t *testing.T) {
		h := newHostileRegistry(t, 1<<30, layer, zeros)
		dir := t.TempDir()
		_, err := oci.Pull(ctx, ref(t, h.ref(t)), dir, oci.Options{})
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("a layer declared at 1 GiB: err %v, want it refused over the limit", err)
		}
		if n := h.served.Load(); n != 0 {
			t.Errorf("%d bytes of the layer were read before refusing it", n)
		}
		t.Logf("refused: %v", err)
	})

	t.Run("endless stream", func(t *testing.T) {
		const declared = 1 << 30 // the red team's layer, under a raised limit
		h := newHostileRegistry(t, declared, layer, zeros)
		dir := t.TempDir()
		runtime.GC()
		debug.FreeOSMemory()
		// Peak RSS from here on: reset the kernel's high-water mark (Linux: clear_refs 5) and
		// also sample, in case the reset is not allowed.
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		base, _ := rss(t)
		var sampled atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if cur, _ := rss(t); cur > sampled.Load() {
					sampled.Store(cur)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		_, err := oci.Pull(ctx, ref(t, h.ref(t)), dir, oci.Options{MaxArtifact: 2 << 30})
		took := time.Since(start)
		close(stop)
		wg.Wait()
		_, hwm := rss(t)
		peak := max(hwm, sampled.Load())
		t.Logf("endless blob: %d MiB served, peak RSS %.1f MiB over a baseline of %.1f MiB (sampled %.1f, kernel high-water mark %.1f), %.1f s; error: %v",
			h.served.Load()>>20, float64(peak-base)/(1<<20), float64(base)/(1<<20), float64(sampled.Load())/(1<<20), float64(hwm)/(1<<20), took.Seconds(), err)
		if err == nil {
			t.Fatal("an endless blob was accepted")
		}
		if !strings.Contains(err.Error(), "more than") && !strings.Contains(err.Error(), "digest") {
			t.Errorf("error %q says neither that the registry sent too much nor that the digest is wrong", err)
		}
		if peak-base > 64<<20 {
			t.Errorf("peak RSS %.1f MiB over the baseline, want under 64 MiB", float64(peak-base)/(1<<20))
		}
		if h.served.Load() < declared {
			t.Errorf("only %d bytes were served: the test did not stream the declared size", h.served.Load())
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("the failed pull left %d files in %s", len(left), dir)
		}
	})
}

// TestPullRedirects: a registry redirecting a blob to another host (another port on
// loopback) is refused, and that host never hears from edgehost, unless the host is in
// [oci].redirect_hosts; a redirect to the registry's own host is followed. (Redirects to
// any host and scheme were followed.)
func TestPullRedirects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	model := append([]byte("\x1c\x00\x00\x00TFL3"), make([]byte, 1000)...)
	layer := digestOf(model)
	var elsewhereHits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhereHits.Add(1)
		w.Write(model)
	}))
	defer elsewhere.Close()
	to := func(base string) func(http.ResponseWriter, *http.Request, *hostileRegistry) {
		return func(w http.ResponseWriter, r *http.Request, h *hostileRegistry) {
			if base == "" { // the registry's own host, another path
				base = h.srv.URL
			}
			http.Redirect(w, r, base+"/storage"+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}
	elsewhereHost := strings.TrimPrefix(elsewhere.URL, "http://")

	// To another host: refused.
	h := newHostileRegistry(t, int64(len(model)), layer, to(elsewhere.URL))
	_, err := oci.Pull(ctx, ref(t, h.ref(t)), t.TempDir(), oci.Options{})
	if err == nil || !strings.Contains(err.Error(), "refused a redirect") || !strings.Contains(err.Error(), elsewhereHost) {
		t.Fatalf("a redirect to %s: err %v, want it refused", elsewhereHost, err)
	}
	if n := elsewhereHits.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
	t.Logf("refused: %v", err)

	// The same host, allowed by its host:port, or by its name: followed.
	for _, allow := range []string{elsewhereHost, "127.0.0.1"} {
		a, err := oci.Pull(ctx, ref(t, h.ref(t)), t.TempDir(), oci.Options{RedirectHosts: []string{allow}})
		if err != nil {
			t.Fatalf("redirect_hosts = [%q]: %v", allow, err)
		}
		a.Close()
	}

	// The registry's own host: followed.
	own := newHostileRegistry(t, int64(len(model)), layer, to(""))
	own.srv.Config.Handler = redirectStorage(own.srv.Config.Handler, model)
	a, err := oci.Pull(ctx, ref(t, own.ref(t)), t.TempDir(), oci.Options{})
	if err != nil {
		t.Fatalf("a redirect to the registry's own host: %v", err)
	}
	a.Close()
}

// redirectStorage serves model at /storage/… in front of next.
func redirectStorage(next http.Handler, model []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/storage/") {
			w.Write(model)
			return
		}
		next.ServeHTTP(w, r)
	})
}

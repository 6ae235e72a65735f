package plugin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/plugin"
)

// sandbox loads a hostile variant with grants and makes bound instances of it.
type sandbox struct {
	t   *testing.T
	ctx context.Context
	m   *plugin.Module
}

func newSandbox(t *testing.T, rt *plugin.Runtime, variant string, g plugin.Grants) *sandbox {
	t.Helper()
	ctx := context.Background()
	m, err := rt.Load(ctx, plugin.Config{Path: testplugins.Hostile(t, variant, abi.KindBoth), Grants: g, MemoryLimit: 8 << 20})
	if err != nil {
		t.Fatalf("Load %s: %v", variant, err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	return &sandbox{t: t, ctx: ctx, m: m}
}

func (s *sandbox) instance() *plugin.Instance {
	s.t.Helper()
	inst, err := s.m.NewInstance(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { inst.Close(s.ctx) })
	if err := inst.Bind(s.ctx, []plugin.Tensor{{Name: "t", DType: abi.UInt8, Shape: []int{4}, Bytes: 4}}); err != nil {
		s.t.Fatal(err)
	}
	return inst
}

// pre runs edgehost_pre on in and returns the message of the status error the hostile
// variants always answer with.
func pre(t *testing.T, inst *plugin.Instance, in string) string {
	t.Helper()
	ctx := context.Background()
	buf, err := inst.InputBuffer(ctx, uint32(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, in)
	err = inst.Pre(ctx, uint32(len(in)))
	var se *plugin.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Pre(%q) = %v (%T), want a *plugin.StatusError", in, err, err)
	}
	return se.Msg
}

// once is a fresh instance's answer to one request.
func (s *sandbox) once(in string) string {
	s.t.Helper()
	return pre(s.t, s.instance(), in)
}

func newRuntime(t *testing.T) *plugin.Runtime {
	t.Helper()
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, plugin.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	return rt
}

// fakeEpoch is wazero's fake wall clock: 2022-01-01T00:00:00Z.
const fakeEpoch = 1640995200

func clockSeconds(t *testing.T, msg string) int64 {
	t.Helper()
	const prefix = "hostile: realtime clock says "
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("clock message %q", msg)
	}
	sec, err := strconv.ParseInt(strings.TrimPrefix(msg, prefix), 10, 64)
	if err != nil {
		t.Fatalf("clock message %q: %v", msg, err)
	}
	return sec
}

// TestDenyByDefault: with no grants a plugin sees no files, no environment, a fake clock and
// deterministic randomness.
func TestDenyByDefault(t *testing.T) {
	rt := newRuntime(t)
	t.Setenv("EDGEHOST_TEST_SECRET", "do-not-leak")

	t.Run("no files", func(t *testing.T) {
		s := newSandbox(t, rt, "READ_FILE", plugin.Grants{})
		inst := s.instance()
		for _, p := range []string{"/etc/hostname", "/etc/passwd", "/proc/self/environ", "etc/hostname", "/", ".", "./x", "../etc/hostname"} {
			if msg := pre(t, inst, p); !strings.HasPrefix(msg, "denied:") {
				t.Errorf("read %s: %q, want denied", p, msg)
			}
		}
		for _, p := range []string{"ls:/", "ls:.", "ls:/etc"} {
			if msg := pre(t, inst, p); !strings.HasPrefix(msg, "denied:") {
				t.Errorf("%s: %q, want denied", p, msg)
			}
		}
		if msg := pre(t, inst, "write:/tmp/edgehost-hostile-write"); !strings.HasPrefix(msg, "denied:") {
			t.Errorf("write: %q, want denied", msg)
		}
		if _, err := os.Stat("/tmp/edgehost-hostile-write"); err == nil {
			t.Error("the plugin created /tmp/edgehost-hostile-write")
		}
		// The existing variant agrees.
		if msg := newSandbox(t, rt, "OPEN_FILE", plugin.Grants{}).once("x"); !strings.Contains(msg, "failed as it should") {
			t.Errorf("OPEN_FILE: %q", msg)
		}
	})
	t.Run("empty environment", func(t *testing.T) {
		if msg := newSandbox(t, rt, "LIST_ENV", plugin.Grants{}).once("x"); msg != "env:" {
			t.Errorf("environment %q, want empty", msg)
		}
		if msg := newSandbox(t, rt, "GETENV", plugin.Grants{}).once("x"); !strings.Contains(msg, "empty as it should") {
			t.Errorf("GETENV: %q", msg)
		}
	})
	t.Run("fake clock", func(t *testing.T) {
		s := newSandbox(t, rt, "CLOCK", plugin.Grants{})
		sec := clockSeconds(t, s.once("x"))
		if sec < fakeEpoch || sec > fakeEpoch+60 {
			t.Fatalf("clock says %d (%s), want the fake 2022-01-01 clock", sec, time.Unix(sec, 0).UTC())
		}
	})
	t.Run("deterministic random", func(t *testing.T) {
		s := newSandbox(t, rt, "RANDOM", plugin.Grants{})
		a, b := s.once("x"), s.once("x")
		if !strings.HasPrefix(a, "random:") || len(a) != len("random:")+32 {
			t.Fatalf("random message %q", a)
		}
		if a != b {
			t.Fatalf("two instances without the random grant see %q and %q, want the same bytes", a, b)
		}
	})
}

// TestGrants: each grant opens exactly what it names.
func TestGrants(t *testing.T) {
	rt := newRuntime(t)

	t.Run("dirs", func(t *testing.T) {
		data := t.TempDir()
		outside := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, "labels.txt"), []byte("background\npeacock\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(data, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, "sub", "deep.txt"), []byte("deep"), 0o644); err != nil {
			t.Fatal(err)
		}
		secret := filepath.Join(outside, "secret.txt")
		if err := os.WriteFile(secret, []byte("TOP-SECRET"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Symlinks that stay inside the directory work; those that leave it do not.
		if err := os.Symlink("labels.txt", filepath.Join(data, "inside-link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../labels.txt", filepath.Join(data, "sub", "up-link")); err != nil {
			t.Fatal(err)
		}
		links := map[string]string{"secret-link": secret, "dir-link": outside, "rel-link": "../" + filepath.Base(outside) + "/secret.txt"}
		if _, err := os.Stat("/etc/hostname"); err == nil {
			links["hostname-link"] = "/etc/hostname"
		}
		for name, target := range links {
			if err := os.Symlink(target, filepath.Join(data, name)); err != nil {
				t.Fatal(err)
			}
		}
		s := newSandbox(t, rt, "READ_FILE", plugin.Grants{Dirs: map[string]string{"/data": data}})
		inst := s.instance()
		const labelsMsg = `read:background\npeacock\n` // plugin text is sanitised: newlines escaped

		if msg := pre(t, inst, "/data/labels.txt"); msg != labelsMsg {
			t.Errorf("read /data/labels.txt: %q", msg)
		}
		if msg := pre(t, inst, "/data/sub/deep.txt"); msg != "read:deep" {
			t.Errorf("read /data/sub/deep.txt: %q", msg)
		}
		if msg := pre(t, inst, "/data/sub/../labels.txt"); msg != labelsMsg {
			t.Errorf("read /data/sub/../labels.txt (stays inside): %q", msg)
		}
		for _, p := range []string{"/data/inside-link", "/data/sub/up-link"} {
			if msg := pre(t, inst, p); msg != labelsMsg {
				t.Errorf("read %s (a symlink inside the grant): %q", p, msg)
			}
		}
		if msg := pre(t, inst, "ls:/data"); !strings.Contains(msg, "labels.txt,") {
			t.Errorf("ls /data: %q", msg)
		}
		for _, p := range []string{
			"/data/secret-link", "/data/hostname-link", "/data/rel-link", "/data/dir-link/secret.txt",
			"/data/../etc/hostname", "/data/../../etc/hostname", "/data/sub/../../etc/hostname",
			"/data/../" + filepath.Base(outside) + "/secret.txt", "/data/./../etc/hostname",
			"/etc/hostname", "/data" + secret, secret,
		} {
			if strings.Contains(p, "hostname-link") && links["hostname-link"] == "" {
				continue
			}
			if msg := pre(t, inst, p); !strings.HasPrefix(msg, "denied:") || strings.Contains(msg, "TOP-SECRET") {
				t.Errorf("read %s through the /data grant: %q, want denied", p, msg)
			}
		}
		if msg := pre(t, inst, "ls:/data/dir-link"); !strings.HasPrefix(msg, "denied:") {
			t.Errorf("ls through a symlink out of the grant: %q", msg)
		}
		if msg := pre(t, inst, "ls:/data/.."); strings.Contains(msg, filepath.Base(data)) || strings.Contains(msg, filepath.Base(outside)) {
			t.Errorf("ls /data/.. shows the host's directory: %q", msg)
		}
		// Read-only: no writes into the granted directory.
		if msg := pre(t, inst, "write:/data/new.txt"); !strings.HasPrefix(msg, "denied:") {
			t.Errorf("write /data/new.txt: %q, want denied (read-only mount)", msg)
		}
		if msg := pre(t, inst, "write:/data/labels.txt"); !strings.HasPrefix(msg, "denied:") {
			t.Errorf("overwrite /data/labels.txt: %q, want denied (read-only mount)", msg)
		}
		if _, err := os.Stat(filepath.Join(data, "new.txt")); err == nil {
			t.Error("the plugin created new.txt in the granted directory")
		}
		if b, _ := os.ReadFile(filepath.Join(data, "labels.txt")); string(b) != "background\npeacock\n" {
			t.Errorf("labels.txt changed to %q", b)
		}
		if b, _ := os.ReadFile(secret); string(b) != "TOP-SECRET" {
			t.Errorf("secret changed to %q", b)
		}
	})
	t.Run("dir mounted at /", func(t *testing.T) {
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, "labels.txt"), []byte("root"), 0o644); err != nil {
			t.Fatal(err)
		}
		inst := newSandbox(t, rt, "READ_FILE", plugin.Grants{Dirs: map[string]string{"/": data}}).instance()
		for _, p := range []string{"/labels.txt", "labels.txt", "/x/../labels.txt"} {
			if msg := pre(t, inst, p); msg != "read:root" {
				t.Errorf("read %s: %q", p, msg)
			}
		}
		for _, p := range []string{"/../etc/hostname", "../etc/hostname", "/../../../../etc/hostname", "/etc/hostname", "ls:/.."} {
			if msg := pre(t, inst, p); !strings.HasPrefix(msg, "denied:") {
				t.Errorf("read %s with only %s mounted at /: %q, want denied", p, data, msg)
			}
		}
	})
	t.Run("dir that does not exist", func(t *testing.T) {
		_, err := rt.Load(context.Background(), plugin.Config{Path: testplugins.Hostile(t, "READ_FILE", abi.KindBoth),
			Grants: plugin.Grants{Dirs: map[string]string{"/data": filepath.Join(t.TempDir(), "missing")}}})
		if err == nil || !strings.Contains(err.Error(), "grants") {
			t.Fatalf("Load with a missing granted directory: %v", err)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("EDGEHOST_TEST_SECRET", "do-not-leak")
		s := newSandbox(t, rt, "LIST_ENV", plugin.Grants{Env: map[string]string{"EH_GRANTED": "yes"}})
		if msg := s.once("x"); msg != "env:EH_GRANTED=yes;" {
			t.Errorf("environment %q, want only EH_GRANTED=yes", msg)
		}
	})
	t.Run("clock", func(t *testing.T) {
		s := newSandbox(t, rt, "CLOCK", plugin.Grants{Clock: true})
		sec := clockSeconds(t, s.once("x"))
		if now := time.Now().Unix(); sec < now-60 || sec > now+60 {
			t.Fatalf("clock with the grant says %d, now is %d", sec, now)
		}
	})
	t.Run("random", func(t *testing.T) {
		s := newSandbox(t, rt, "RANDOM", plugin.Grants{Random: true})
		a, b := s.once("x"), s.once("x")
		if !strings.HasPrefix(a, "random:") || !strings.HasPrefix(b, "random:") {
			t.Fatalf("random messages %q, %q", a, b)
		}
		if a == b {
			t.Fatalf("two instances with the random grant both see %q", a)
		}
		// The same instance gets new bytes on every call too.
		inst := s.instance()
		if c, d := pre(t, inst, "x"), pre(t, inst, "x"); c == d {
			t.Fatalf("two calls see %q", c)
		}
	})
	t.Run("grants do not leak between plugins", func(t *testing.T) {
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, "labels.txt"), []byte("granted"), 0o644); err != nil {
			t.Fatal(err)
		}
		granted := newSandbox(t, rt, "READ_FILE", plugin.Grants{Dirs: map[string]string{"/data": data}})
		if msg := granted.once("/data/labels.txt"); msg != "read:granted" {
			t.Fatalf("granted: %q", msg)
		}
		// The same module file loaded again without grants, in the same runtime.
		plain := newSandbox(t, rt, "READ_FILE", plugin.Grants{})
		if msg := plain.once("/data/labels.txt"); !strings.HasPrefix(msg, "denied:") {
			t.Fatalf("ungranted load reads the other load's grant: %q", msg)
		}
	})
	t.Run("String", func(t *testing.T) {
		if s := (plugin.Grants{}).String(); s != "none" {
			t.Errorf("zero grants: %q", s)
		}
		g := plugin.Grants{Dirs: map[string]string{"/data": "/srv/d"}, Env: map[string]string{"K": "v"}, Clock: true, Random: true}
		if s := g.String(); !strings.Contains(s, "dir /data=/srv/d (read-only)") || !strings.Contains(s, "env K") || strings.Contains(s, "=v") {
			t.Errorf("grants: %q", s)
		}
	})
}

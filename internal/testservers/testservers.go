// Package testservers starts the real servers the MQTT and OCI tests run against —
// mosquitto and Docker's distribution registry, fetched from Debian by `make brokers` into
// .deps — on 127.0.0.1, on a free port, for the life of one test. Test use only.
package testservers

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// root is the repository root.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../.."))
}()

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// binary returns the path of a fetched server, skipping the test (saying how to get it)
// when `make brokers` could not fetch it.
func binary(t testing.TB, rel, pkg string) string {
	t.Helper()
	p := filepath.Join(root, ".deps", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is not there: `make brokers` fetches Debian's %s into .deps (it could not here: %v)", p, pkg, err)
	}
	return p
}

// Server is a running server process.
type Server struct {
	Addr string // 127.0.0.1:port
	Dir  string // its state directory

	t    testing.TB
	argv []string
	env  []string
	out  *LogBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", s.argv[0], err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("%s did not listen on %s within 30 s; its output:\n%s", s.argv[0], s.Addr, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the server gracefully (SIGTERM: mosquitto saves its persistent state).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server and starts it again on the same address and state.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Output is what the server printed so far.
func (s *Server) Output() string { return s.out.String() }

// Mosquitto starts Debian's mosquitto 2.0.11 on 127.0.0.1 with persistence in a temp
// directory (a Restart keeps sessions and queued QoS 1 messages). It skips the test when
// `make brokers` could not fetch it.
func Mosquitto(t testing.TB) *Server {
	t.Helper()
	bin := binary(t, "mosquitto/usr/sbin/mosquitto", "mosquitto 2.0.11")
	dir := t.TempDir()
	port := FreePort(t)
	// Started as root, mosquitto drops to user "mosquitto", which cannot write its database
	// into this test's directory: stay the user we are.
	me := "root"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	conf := fmt.Sprintf("user %s\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 100000\nlog_dest stdout\nlog_type error\nlog_type warning\n", me, port, dir)
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(root, ".deps/mosquitto/usr/lib/x86_64-linux-gnu")
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, t: t, argv: []string{bin, "-c", cf},
		env: []string{"LD_LIBRARY_PATH=" + lib}, out: &LogBuffer{}}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Registry starts Debian's docker-registry 2.8.2 (Docker's distribution, an OCI
// registry) on 127.0.0.1 over plain HTTP with storage in a temp directory. It skips the
// test when `make brokers` could not fetch it.
func Registry(t testing.TB) *Server {
	t.Helper()
	bin := binary(t, "registry/usr/bin/docker-registry", "docker-registry 2.8.2")
	dir := t.TempDir()
	port := FreePort(t)
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: ''\nhttp:\n  addr: 127.0.0.1:%d\n", dir, port)
	cf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, t: t, argv: []string{bin, "serve", cf}, out: &LogBuffer{}}
	s.start()
	t.Cleanup(s.Stop)
	// Ready when the API answers, not only the socket.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s not ready: %v\n%s", s.Addr, err, s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BlobPath is where the registry keeps the blob with the given "sha256:<hex>" digest (to
// tamper with it in a test).
func (s *Server) BlobPath(dg string) string {
	hexd := dg[len("sha256:"):]
	return filepath.Join(s.Dir, "data/docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
}

// LogBuffer collects log output written from several goroutines (a logger, a server's
// stdout and stderr); String returns everything written so far.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

package mqtt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/internal/safefile"
)

// TestHostileCredentialFiles: a FIFO or /dev/zero as ca_file, cert_file, key_file or
// password_file is refused at once, naming the file (a FIFO blocked the start; /dev/zero was
// read without end).
func TestHostileCredentialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{fifo, "/dev/zero"} {
		for _, c := range []struct {
			name string
			cfg  config.MQTT
			call func(config.MQTT) error
		}{
			{"ca_file", config.MQTT{Broker: "mqtts://127.0.0.1:1", CAFile: file}, func(m config.MQTT) error { _, err := tlsConfig(m); return err }},
			{"cert_file", config.MQTT{Broker: "mqtts://127.0.0.1:1", CertFile: file, KeyFile: file}, func(m config.MQTT) error { _, err := tlsConfig(m); return err }},
			{"password_file", config.MQTT{PasswordFile: file}, func(m config.MQTT) error { _, err := password(m); return err }},
		} {
			done := make(chan error, 1)
			go func() { done <- c.call(c.cfg) }()
			select {
			case err := <-done:
				if !errors.Is(err, safefile.ErrRefused) || !strings.Contains(err.Error(), file) {
					t.Errorf("%s = %s: %v, want a refusal naming the file", c.name, file, err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s = %s: blocked", c.name, file)
			}
		}
	}
	_ = os.Remove(fifo)
}

package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/config"
)

// TestCheckPublishTopic: every topic a broker would refuse to take a PUBLISH on (and drop
// the connection for) is refused before it reaches the broker; ordinary topics pass.
func TestCheckPublishTopic(t *testing.T) {
	for _, c := range []struct {
		topic string
		why   string // "" when the topic is fine
	}{
		{"results/p", ""},
		{"replies/döör/ø", ""},
		{"a//b/", ""},
		{strings.Repeat("a", config.MaxTopicBytes), ""},
		{"", "empty"},
		{strings.Repeat("a", config.MaxTopicBytes+1), "over MQTT's"},
		{"evil/#", "wildcard"},
		{"evil/+/x", "wildcard"},
		{"#", "wildcard"},
		{"a+b", "wildcard"},
		{"$SYS/broker", "reserved"},
		{"a\x00b", "U+0000"},
		{"a\nb", "U+000A"},
		{"a\u0085b", "U+0085"},
		{"a\ufffeb", "U+FFFE"},
		{"a\ufdd0b", "U+FDD0"},
		{"a\xffb", "UTF-8"},
		{"a\xed\xa0\x80b", "UTF-8"}, // a UTF-16 surrogate
	} {
		err := config.CheckPublishTopic(c.topic)
		switch {
		case c.why == "" && err != nil:
			t.Errorf("%.40q: %v, want no error", c.topic, err)
		case c.why != "" && (err == nil || !strings.Contains(err.Error(), c.why)):
			t.Errorf("%.40q: %v, want an error saying %q", c.topic, err, c.why)
		}
	}
}

// TestMQTTTLSAndCredentials: TLS files and the password file are made absolute (relative to
// the config file) and must exist; TLS files need a TLS broker; cert and key go together; a
// password needs a username.
func TestMQTTTLSAndCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "client.pem", "client.key", "password"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := `[models.m]
path = "m.tflite"
[pipelines.p]
model = "m"
[pipelines.p.pre]
path = "pre.wasm"
[pipelines.p.post]
path = "post.wasm"
[pipelines.p.mqtt]
broker = "mqtts://broker.example:8883"
topic = "cams/+/frames"
result_topic = "results/p"
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
username = "edgehost"
password_file = "password"
`
	path := filepath.Join(dir, "edgehost.toml")
	c, err := config.Parse(path, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Pipelines["p"].MQTT
	if m.CAFile != filepath.Join(dir, "ca.pem") || m.KeyFile != filepath.Join(dir, "client.key") || m.PasswordFile != filepath.Join(dir, "password") || !m.TLS() {
		t.Errorf("mqtt TLS: %+v", m)
	}
	for _, c := range []struct{ edit, to, key, msg string }{
		{`broker = "mqtts://broker.example:8883"`, `broker = "mqtt://broker.example:1883"`, "pipelines.p.mqtt.ca_file", "needs a TLS broker"},
		{`broker = "mqtts://broker.example:8883"`, `broker = "https://broker.example:8883"`, "pipelines.p.mqtt.broker", "mqtts://"},
		{`key_file = "client.key"`, ``, "pipelines.p.mqtt.cert_file", "go together"},
		{`ca_file = "ca.pem"`, `ca_file = "nope.pem"`, "pipelines.p.mqtt.ca_file", "no such file"},
		{`username = "edgehost"`, ``, "pipelines.p.mqtt.username", "needs a username"},
	} {
		_, err := config.Parse(path, []byte(strings.Replace(good, c.edit, c.to, 1)))
		found := false
		for _, e := range configErrors(t, err) {
			if e.Key == c.key && strings.Contains(e.Msg, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: errors %v, want %s: …%s…", c.to, err, c.key, c.msg)
		}
	}
}

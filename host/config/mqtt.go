package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// MQTT is a pipeline's optional MQTT source and sink: every message on Topic runs through
// the pipeline; the result goes to ResultTopic (or the MQTT 5 response topic of the
// request), failures to ErrorTopic.
type MQTT struct {
	Broker      string `toml:"broker"`       // mqtt://host:port (tcp:// too); required
	Topic       string `toml:"topic"`        // subscription (wildcards allowed), QoS 1; required
	ResultTopic string `toml:"result_topic"` // required unless every request names a response topic
	ErrorTopic  string `toml:"error_topic"`  // default: ResultTopic
	ClientID    string `toml:"client_id"`    // default edgehost-<pipeline>; fixed so the broker keeps the session
	// MaxInflight bounds the messages received and not yet answered (MQTT 5 receive
	// maximum: the broker holds the rest); default 2 × workers.
	MaxInflight int `toml:"max_inflight"`
	// SessionExpiry is how long the broker keeps the session (and queues QoS 1 messages)
	// while edgehost is away; default 1h.
	SessionExpiry Duration `toml:"session_expiry"`
	// ResponseTopicPrefix is where a request's MQTT 5 response topic may point: a topic
	// under this prefix (which ends with "/"). Unset (the default), a response topic is
	// honoured only when it is ResultTopic itself: a sender cannot have results published
	// elsewhere with edgehost's identity and rights. A request asking for another topic is
	// answered with a bad_input error on ErrorTopic and not run.
	ResponseTopicPrefix string `toml:"response_topic_prefix"`
	// RetainAsInput runs retained messages too. Off (the default), a retained message is
	// acknowledged and ignored: it would be run and answered again at every new
	// subscription.
	RetainAsInput bool `toml:"retain_as_input"`
	// PublishTimeout bounds the time spent publishing one answer, waiting for a connection
	// included; after it (or after 3 failed tries, or when the broker refuses the publish)
	// the message is acknowledged with an error, so no message holds a worker for ever.
	// Default 30s.
	PublishTimeout Duration `toml:"publish_timeout"`
	// CAFile is a PEM bundle of the authorities that sign the broker's certificate, for a
	// TLS broker (mqtts://, tls:// or ssl://); default the system's roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key (PEM) for a broker that asks
	// for one (TLS only); both or neither.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Username and PasswordFile are the credentials sent in CONNECT; the file holds the
	// password (one trailing newline dropped) and is read at start. A broker that refuses
	// them makes the start fail, saying so.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
}

// TLS says whether the broker URL asks for TLS (mqtts://, tls:// or ssl://).
func (m *MQTT) TLS() bool {
	u, err := url.Parse(m.Broker)
	return err == nil && tlsSchemes[u.Scheme]
}

var tlsSchemes = map[string]bool{"mqtts": true, "tls": true, "ssl": true}

// MaxTopicBytes is the longest topic an MQTT packet can carry (a two-byte length).
const MaxTopicBytes = 65535

// CheckPublishTopic says why topic cannot be published to, or nil: it is empty, longer
// than MaxTopicBytes, not valid UTF-8, holds the wildcards + or #, U+0000 or another
// control character or non-character (which MQTT forbids or brokers refuse, dropping the
// connection), or starts with "$" (the broker's own topics).
func CheckPublishTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("the topic is empty")
	case len(topic) > MaxTopicBytes:
		return fmt.Errorf("the topic is %d bytes long, over MQTT's %d", len(topic), MaxTopicBytes)
	case !utf8.ValidString(topic):
		return errors.New("the topic is not valid UTF-8")
	case strings.ContainsAny(topic, "+#"):
		return fmt.Errorf("the topic %.200q holds a wildcard (+ or #): one cannot publish to it", topic)
	case topic[0] == '$':
		return fmt.Errorf("the topic %.200q starts with $ (reserved for the broker)", topic)
	}
	for _, r := range topic {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return fmt.Errorf("the topic %.200q holds the character %U, which MQTT forbids", topic, r)
		}
	}
	return nil
}

// complete checks a pipeline's [pipelines.NAME.mqtt] and applies its defaults.
// Relative file paths are made absolute with abs (relative to the config file).
func (m *MQTT) complete(pipeline string, workers int, abs func(string) string, bad func(msg string, key ...string)) {
	key := func(k string) []string { return []string{"pipelines", pipeline, "mqtt", k} }
	if m.Broker == "" {
		bad("is required (mqtt://host:port)", key("broker")...)
	} else if u, err := url.Parse(m.Broker); err != nil || !(u.Scheme == "mqtt" || u.Scheme == "tcp" || tlsSchemes[u.Scheme]) || u.Host == "" {
		bad(fmt.Sprintf("broker %q must be mqtt://host:port (or tcp://), or mqtts://host:port for TLS (or tls://, ssl://)", m.Broker), key("broker")...)
	}
	for k, f := range map[string]*string{"ca_file": &m.CAFile, "cert_file": &m.CertFile, "key_file": &m.KeyFile, "password_file": &m.PasswordFile} {
		if *f == "" {
			continue
		}
		*f = abs(*f)
		if st, err := os.Stat(*f); err != nil {
			bad(err.Error(), key(k)...)
		} else if st.IsDir() {
			bad(fmt.Sprintf("%s is a directory", *f), key(k)...)
		} else if k != "password_file" && !m.TLS() {
			bad(fmt.Sprintf("needs a TLS broker (mqtts://host:port), not %q", m.Broker), key(k)...)
		}
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		bad("cert_file and key_file go together (a client certificate and its key)", key("cert_file")...)
	}
	if m.PasswordFile != "" && m.Username == "" {
		bad("a password_file needs a username", key("username")...)
	}
	if m.Topic == "" {
		bad("is required (the topic to subscribe to)", key("topic")...)
	}
	if m.ResultTopic == "" {
		bad("is required (where results are published)", key("result_topic")...)
	}
	for k, t := range map[string]string{"result_topic": m.ResultTopic, "error_topic": m.ErrorTopic} {
		if t == "" {
			continue
		}
		if err := CheckPublishTopic(t); err != nil {
			bad(fmt.Sprintf("cannot publish to %q: %v", t, err), key(k)...)
		}
	}
	if p := m.ResponseTopicPrefix; p != "" {
		if err := CheckPublishTopic(p); err != nil {
			bad(fmt.Sprintf("prefix %q: %v", p, err), key("response_topic_prefix")...)
		} else if !strings.HasSuffix(p, "/") {
			bad(fmt.Sprintf("prefix %q must end with \"/\" (it names a subtree of topics)", p), key("response_topic_prefix")...)
		}
	}
	if m.ErrorTopic == "" {
		m.ErrorTopic = m.ResultTopic
	}
	if m.ClientID == "" {
		m.ClientID = "edgehost-" + pipeline
	}
	if m.MaxInflight == 0 {
		m.MaxInflight = 2 * workers
	} else if m.MaxInflight < 1 || m.MaxInflight > 65535 {
		bad(fmt.Sprintf("max_inflight %d must be between 1 and 65535", m.MaxInflight), key("max_inflight")...)
	}
	if m.SessionExpiry.Duration == 0 {
		m.SessionExpiry.Duration = time.Hour
	}
	if m.PublishTimeout.Duration == 0 {
		m.PublishTimeout.Duration = 30 * time.Second
	}
}

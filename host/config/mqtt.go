package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
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
}

// complete checks a pipeline's [pipelines.NAME.mqtt] and applies its defaults.
func (m *MQTT) complete(pipeline string, workers int, bad func(msg string, key ...string)) {
	key := func(k string) []string { return []string{"pipelines", pipeline, "mqtt", k} }
	if m.Broker == "" {
		bad("is required (mqtt://host:port)", key("broker")...)
	} else if u, err := url.Parse(m.Broker); err != nil || (u.Scheme != "mqtt" && u.Scheme != "tcp") || u.Host == "" {
		bad(fmt.Sprintf("broker %q must be mqtt://host:port (or tcp://host:port)", m.Broker), key("broker")...)
	}
	if m.Topic == "" {
		bad("is required (the topic to subscribe to)", key("topic")...)
	}
	for k, t := range map[string]string{"result_topic": m.ResultTopic, "error_topic": m.ErrorTopic} {
		if strings.ContainsAny(t, "+#") {
			bad(fmt.Sprintf("topic %q to publish to must not hold the wildcards + or #", t), key(k)...)
		}
	}
	if m.ResultTopic == "" {
		bad("is required (where results are published)", key("result_topic")...)
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
}

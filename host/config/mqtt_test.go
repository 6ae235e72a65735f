package config_test

import (
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

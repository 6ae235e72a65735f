package mqtt

import (
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReplyTopic: the response topics that cannot come through mosquitto in the
// integration tests (it refuses to forward them) are refused here too, before any publish;
// the result topic and topics under the prefix are taken.
func TestReplyTopic(t *testing.T) {
	for _, c := range []struct {
		prefix, rt, want, why string // want "" when refused
	}{
		{"", "", "results/p", ""},
		{"", "results/p", "results/p", ""},
		{"", "replies/x", "", "response_topic_prefix is not set"},
		{"", "errors/p", "", "response_topic_prefix is not set"},
		{"replies/", "replies/x", "replies/x", ""},
		{"replies/", "replies/a/b", "replies/a/b", ""},
		{"replies/", "replies/", "", "not under"},
		{"replies/", "repliesX/y", "", "not under"},
		{"replies/", "actuators/door/open", "", "not under"},
		{"replies/", "replies/#", "", "wildcard"},
		{"replies/", "replies/+/x", "", "wildcard"},
		{"replies/", "replies/a\x00b", "", "U+0000"},
		{"replies/", "replies/a\xffb", "", "UTF-8"},
		{"replies/", "replies/\u0007", "", "U+0007"},
		{"replies/", "replies/" + strings.Repeat("a", config.MaxTopicBytes), "", "over MQTT's"},
	} {
		b := &Bridge{name: "p", cfg: config.MQTT{ResultTopic: "results/p", ErrorTopic: "errors/p", ResponseTopicPrefix: c.prefix}}
		in := &paho.Publish{Topic: "frames/x", Properties: &paho.PublishProperties{ResponseTopic: c.rt}}
		got, err := b.replyTopic(in)
		if c.want != "" {
			if got != c.want || err != nil {
				t.Errorf("prefix %q, response topic %.40q: %q, %v; want %q", c.prefix, c.rt, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("prefix %q, response topic %.40q: %q, %v; want an error saying %q", c.prefix, c.rt, got, err, c.why)
		} else if class, _, _ := server.Classify(err); class != server.ClassBadInput {
			t.Errorf("response topic %.40q: class %s, want bad_input", c.rt, class)
		}
	}
}

// TestRetainedBackstop: a message that comes with the retain flag although the subscription
// asked for none (retain handling 2; a broker may not honour it) is acknowledged and counted,
// never handed to a worker; with retain_as_input it is.
func TestRetainedBackstop(t *testing.T) {
	for _, asInput := range []bool{false, true} {
		b := &Bridge{name: "p", cfg: config.MQTT{RetainAsInput: asInput}, m: NewMetrics(prometheus.NewRegistry()),
			log: hclog.NewNullLogger(), work: make(chan job), quit: make(chan struct{})}
		pr := paho.PublishReceived{Packet: &paho.Publish{QoS: 1, Retain: true, Topic: "frames/x", PacketID: 1},
			Client: paho.NewClient(paho.ClientConfig{EnableManualAcknowledgment: true})}
		done := make(chan struct{})
		go func() { _, _ = b.received(pr); close(done) }()
		select {
		case <-done:
			if asInput {
				t.Error("retain_as_input: the retained message was not handed to a worker")
			}
		case j := <-b.work:
			if !asInput {
				t.Error("a retained message was handed to a worker")
			}
			if j.p != pr.Packet {
				t.Error("another message handed over")
			}
			<-done
		case <-time.After(10 * time.Second):
			t.Fatal("received neither returned nor handed the message over")
		}
		want := 1.0
		if asInput {
			want = 0
		}
		if got := testutil.ToFloat64(b.m.Ignored.WithLabelValues("p", "retained")); got != want {
			t.Errorf("retain_as_input %v: ignored %v, want %v", asInput, got, want)
		}
	}
}

// TestMaxPacketSize: max_body_bytes plus the headroom, within MQTT's largest packet.
func TestMaxPacketSize(t *testing.T) {
	for _, c := range []struct {
		body int64
		want uint32
	}{
		{1 << 20, 1<<20 + PacketHeadroom},
		{16 << 20, 16<<20 + PacketHeadroom},
		{0, mqttMaxPacket},
		{1 << 40, mqttMaxPacket},
		{mqttMaxPacket - PacketHeadroom, mqttMaxPacket},
	} {
		if got := MaxPacketSize(c.body); got != c.want {
			t.Errorf("MaxPacketSize(%d) = %d, want %d", c.body, got, c.want)
		}
	}
}

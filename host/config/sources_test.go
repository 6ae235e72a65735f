package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
)

func TestParseOCIRef(t *testing.T) {
	dg := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		in   string
		want config.OCIRef
		err  string
	}{
		{in: "oci://127.0.0.1:5000/plugins/imagepre:v1", want: config.OCIRef{Registry: "127.0.0.1:5000", Repository: "plugins/imagepre", Tag: "v1"}},
		{in: "oci://registry.example.com/m", want: config.OCIRef{Registry: "registry.example.com", Repository: "m", Tag: "latest"}},
		{in: "oci://localhost:5000/a/b@" + dg, want: config.OCIRef{Registry: "localhost:5000", Repository: "a/b", Digest: dg}},
		{in: "https://x/y:1", err: "must start with oci://"},
		{in: "oci://host:5000", err: "want oci://host:port/repo:tag"},
		{in: "oci://host:5000/Upper:v1", err: "lower-case"},
		{in: "oci://host:5000/a@sha256:12", err: "64 lower-case hex"},
		{in: "oci://host:5000/a:bad/tag", err: "not a valid tag"},
		{in: "oci://ho st/a:v1", err: "not a registry"},
	} {
		got, err := config.ParseOCIRef(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// TestSourcesAndMQTT: a source replaces path (the cached copy under [oci].cache_dir), both
// at once are refused; [pipelines.NAME.mqtt] gets its defaults and bad values are located.
func TestSourcesAndMQTT(t *testing.T) {
	good := `[runtime]
cache_dir = "/var/cache/edgehost"
[models.m]
source = "oci://127.0.0.1:5000/models/m@sha256:` + strings.Repeat("0", 64) + `"
[pipelines.p]
model = "m"
require_signatures = true
[pipelines.p.pre]
source = "oci://127.0.0.1:5000/plugins/pre:v1"
[pipelines.p.post]
path = "post.wasm"
[pipelines.p.mqtt]
broker = "mqtt://127.0.0.1:1883"
topic = "cams/+/frames"
result_topic = "results/p"
`
	c, err := config.Parse(file, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/var/cache/edgehost/edgehost-oci/127.0.0.1_5000/plugins/pre/v1/plugin.wasm"; c.Pipelines["p"].Pre.Path != want {
		t.Errorf("pre path %q, want %q", c.Pipelines["p"].Pre.Path, want)
	}
	if !strings.HasSuffix(c.Models["m"].Path, "/models/m/sha256-"+strings.Repeat("0", 64)+"/model.tflite") {
		t.Errorf("model path %q", c.Models["m"].Path)
	}
	src := c.Sources()
	if len(src) != 2 || src[0].Plugin || !src[1].Plugin || !src[1].RequireSignature || c.OCI.PollInterval.Duration != time.Minute {
		t.Errorf("sources %+v, poll %v", src, c.OCI.PollInterval)
	}
	m := c.Pipelines["p"].MQTT
	if m.ErrorTopic != "results/p" || m.ClientID != "edgehost-p" || m.MaxInflight != 4 || m.SessionExpiry.Duration != time.Hour ||
		m.ResponseTopicPrefix != "" || m.RetainAsInput || m.PublishTimeout.Duration != 30*time.Second {
		t.Errorf("mqtt defaults: %+v", m)
	}
	for _, c := range []struct{ edit, from, key, msg string }{
		{`path = "post.wasm"`, `path = "post.wasm"` + "\nsource = \"oci://h:1/x:v\"", "pipelines.p.post.path", "exclude each other"},
		{`source = "oci://127.0.0.1:5000/plugins/pre:v1"`, `source = "docker://x"`, "pipelines.p.pre.source", "oci://"},
		{`broker = "mqtt://127.0.0.1:1883"`, `broker = "http://127.0.0.1:1883"`, "pipelines.p.mqtt.broker", "mqtt://host:port"},
		{`result_topic = "results/p"`, `result_topic = "results/#"`, "pipelines.p.mqtt.result_topic", "wildcard"},
		{`topic = "cams/+/frames"`, `max_inflight = -1`, "pipelines.p.mqtt.topic", "required"},
		{`result_topic = "results/p"`, `result_topic = "results/p"` + "\nerror_topic = \"$SYS/x\"", "pipelines.p.mqtt.error_topic", "reserved"},
		{`result_topic = "results/p"`, `result_topic = "results/p"` + "\nresponse_topic_prefix = \"replies\"", "pipelines.p.mqtt.response_topic_prefix", "must end with"},
		{`result_topic = "results/p"`, `result_topic = "results/p"` + "\nresponse_topic_prefix = \"replies/+/\"", "pipelines.p.mqtt.response_topic_prefix", "wildcard"},
		{`result_topic = "results/p"`, `result_topic = "results/p"` + "\npublish_timeout = \"-1s\"", "pipelines.p.mqtt.publish_timeout", "negative"},
	} {
		_, err := config.Parse(file, []byte(strings.Replace(good, c.edit, c.from, 1)))
		found := false
		for _, e := range configErrors(t, err) {
			if e.Key == c.key && strings.Contains(e.Msg, c.msg) && e.Line > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: errors %v, want %s: …%s…", c.from, err, c.key, c.msg)
		}
	}
}

// TestExamplesLoad: the README's example configs stay valid.
func TestExamplesLoad(t *testing.T) {
	for _, f := range []string{"../../examples/mqtt.toml", "../../examples/oci.toml"} {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the MQTT series, registered beside the server's at /metrics.
type Metrics struct {
	Received    *prometheus.CounterVec // pipeline
	Redelivered *prometheus.CounterVec // pipeline: messages the broker sent again (DUP flag)
	Published   *prometheus.CounterVec // pipeline, kind (result, error)
	Errors      *prometheus.CounterVec // pipeline, class
	Reconnects  *prometheus.CounterVec // pipeline
	Inflight    *prometheus.GaugeVec   // pipeline
	Connected   *prometheus.GaugeVec   // pipeline
}

// NewMetrics creates the MQTT series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_received_total",
			Help: "MQTT messages received on a pipeline's topic."}, []string{"pipeline"}),
		Redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_redelivered_total",
			Help: "MQTT messages the broker delivered again (not acknowledged before a disconnect)."}, []string{"pipeline"}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_published_total",
			Help: "MQTT results and errors published (acknowledged by the broker), by kind."}, []string{"pipeline", "kind"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_errors_total",
			Help: "MQTT messages whose pipeline run failed, by error class."}, []string{"pipeline", "class"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_reconnects_total",
			Help: "Connections to the broker after the first."}, []string{"pipeline"}),
		Inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgehost_mqtt_inflight",
			Help: "MQTT messages received and not yet answered."}, []string{"pipeline"}),
		Connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgehost_mqtt_connected",
			Help: "1 while connected to the broker."}, []string{"pipeline"}),
	}
	reg.MustRegister(m.Received, m.Redelivered, m.Published, m.Errors, m.Reconnects, m.Inflight, m.Connected)
	return m
}

// ErrorMessage is the JSON published to the error topic.
type ErrorMessage struct {
	Error    string `json:"error"`
	Class    string `json:"class"` // the HTTP API's error classes (README, "Errors")
	Pipeline string `json:"pipeline"`
	Topic    string `json:"topic"` // where the request came from
}

// Bridge connects one pipeline to a broker. Close it to stop.
type Bridge struct {
	name    string
	cfg     config.MQTT
	e       *engine.Engine
	timeout time.Duration
	m       *Metrics
	log     hclog.Logger

	cm      *autopaho.ConnectionManager // subscribes; blocked by a full pipeline (backpressure)
	out     *autopaho.ConnectionManager // publishes results and errors
	work    chan job
	quit    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	ups     atomic.Int64
	inUse   atomic.Int64
	// MaxSeen is the most messages processed at once (taken from the broker, not yet
	// answered); it never exceeds max_inflight.
	MaxSeen atomic.Int64
}

type job struct {
	p      *paho.Publish
	client *paho.Client
}

// Start connects pipeline name's [pipelines.NAME.mqtt] and serves it until Close. It
// returns once the connection manager runs; the first connection may come later (the
// broker may be down: it is retried with backoff). timeout bounds one pipeline run. The
// bridge lives until Close, whatever becomes of ctx: a serve that is stopping still lets
// the messages being processed finish and be acknowledged.
func Start(ctx context.Context, e *engine.Engine, name string, cfg config.MQTT, timeout time.Duration, m *Metrics, log hclog.Logger) (*Bridge, error) {
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: mqtt broker %q: %w", name, cfg.Broker, err)
	}
	if u.Scheme == "tcp" {
		u.Scheme = "mqtt"
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	b := &Bridge{name: name, cfg: cfg, e: e, timeout: timeout, m: m, log: log.Named("mqtt").With("pipeline", name),
		work: make(chan job), quit: make(chan struct{})}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	recvMax := uint16(cfg.MaxInflight)
	pc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     20,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(cfg.SessionExpiry.Seconds()),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp:                b.up,
		OnConnectionDown: func() bool {
			b.m.Connected.WithLabelValues(name).Set(0)
			b.log.Warn("disconnected from the broker; reconnecting", "broker", cfg.Broker)
			return true
		},
		OnConnectError: func(err error) {
			b.log.Warn("cannot connect to the broker; retrying", "broker", cfg.Broker, "error", err)
		},
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &recvMax // the broker holds the rest: a flood stays there
			return c, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   cfg.ClientID,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           10 * time.Millisecond,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){b.received},
		},
	}
	if b.cm, err = autopaho.NewConnection(b.ctx, pc); err != nil {
		b.cancel()
		return nil, fmt.Errorf("pipeline %s: mqtt: %w", name, err)
	}
	// Answers go out on a second connection: the first one's reader is held while the
	// workers are busy (so the broker keeps the backlog), and the PUBACKs of answers must not
	// queue behind it.
	oc := pc
	oc.OnConnectionUp = func(*autopaho.ConnectionManager, *paho.Connack) {}
	oc.OnConnectionDown = func() bool { return true }
	oc.ConnectPacketBuilder = nil
	oc.ClientConfig = paho.ClientConfig{ClientID: cfg.ClientID + "-out"}
	if b.out, err = autopaho.NewConnection(b.ctx, oc); err != nil {
		b.cancel()
		return nil, fmt.Errorf("pipeline %s: mqtt: %w", name, err)
	}
	for i := 0; i < cfg.MaxInflight; i++ {
		b.workers.Add(1)
		go b.worker()
	}
	b.m.Connected.WithLabelValues(name).Set(0)
	return b, nil
}

func (b *Bridge) up(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	if b.ups.Add(1) > 1 {
		b.m.Reconnects.WithLabelValues(b.name).Inc()
	}
	b.m.Connected.WithLabelValues(b.name).Set(1)
	b.log.Info("connected to the broker", "broker", b.cfg.Broker, "topic", b.cfg.Topic, "session_present", ca.SessionPresent)
	if ca.SessionPresent {
		return // the broker kept the subscription (and the messages queued for it)
	}
	go func() { // OnConnectionUp must not block
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: b.cfg.Topic, QoS: 1}}}); err != nil {
			b.log.Error("subscribe failed", "topic", b.cfg.Topic, "error", err)
		}
	}()
}

// received runs on paho's reading goroutine and waits for a free worker (there are
// max_inflight): while all are busy the connection is not read, so a flood stays at the
// broker (which also sends at most max_inflight unacknowledged messages: the receive
// maximum) instead of growing memory here.
func (b *Bridge) received(pr paho.PublishReceived) (bool, error) {
	b.m.Received.WithLabelValues(b.name).Inc()
	if pr.Packet.Duplicate() {
		b.m.Redelivered.WithLabelValues(b.name).Inc()
	}
	select {
	case b.work <- job{p: pr.Packet, client: pr.Client}:
	case <-b.quit: // stopping: not acknowledged, so the broker sends it again later
	}
	return true, nil
}

func (b *Bridge) took() {
	n := b.inUse.Add(1)
	for {
		seen := b.MaxSeen.Load()
		if n <= seen || b.MaxSeen.CompareAndSwap(seen, n) {
			break
		}
	}
	b.m.Inflight.WithLabelValues(b.name).Set(float64(n))
}

func (b *Bridge) done() {
	b.m.Inflight.WithLabelValues(b.name).Set(float64(b.inUse.Add(-1)))
}

func (b *Bridge) worker() {
	defer b.workers.Done()
	for {
		select {
		case <-b.quit:
			return
		case j := <-b.work:
			b.took()
			b.handle(j)
			b.done()
		}
	}
}

// handle runs one message through the pipeline, publishes the answer and acknowledges the
// message; if the answer cannot be published (stopping), the message stays unacknowledged.
func (b *Bridge) handle(j job) {
	in := j.p
	res, ct, err := b.run(in.Payload)
	out := &paho.Publish{QoS: 1, Topic: b.cfg.ResultTopic, Properties: &paho.PublishProperties{}}
	if in.Properties != nil {
		out.Properties.CorrelationData = in.Properties.CorrelationData
		if in.Properties.ResponseTopic != "" {
			out.Topic = in.Properties.ResponseTopic
		}
	}
	kind := "result"
	outs := []*paho.Publish{out}
	if err != nil {
		class, _, _ := server.Classify(err)
		b.m.Errors.WithLabelValues(b.name, class).Inc()
		kind = "error"
		out.Payload, _ = json.Marshal(ErrorMessage{Error: err.Error(), Class: class, Pipeline: b.name, Topic: in.Topic})
		out.Properties.ContentType = "application/json"
		out.Properties.User = paho.UserProperties{{Key: "error_class", Value: class}}
		if out.Topic != b.cfg.ResultTopic { // a requester waits on its response topic: tell it too
			e := *out
			e.Topic = b.cfg.ErrorTopic
			outs = append(outs, &e)
		} else {
			out.Topic = b.cfg.ErrorTopic
		}
		b.log.Debug("pipeline run failed", "topic", in.Topic, "class", class, "error", err)
	} else {
		out.Payload, out.Properties.ContentType = res, ct
	}
	for _, o := range outs {
		if !b.publish(o) {
			return // stopping: not acknowledged, so redelivered after the restart
		}
	}
	b.m.Published.WithLabelValues(b.name, kind).Add(float64(len(outs)))
	// A message of an earlier connection cannot be acknowledged on this one: the broker
	// sends it again (a duplicate result, as QoS 1 allows).
	_ = j.client.Ack(in)
}

// publish sends one answer at QoS 1 until the broker acknowledges it; false when the
// bridge is stopping first.
func (b *Bridge) publish(out *paho.Publish) bool {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		_, perr := b.out.Publish(ctx, out)
		cancel()
		if perr == nil {
			return true
		}
		select {
		case <-b.quit:
			return false
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second)):
		}
		_ = b.out.AwaitConnection(b.ctx)
	}
}

// run runs the pipeline on payload. Overload is waited out (the message is held, not
// failed): MQTT has no 503 to answer with, and the broker keeps the rest.
func (b *Bridge) run(payload []byte) ([]byte, string, error) {
	if len(payload) == 0 {
		return nil, "", &pipeline.BadRequestError{Msg: "empty MQTT payload: publish the input (for example a JPEG or PNG image)"}
	}
	// The HTTP body limit holds for MQTT payloads too (the broker's own limit may be larger).
	if limit := b.e.Config().Server.MaxBodyBytes; limit > 0 && int64(len(payload)) > limit {
		return nil, "", fmt.Errorf("MQTT payload of %d bytes is over server.max_body_bytes (%d): %w", len(payload), limit, &http.MaxBytesError{Limit: limit})
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	for {
		p, ok := b.e.Pipeline(b.name)
		if !ok {
			return nil, "", fmt.Errorf("%w: pipeline %q (removed from the config?)", engine.ErrNotFound, b.name)
		}
		var res []byte
		var ct string
		_, err := p.Pipeline.Run(ctx, bytes.NewReader(payload), len(payload), func(r []byte, c string) error {
			res, ct = append([]byte(nil), r...), c
			return nil
		})
		if !errors.Is(err, pipeline.ErrOverloaded) || ctx.Err() != nil {
			return res, ct, err
		}
	}
}

// Close stops taking messages, lets the ones being processed finish and be acknowledged
// (until ctx ends), then disconnects. Messages not answered are redelivered by the broker
// at the next start (the session persists).
func (b *Bridge) Close(ctx context.Context) {
	close(b.quit)
	done := make(chan struct{})
	go func() { b.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	time.Sleep(30 * time.Millisecond) // the last acknowledgements go out every 10 ms
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = b.cm.Disconnect(dctx)
	_ = b.out.Disconnect(dctx)
	cancel()
	b.cancel()
	b.m.Connected.WithLabelValues(b.name).Set(0)
}

// StartAll starts a bridge for every pipeline of the engine's config with an [mqtt]
// table. The returned function closes them all.
func StartAll(ctx context.Context, e *engine.Engine, reg prometheus.Registerer, log hclog.Logger) (func(context.Context), error) {
	cfg := e.Config()
	var bridges []*Bridge
	closeAll := func(ctx context.Context) {
		for _, b := range bridges {
			b.Close(ctx)
		}
	}
	var m *Metrics
	for _, name := range cfg.PipelineNames() {
		mc := cfg.Pipelines[name].MQTT
		if mc == nil {
			continue
		}
		if m == nil {
			m = NewMetrics(reg)
		}
		b, err := Start(ctx, e, name, *mc, cfg.Server.RequestTimeout.Duration, m, log)
		if err != nil {
			closeAll(ctx)
			return nil, err
		}
		bridges = append(bridges, b)
	}
	return closeAll, nil
}

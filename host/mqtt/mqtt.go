package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
	// Ignored counts messages acknowledged and not run, by reason (retained).
	Ignored *prometheus.CounterVec // pipeline, reason
	// PublishFailures counts answers given up on (refused by the broker, or not published
	// within publish_timeout or 3 tries); their message is acknowledged with an error.
	PublishFailures *prometheus.CounterVec // pipeline
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
		Ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_ignored_total",
			Help: "MQTT messages acknowledged without being run, by reason (retained: see retain_as_input)."}, []string{"pipeline", "reason"}),
		PublishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_mqtt_publish_failures_total",
			Help: "MQTT answers that could not be published (refused by the broker, or out of tries or time); the message is acknowledged with an error."}, []string{"pipeline"}),
	}
	reg.MustRegister(m.Received, m.Redelivered, m.Published, m.Errors, m.Reconnects, m.Inflight, m.Connected, m.Ignored, m.PublishFailures)
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
	// outMax is the broker's Maximum Packet Size (its CONNACK on the publishing
	// connection), 0 when it sets none: a bigger answer would get the connection dropped.
	outMax atomic.Uint32
	// outDown is closed when the publishing connection of the moment goes down (then
	// replaced): a try in flight then fails at once instead of waiting for paho's timeout.
	outMu   sync.Mutex
	outDown chan struct{}
	// MaxSeen is the most messages processed at once (taken from the broker, not yet
	// answered); it never exceeds max_inflight.
	MaxSeen atomic.Int64
}

type job struct {
	p      *paho.Publish
	client *paho.Client
}

// Start connects pipeline name's [pipelines.NAME.mqtt] and serves it until Close. It
// returns after the first connection attempts (the receiving connection counts as up once it
// is subscribed, so a message published after Start returns is not lost to a new session):
// an error when the broker refuses the
// credentials or the TLS handshake fails (a config error: no retry mends it); the first
// connection may come later when the broker is down or unreachable (retried with backoff;
// Start waits at most startWait for it). timeout bounds one pipeline run. The
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
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: mqtt: %w", name, err)
	}
	pw, err := password(cfg)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: mqtt: %w", name, err)
	}
	b := &Bridge{name: name, cfg: cfg, e: e, timeout: timeout, m: m, log: log.Named("mqtt").With("pipeline", name),
		work: make(chan job), quit: make(chan struct{}), outDown: make(chan struct{})}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// The outcomes of the connection attempts while Start waits (the check at the end).
	outcomes := make(chan outcome, 16)
	var starting atomic.Bool
	starting.Store(true)
	report := func(out bool, err error) {
		if starting.Load() {
			select {
			case outcomes <- outcome{out, err}:
			default:
			}
		}
	}
	recvMax := uint16(cfg.MaxInflight)
	b.m.Connected.WithLabelValues(name).Set(0) // before the first connection can set 1
	pc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        tc,
		ConnectUsername:               cfg.Username,
		ConnectPassword:               pw,
		KeepAlive:                     20,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(cfg.SessionExpiry.Seconds()),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			// Up for Start once subscribed: a message published before the subscription
			// exists is not kept for a new session (TestErrorsResponseTopicAndBound lost one
			// so on a busy machine).
			b.up(cm, ca, func() { report(false, nil) })
		},
		OnConnectionDown: func() bool {
			b.m.Connected.WithLabelValues(name).Set(0)
			b.log.Warn("disconnected from the broker; reconnecting", "broker", cfg.Broker)
			return true
		},
		OnConnectError: func(err error) {
			report(false, err)
			if why := fatal(err); why != "" {
				b.log.Error("cannot connect to the broker; retrying", "broker", cfg.Broker, "why", why, "error", err)
			} else {
				b.log.Warn("cannot connect to the broker; retrying", "broker", cfg.Broker, "error", err)
			}
		},
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &recvMax // the broker holds the rest: a flood stays there
			// The broker must not send a packet bigger than this: it drops the message
			// instead (read at every connection: max_body_bytes hot-reloads).
			maxPacket := MaxPacketSize(b.e.Config().Server.MaxBodyBytes)
			c.Properties.MaximumPacketSize = &maxPacket
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
	// Without a session: a persistent one would make paho send an answer the broker dropped
	// the connection for again at every reconnection, for ever (publish tries again itself,
	// a bounded number of times).
	oc.CleanStartOnInitialConnection, oc.SessionExpiryInterval = true, 0
	oc.OnConnectionUp = func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
		report(true, nil)
		var max uint32
		if ca.Properties != nil && ca.Properties.MaximumPacketSize != nil {
			max = *ca.Properties.MaximumPacketSize
		}
		b.outMax.Store(max)
	}
	oc.OnConnectionDown = func() bool {
		b.outMu.Lock()
		close(b.outDown)
		b.outDown = make(chan struct{})
		b.outMu.Unlock()
		return true
	}
	oc.OnConnectError = func(err error) {
		report(true, err)
		b.log.Debug("publishing connection: cannot connect to the broker; retrying", "error", err)
	}
	oc.ConnectPacketBuilder = func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
		if c.Properties == nil {
			c.Properties = &paho.ConnectProperties{}
		}
		small := uint32(outMaxPacket) // this connection only receives acknowledgements
		c.Properties.MaximumPacketSize = &small
		return c, nil
	}
	oc.ClientConfig = paho.ClientConfig{ClientID: cfg.ClientID + "-out"}
	if b.out, err = autopaho.NewConnection(b.ctx, oc); err != nil {
		b.cancel()
		return nil, fmt.Errorf("pipeline %s: mqtt: %w", name, err)
	}
	for i := 0; i < cfg.MaxInflight; i++ {
		b.workers.Add(1)
		go b.worker()
	}
	// Wait until both connections are up, or the broker is unreachable (retried with
	// backoff), or an attempt fails in a way no retry mends (the config does).
	defer starting.Store(false)
	wait := time.NewTimer(startWait)
	defer wait.Stop()
	settled := map[bool]bool{}  // by connection (true: the publishing one)
	dropped := map[bool]error{} // the last attempt's error, for a connection whose every attempt was dropped
	for len(settled) < 2 {
		select {
		case o := <-outcomes:
			if why := fatal(o.err); why != "" {
				b.abort()
				return nil, fmt.Errorf("pipeline %s: mqtt broker %s: %s", name, cfg.Broker, why)
			}
			if o.err == nil || unreachable(o.err) {
				settled[o.out] = true
				delete(dropped, o.out)
			} else {
				// Dropped after connecting: a TLS alert may come as a reset (the broker
				// closes the socket with the CONNECT unread, and the RST discards the alert
				// before the client reads it); see the next try.
				dropped[o.out] = o.err
			}
		case <-wait.C:
			// No attempt of a connection got through, and none failed to reach the broker:
			// the broker took every connection and closed it. That is no broker being down;
			// it is what a broker that refuses the client (a certificate it requires, most
			// often) looks like when its alert is lost.
			for out, err := range dropped {
				if settled[out] {
					continue
				}
				b.abort()
				return nil, fmt.Errorf("pipeline %s: mqtt broker %s: %s", name, cfg.Broker, droppedWhy(cfg.Broker, err))
			}
			return b, nil
		}
	}
	return b, nil
}

// droppedWhy says what a broker that closed every connection right after accepting it
// during Start most likely refused.
func droppedWhy(broker string, err error) string {
	if strings.HasPrefix(broker, "mqtts://") || strings.HasPrefix(broker, "ssl://") || strings.HasPrefix(broker, "tls://") {
		return fmt.Sprintf("the broker refused the TLS handshake or closed every connection right after it for %v (a client certificate it requires? cert_file, key_file): %v", startWait, err)
	}
	return fmt.Sprintf("the broker closed every connection right after accepting it for %v: %v", startWait, err)
}

// outcome is one connection attempt's: err nil when up; out for the publishing connection.
type outcome struct {
	out bool
	err error
}

// startWait bounds how long Start waits for the connection attempts' outcome (a variable
// for the tests).
var startWait = 10 * time.Second

// abort stops a bridge that never served: its workers and connection managers.
func (b *Bridge) abort() {
	close(b.quit)
	b.cancel()
	b.workers.Wait()
	<-b.cm.Done()
	<-b.out.Done()
}

// up follows a connection of the receiving side: it subscribes unless the broker kept the
// session, then calls subscribed (also after a failed attempt, which it logs).
func (b *Bridge) up(cm *autopaho.ConnectionManager, ca *paho.Connack, subscribed func()) {
	if b.ups.Add(1) > 1 {
		b.m.Reconnects.WithLabelValues(b.name).Inc()
	}
	b.m.Connected.WithLabelValues(b.name).Set(1)
	b.log.Info("connected to the broker", "broker", b.cfg.Broker, "topic", b.cfg.Topic, "session_present", ca.SessionPresent)
	if ca.SessionPresent {
		subscribed()
		return // the broker kept the subscription (and the messages queued for it)
	}
	go func() { // OnConnectionUp must not block
		defer subscribed()
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		// Retain handling 2: the broker sends no retained message at the subscription (those
		// that come anyway are ignored in received), unless retain_as_input says otherwise.
		rh := byte(2)
		if b.cfg.RetainAsInput {
			rh = 0
		}
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: b.cfg.Topic, QoS: 1, RetainHandling: rh}}}); err != nil {
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
	// A message that comes with the retain flag was stored by the broker earlier and sent
	// because of a new subscription (live messages come with it cleared: the subscription
	// does not ask for retain as published): run, it would be answered again at every new
	// subscription.
	if pr.Packet.Retain && !b.cfg.RetainAsInput {
		b.m.Ignored.WithLabelValues(b.name, "retained").Inc()
		b.log.Debug("retained message ignored (retain_as_input is off)", "topic", pr.Packet.Topic)
		_ = pr.Client.Ack(pr.Packet)
		return true, nil
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
// message. Every message is acknowledged, answered or not, unless the bridge stops or the
// connection it came on is lost first (then the broker delivers it again): a message whose
// answer cannot be published is a poison message, and acknowledging it with an error is
// what keeps it from holding a worker, or the session, for ever.
func (b *Bridge) handle(j job) {
	in := j.p
	var corrData []byte
	if in.Properties != nil {
		corrData = in.Properties.CorrelationData
	}
	msg := func(topic string) *paho.Publish {
		return &paho.Publish{QoS: 1, Topic: topic, Properties: &paho.PublishProperties{CorrelationData: corrData}}
	}
	reply, err := b.replyTopic(in)
	var res []byte
	var ct string
	if err == nil {
		res, ct, err = b.run(in.Payload)
	}
	if err == nil {
		out := msg(reply)
		out.Payload, out.Properties.ContentType = res, ct
		perr := b.publish(j, out)
		switch {
		case perr == nil:
			b.m.Published.WithLabelValues(b.name, "result").Inc()
			_ = j.client.Ack(in)
			return
		case errors.Is(perr, errStopping), errors.Is(perr, errConnectionLost):
			return // not acknowledged: delivered again
		}
		b.m.PublishFailures.WithLabelValues(b.name).Inc()
		b.log.Warn("cannot publish a result; the message is acknowledged with an error", "topic", reply, "error", perr)
		if reply != b.cfg.ResultTopic {
			err = server.BadInput("cannot publish the result to the response topic %q: %v", reply, perr)
		} else {
			err = fmt.Errorf("cannot publish the result to %q: %w", reply, perr)
		}
		reply = b.cfg.ErrorTopic // the error goes to the error topic only
	}
	class, _, _ := server.Classify(err)
	b.m.Errors.WithLabelValues(b.name, class).Inc()
	b.log.Debug("pipeline run failed", "topic", in.Topic, "class", class, "error", err)
	payload, _ := json.Marshal(ErrorMessage{Error: err.Error(), Class: class, Pipeline: b.name, Topic: in.Topic})
	topics := []string{b.cfg.ErrorTopic}
	if reply != "" && reply != b.cfg.ResultTopic && reply != b.cfg.ErrorTopic {
		topics = append(topics, reply) // a requester waits on its response topic: tell it too
	}
	for _, t := range topics {
		e := msg(t)
		e.Payload = payload
		e.Properties.ContentType = "application/json"
		e.Properties.User = paho.UserProperties{{Key: "error_class", Value: class}}
		perr := b.publish(j, e)
		switch {
		case perr == nil:
			b.m.Published.WithLabelValues(b.name, "error").Inc()
		case errors.Is(perr, errStopping), errors.Is(perr, errConnectionLost):
			return
		default:
			b.m.PublishFailures.WithLabelValues(b.name).Inc()
			b.log.Warn("cannot publish an error; the message is acknowledged all the same", "topic", t, "class", class, "error", perr)
		}
	}
	// A message of an earlier connection cannot be acknowledged on this one: the broker
	// sends it again (a duplicate answer, as QoS 1 allows).
	_ = j.client.Ack(in)
}

// replyTopic is where the answer to in goes: ResultTopic, or the request's MQTT 5 response
// topic when response_topic_prefix allows it and it can be published to. An error (class
// bad_input) otherwise: such a request is not run.
func (b *Bridge) replyTopic(in *paho.Publish) (string, error) {
	if in.Properties == nil || in.Properties.ResponseTopic == "" || in.Properties.ResponseTopic == b.cfg.ResultTopic {
		return b.cfg.ResultTopic, nil
	}
	rt := in.Properties.ResponseTopic
	prefix := b.cfg.ResponseTopicPrefix
	if prefix == "" {
		return "", server.BadInput("response topic %.200q refused: pipeline %s answers on %q only (response_topic_prefix is not set)", rt, b.name, b.cfg.ResultTopic)
	}
	if !strings.HasPrefix(rt, prefix) || len(rt) == len(prefix) {
		return "", server.BadInput("response topic %.200q refused: it is not under response_topic_prefix %q", rt, prefix)
	}
	if err := config.CheckPublishTopic(rt); err != nil {
		return "", server.BadInput("response topic refused: %v", err)
	}
	return rt, nil
}

var (
	errStopping       = errors.New("the bridge is stopping")
	errConnectionLost = errors.New("the connection the message came on is lost (the broker delivers it again)")
)

// publishTries bounds the tries to publish one answer on a live connection.
const publishTries = 3

// publish sends one answer at QoS 1 until the broker acknowledges it. It gives up with an
// error when the topic cannot be published to, the answer is larger than the broker takes,
// the broker refuses it (a PUBACK reason code), publishTries tries fail, or publish_timeout
// passes (waiting for a connection included); with errStopping when a try failed while the
// bridge stops, errConnectionLost when j's connection is lost (no acknowledgement can
// reach the broker then). Nothing retries for ever.
func (b *Bridge) publish(j job, out *paho.Publish) error {
	if err := config.CheckPublishTopic(out.Topic); err != nil {
		return err
	}
	if max := b.outMax.Load(); max > 0 {
		var n countWriter
		if _, err := out.Packet().WriteTo(&n); err == nil && n > countWriter(max) {
			return fmt.Errorf("the answer's packet is %d bytes, over the broker's maximum packet size %d", n, max)
		}
	}
	timeout := b.cfg.PublishTimeout.Duration
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if j.client != nil { // j's connection lost: stop waiting (the broker delivers j again)
		go func() {
			select {
			case <-j.client.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	lost := func() bool {
		if j.client == nil {
			return false
		}
		select {
		case <-j.client.Done():
			return true
		default:
			return false
		}
	}
	var last error
	for tries := 0; ; {
		pr, err := b.try(ctx, out)
		if err == nil {
			return nil
		}
		if pr != nil { // the broker answered: no point in trying again
			return fmt.Errorf("the broker refused it (reason code 0x%02x): %w", pr.ReasonCode, err)
		}
		if !errors.Is(err, autopaho.ConnectionDownError) {
			tries++
			last = err
		}
		select {
		case <-b.quit:
			return errStopping
		default:
		}
		switch {
		case lost():
			return errConnectionLost
		case tries >= publishTries:
			return fmt.Errorf("%d tries failed, the last: %w", tries, last)
		case ctx.Err() != nil:
			if last == nil {
				last = err
			}
			return fmt.Errorf("not published within publish_timeout %v: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(tries+1) * 100 * time.Millisecond):
		}
		_ = b.out.AwaitConnection(ctx)
	}
}

// try publishes out once. It ends when the broker acknowledges it, when ctx ends, or when
// the publishing connection goes down: paho would keep the message for its session and
// wait for its packet timeout (10 s).
func (b *Bridge) try(ctx context.Context, out *paho.Publish) (*paho.PublishResponse, error) {
	b.outMu.Lock()
	down := b.outDown
	b.outMu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-down:
			cancel(errOutDown)
		case <-ctx.Done():
		}
	}()
	pr, err := b.out.Publish(ctx, out)
	if err != nil && errors.Is(context.Cause(ctx), errOutDown) {
		err = fmt.Errorf("%w (%w)", err, errOutDown)
	}
	return pr, err
}

var errOutDown = errors.New("the publishing connection went down")

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// MQTT's largest packet: a 268,435,455-byte remaining length and a 5-byte fixed header.
const mqttMaxPacket = 268_435_460

// PacketHeadroom is what a PUBLISH may carry besides its payload and still reach the
// bridge: a topic, response topic, correlation data and content type at their largest
// (65,535 bytes each, with their lengths and identifiers), the other properties and the
// fixed header. A message whose user properties take more is dropped by the broker.
const PacketHeadroom = 4*(65_535+3) + 1024

// outMaxPacket is the Maximum Packet Size of the publishing connection, which receives
// only acknowledgements.
const outMaxPacket = 64 << 10

// MaxPacketSize is the MQTT 5 Maximum Packet Size the bridge sends in its CONNECT: the
// broker then sends no message whose payload is much over maxBody (server.max_body_bytes),
// so an oversized payload is dropped at the broker instead of read into memory here. A
// payload over maxBody by less than PacketHeadroom is still received, and answered with a
// too_large error.
func MaxPacketSize(maxBody int64) uint32 {
	if maxBody <= 0 || maxBody > mqttMaxPacket-PacketHeadroom {
		return mqttMaxPacket
	}
	return uint32(maxBody + PacketHeadroom)
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

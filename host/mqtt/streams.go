package mqtt

import (
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/stream"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// StreamSink publishes the results of camera streams ([pipelines.NAME.stream] with
// mqtt_broker and mqtt_topic) to their topic, one event per frame as the SSE endpoint sends
// it (stream.Event JSON). QoS 0, no session, no queue: a result that cannot go out now (the
// broker is away) is dropped and counted, as a frame the pipeline had no time for is: the
// newest result is the one worth having. One connection per broker, made when the first
// event for it comes and kept (reconnecting with backoff) until Close. A stream added or
// changed by a config reload is published with the topic in force when its event comes.
type StreamSink struct {
	e       *engine.Engine
	log     hclog.Logger
	sub     *stream.Sub
	ctx     context.Context
	cancel  context.CancelFunc
	conns   map[string]*autopaho.ConnectionManager
	done    chan struct{}
	mu      sync.Mutex
	Sent    *prometheus.CounterVec
	Dropped *prometheus.CounterVec
}

// StartStreamSink subscribes to every stream's events. reg may be nil.
func StartStreamSink(e *engine.Engine, reg prometheus.Registerer, log hclog.Logger) *StreamSink {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	k := &StreamSink{e: e, log: log.Named("mqtt-stream"), sub: e.StreamHub().Subscribe("", 64),
		conns: map[string]*autopaho.ConnectionManager{}, done: make(chan struct{}),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_stream_mqtt_published_total",
			Help: "Stream results published to the stream's mqtt_topic."}, []string{"stream"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_stream_mqtt_dropped_total",
			Help: "Stream results not published (broker away, or the sink behind)."}, []string{"stream"})}
	if reg != nil {
		reg.MustRegister(k.Sent, k.Dropped)
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	go k.loop()
	return k
}

func (k *StreamSink) loop() {
	defer close(k.done)
	for {
		select {
		case <-k.ctx.Done():
			return
		case ev := <-k.sub.C:
			p, ok := k.e.Pipeline(ev.Stream)
			if !ok || p.Config.Stream == nil || p.Config.Stream.MQTTBroker == "" {
				continue
			}
			sc := p.Config.Stream
			cm, err := k.conn(sc.MQTTBroker, ev.Stream)
			if err != nil {
				k.Dropped.WithLabelValues(ev.Stream).Inc()
				continue
			}
			payload, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(k.ctx, time.Second)
			_, err = cm.Publish(ctx, &paho.Publish{QoS: 0, Topic: sc.MQTTTopic, Payload: payload,
				Properties: &paho.PublishProperties{ContentType: "application/json"}})
			cancel()
			if err != nil {
				k.Dropped.WithLabelValues(ev.Stream).Inc()
				k.log.Debug("stream result not published", "stream", ev.Stream, "error", err)
				continue
			}
			k.Sent.WithLabelValues(ev.Stream).Inc()
		}
	}
}

// conn returns the connection to broker, starting it the first time.
func (k *StreamSink) conn(broker, streamName string) (*autopaho.ConnectionManager, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if cm, ok := k.conns[broker]; ok {
		return cm, nil
	}
	u, err := url.Parse(broker)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "tcp" {
		u.Scheme = "mqtt"
	}
	cm, err := autopaho.NewConnection(k.ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     20,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 5*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                5 * time.Second,
		OnConnectError: func(err error) {
			k.log.Warn("cannot connect to the broker; retrying", "broker", broker, "error", err)
		},
		ClientConfig: paho.ClientConfig{ClientID: "edgehost-stream-" + streamName},
	})
	if err != nil {
		return nil, err
	}
	k.conns[broker] = cm
	return cm, nil
}

// Close stops publishing and disconnects.
func (k *StreamSink) Close(ctx context.Context) {
	k.sub.Close()
	k.cancel()
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, cm := range k.conns {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = cm.Disconnect(dctx)
		cancel()
		<-cm.Done()
	}
}

package stream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-stream series, registered beside the server's at /metrics. A nil
// *Metrics records nothing.
type Metrics struct {
	Received, Processed, Failed, Bad, Reconnects *prometheus.CounterVec
	Dropped                                      *prometheus.CounterVec // by reason: busy, fps, late
	Latency                                      *prometheus.HistogramVec
	Connected                                    *prometheus.GaugeVec
}

// NewMetrics creates the stream series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_stream_" + name, Help: help}, append([]string{"stream"}, labels...))
	}
	m := &Metrics{
		Received:   c("frames_received_total", "Frames read from the camera."),
		Processed:  c("frames_processed_total", "Frames run through the pipeline with a result."),
		Failed:     c("frames_failed_total", "Frames whose pipeline run failed."),
		Bad:        c("bad_parts_total", "MJPEG parts that were not JPEGs (skipped)."),
		Reconnects: c("reconnects_total", "Connections to the camera (or ffmpeg runs) made again."),
		Dropped:    c("frames_dropped_total", "Frames dropped: replaced by a newer one while the pipeline was busy (busy), over the fps cap (fps), or finished after a newer frame's result was out (late; inflight > 1).", "reason"),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edgehost_stream_latency_seconds",
			Help:    "Capture (whole frame read) to result.",
			Buckets: []float64{.005, .01, .02, .035, .05, .075, .1, .15, .25, .5, 1, 2.5}}, []string{"stream"}),
		Connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgehost_stream_connected", Help: "1 while frames come from the camera."}, []string{"stream"}),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Processed, m.Failed, m.Bad, m.Reconnects, m.Dropped, m.Latency, m.Connected)
	}
	return m
}

func (m *Metrics) received(s string) {
	if m != nil {
		m.Received.WithLabelValues(s).Inc()
	}
}

func (m *Metrics) processed(s string, d time.Duration) {
	if m != nil {
		m.Processed.WithLabelValues(s).Inc()
		m.Latency.WithLabelValues(s).Observe(d.Seconds())
	}
}

func (m *Metrics) failed(s string) {
	if m != nil {
		m.Failed.WithLabelValues(s).Inc()
	}
}

func (m *Metrics) bad(s string) {
	if m != nil {
		m.Bad.WithLabelValues(s).Inc()
	}
}

func (m *Metrics) reconnect(s string) {
	if m != nil {
		m.Reconnects.WithLabelValues(s).Inc()
	}
}

func (m *Metrics) dropped(s, reason string) {
	if m != nil {
		m.Dropped.WithLabelValues(s, reason).Inc()
	}
}

func (m *Metrics) connected(s string, up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.Connected.WithLabelValues(s).Set(v)
	}
}

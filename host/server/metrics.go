package server

import (
	"github.com/edgehost/edgehost/host/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the Prometheus series edgehost exports at /metrics.
type Metrics struct {
	Registry    *prometheus.Registry
	Requests    *prometheus.CounterVec   // target, endpoint, code
	Errors      *prometheus.CounterVec   // target, class
	Stage       *prometheus.HistogramVec // target, stage (pre, inference, post, total)
	CopiedBytes *prometheus.CounterVec   // pipeline
	Traps       *prometheus.CounterVec   // pipeline, plugin
}

func newMetrics(e *engine.Engine) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_requests_total",
			Help: "Inference requests by target (pipeline or model), endpoint and HTTP status."}, []string{"target", "endpoint", "code"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_errors_total",
			Help: "Failed requests by target and error class."}, []string{"target", "class"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edgehost_stage_seconds",
			Help:    "Latency per stage: pre, inference, post and total (end to end).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"target", "stage"}),
		CopiedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_copied_bytes_total",
			Help: "Bytes copied between guest memory and TFLite tensors (0 in zero-copy mode)."}, []string{"pipeline"}),
		Traps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgehost_plugin_traps_total",
			Help: "Plugin calls that trapped or broke the ABI."}, []string{"pipeline", "plugin"}),
	}
	r.MustRegister(m.Requests, m.Errors, m.Stage, m.CopiedBytes, m.Traps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&poolCollector{e: e})
	return m
}

// poolCollector reports worker and interpreter pool usage at scrape time.
type poolCollector struct{ e *engine.Engine }

var (
	poolBusy = prometheus.NewDesc("edgehost_pool_busy", "Workers or interpreters in use.", []string{"target", "kind"}, nil)
	poolSize = prometheus.NewDesc("edgehost_pool_size", "Workers or interpreters in the pool.", []string{"target", "kind"}, nil)
	zeroCopy = prometheus.NewDesc("edgehost_pipeline_zero_copy", "1 when the pipeline binds tensors in guest memory, 0 in one-copy mode.", []string{"pipeline"}, nil)
	reloads  = prometheus.NewDesc("edgehost_reloads_total", "Hot reloads of plugins, models and config, by result (applied, rejected).", []string{"result"}, nil)
	retried  = prometheus.NewDesc("edgehost_probation_retried_total", "Requests that failed on a version under probation and were answered by the previous version.", []string{"pipeline"}, nil)
	rollback = prometheus.NewDesc("edgehost_rollbacks_total", "Automatic rollbacks after a new version trapped too often.", nil, nil)
	backend  = prometheus.NewDesc("edgehost_model_backend", "1 for the backend each model runs on (tflite/cpu, litert/cpu, litert/gpu, litert/npu), with the accelerator asked for (\"\" for none).", []string{"model", "backend", "requested"}, nil)
	transfer = prometheus.NewDesc("edgehost_model_accelerator_transfer_bytes_total", "Tensor bytes LiteRT moved between host memory and the GPU for a model on litert/gpu (edgehost itself copies none).", []string{"model"}, nil)
	mcalls   = prometheus.NewDesc("edgehost_model_calls_total", "Runs of a model made by plugins (cascades, ABI §5.9), by result (ok, error).", []string{"model", "result"}, nil)
	mcallSec = prometheus.NewDesc("edgehost_model_call_seconds_total", "Time plugins' runs of a model took: invoke, and waiting for a free interpreter (wait).", []string{"model", "phase"}, nil)
	fallback = prometheus.NewDesc("edgehost_model_accelerator_fallbacks_total", "Interpreters of a LiteRT model moved to the classic CPU backend after load (a failed compile or run; no request lost).", []string{"model"}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolBusy
	ch <- poolSize
	ch <- zeroCopy
	ch <- reloads
	ch <- rollback
	ch <- retried
	ch <- backend
	ch <- fallback
	ch <- transfer
	ch <- mcalls
	ch <- mcallSec
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.e.Pipelines() {
		busy, total := p.Pipeline.Usage()
		ch <- prometheus.MustNewConstMetric(poolBusy, prometheus.GaugeValue, float64(busy), p.Name, "pipeline")
		ch <- prometheus.MustNewConstMetric(poolSize, prometheus.GaugeValue, float64(total), p.Name, "pipeline")
		zc := 0.0
		if p.Pipeline.ZeroCopy() {
			zc = 1
		}
		ch <- prometheus.MustNewConstMetric(zeroCopy, prometheus.GaugeValue, zc, p.Name)
		ch <- prometheus.MustNewConstMetric(retried, prometheus.CounterValue, float64(p.Pipeline.Retried.Load()), p.Name)
	}
	st := c.e.Status()
	ch <- prometheus.MustNewConstMetric(reloads, prometheus.CounterValue, float64(st.Reloads), "applied")
	ch <- prometheus.MustNewConstMetric(reloads, prometheus.CounterValue, float64(st.Failures), "rejected")
	ch <- prometheus.MustNewConstMetric(rollback, prometheus.CounterValue, float64(st.Rollbacks))
	for _, m := range c.e.Models() {
		ch <- prometheus.MustNewConstMetric(poolBusy, prometheus.GaugeValue, float64(m.Pool.InUse()), m.Name, "model")
		ch <- prometheus.MustNewConstMetric(poolSize, prometheus.GaugeValue, float64(m.Pool.Size()), m.Name, "model")
		b := m.Model.Backend()
		ch <- prometheus.MustNewConstMetric(backend, prometheus.GaugeValue, 1, m.Name, b.Active, b.Requested)
		ch <- prometheus.MustNewConstMetric(fallback, prometheus.CounterValue, float64(b.RunFallbacks), m.Name)
		ch <- prometheus.MustNewConstMetric(transfer, prometheus.CounterValue, float64(b.TransferBytes), m.Name)
		if cs := c.e.ModelCalls(m.Name); cs != nil {
			ch <- prometheus.MustNewConstMetric(mcalls, prometheus.CounterValue, float64(cs.Calls.Load()-cs.Errors.Load()), m.Name, "ok")
			ch <- prometheus.MustNewConstMetric(mcalls, prometheus.CounterValue, float64(cs.Errors.Load()), m.Name, "error")
			ch <- prometheus.MustNewConstMetric(mcallSec, prometheus.CounterValue, float64(cs.Nanos.Load())/1e9, m.Name, "invoke")
			ch <- prometheus.MustNewConstMetric(mcallSec, prometheus.CounterValue, float64(cs.WaitNano.Load())/1e9, m.Name, "wait")
		}
	}
}

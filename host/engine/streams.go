package engine

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/stream"
)

// streams are the engine's camera streams ([pipelines.NAME.stream]), one per pipeline that
// has one, started by StartStreams (serve), kept in step with the config by reloads: a
// stream whose table changed is restarted, the others run on; a plugin or model swap
// changes the version its frames run on, never the stream.
type streams struct {
	mu      sync.Mutex
	on      bool
	hub     *stream.Hub
	m       *stream.Metrics
	running map[string]*stream.Stream
}

// StreamHub is where every stream's results are published (SSE and MQTT subscribe here).
func (e *Engine) StreamHub() *stream.Hub { return e.streams.hub }

// StartStreams starts the stream of every pipeline that has one; from then on, config
// reloads start, restart and stop streams. m (the metrics) may be nil.
func (e *Engine) StartStreams(m *stream.Metrics) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.streams.mu.Lock()
	e.streams.on, e.streams.m = true, m
	e.streams.mu.Unlock()
	e.syncStreams()
}

// Stream returns the running stream of pipeline name.
func (e *Engine) Stream(name string) (*stream.Stream, bool) {
	e.streams.mu.Lock()
	defer e.streams.mu.Unlock()
	s, ok := e.streams.running[name]
	return s, ok
}

// syncStreams makes the running streams those of the pipelines serving now: a stream whose
// config changed is stopped and started again (its ffmpeg killed, its connection closed);
// one whose pipeline or table is gone is stopped. Called with reloadMu held.
func (e *Engine) syncStreams() {
	e.streams.mu.Lock()
	defer e.streams.mu.Unlock()
	if !e.streams.on {
		return
	}
	if e.streams.running == nil {
		e.streams.running = map[string]*stream.Stream{}
	}
	want := map[string]config.Stream{}
	for _, p := range e.Pipelines() {
		if p.Config.Stream != nil {
			want[p.Name] = *p.Config.Stream
		}
	}
	for name, s := range e.streams.running {
		if cfg, ok := want[name]; !ok || !reflect.DeepEqual(cfg, s.Config()) {
			s.Stop()
			delete(e.streams.running, name)
		}
	}
	for name, cfg := range want {
		if _, ok := e.streams.running[name]; ok {
			continue
		}
		lookup := func() (*pipeline.Pipeline, bool) {
			p, ok := e.Pipeline(name)
			if !ok {
				return nil, false
			}
			return p.Pipeline, true
		}
		e.streams.running[name] = stream.Start(name, cfg, lookup, e.streams.hub, e.streams.m, e.log)
	}
}

// stopStreams stops every stream (Close).
func (e *Engine) stopStreams() {
	e.streams.mu.Lock()
	defer e.streams.mu.Unlock()
	for name, s := range e.streams.running {
		s.Stop()
		delete(e.streams.running, name)
	}
	e.streams.on = false
}

// streamStatus is the /status entry of every running stream.
func (e *Engine) streamStatus() map[string]stream.Status {
	e.streams.mu.Lock()
	defer e.streams.mu.Unlock()
	if len(e.streams.running) == 0 {
		return nil
	}
	out := map[string]stream.Status{}
	for name, s := range e.streams.running {
		out[name] = s.Status()
	}
	return out
}

// checkFrames refuses a pre plugin for a pipeline fed raw frames (a stream decoded by
// ffmpeg) when its manifest does not list the stream's pixel format (ABI.md §5.7): at start,
// at a plugin reload and at a config reload, so that a plugin built for ABI ≤ 1.2 is never
// handed pixels it would read as an encoded image.
func checkFrames(pc config.Pipeline, pre *plugin.Module) error {
	st := pc.Stream
	if st == nil || !st.FFmpegInput() {
		return nil
	}
	if !pre.Manifest.TakesFrames(abi.PixelFormats[st.PixelFormat]) {
		return fmt.Errorf("pre plugin %s does not take raw %s frames (its manifest lists %q in \"frames\", ABI 1.3 §5.7), and the stream %s is decoded by ffmpeg into raw frames: use a pre plugin that declares them (imagepre-c or imagepre-go ≥ 1.3.0), or an MJPEG URL",
			pre.Name(), st.PixelFormat, pre.Manifest.Frames, st.URL)
	}
	return nil
}

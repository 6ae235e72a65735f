package stream

import (
	"sync"
	"time"

	"encoding/json"
)

// Event is one frame's outcome, sent to the stream's subscribers (SSE and MQTT) as JSON.
type Event struct {
	Stream   string    `json:"stream"`
	Seq      uint64    `json:"seq"`      // the frame's sequence number (frames dropped leave gaps)
	Captured time.Time `json:"captured"` // when edgehost had the whole frame
	Done     time.Time `json:"done"`     // when the result was there
	// LatencyMS is Done − Captured: the time the frame waited in the slot plus the pipeline.
	LatencyMS   float64         `json:"latency_ms"`
	ContentType string          `json:"content_type,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`        // a JSON result, as the post plugin wrote it
	ResultBytes []byte          `json:"result_base64,omitempty"` // any other result type (base64 in JSON)
	Error       string          `json:"error,omitempty"`
}

// Hub fans events out to subscribers. A subscriber that does not keep up loses events (its
// channel is full: the event is dropped for it and counted), never slows the stream.
type Hub struct {
	mu   sync.Mutex
	subs map[*Sub]bool
}

// Sub is one subscription: C receives the events of Stream ("" for every stream).
type Sub struct {
	C       chan Event
	stream  string
	Dropped int64 // events it missed (guarded by the hub's lock)
	hub     *Hub
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*Sub]bool{}} }

// Subscribe subscribes to the events of stream ("" for all), buffered by n.
func (h *Hub) Subscribe(stream string, n int) *Sub {
	s := &Sub{C: make(chan Event, n), stream: stream, hub: h}
	h.mu.Lock()
	h.subs[s] = true
	h.mu.Unlock()
	return s
}

// Close ends the subscription; C receives nothing more (it is not closed).
func (s *Sub) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
}

// Publish hands ev to every subscriber of its stream, without waiting.
func (h *Hub) Publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.stream != "" && s.stream != ev.Stream {
			continue
		}
		select {
		case s.C <- ev:
		default:
			s.Dropped++
		}
	}
}

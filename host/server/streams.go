package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
)

// SSE tuning: a subscriber's buffer (events it may fall behind by before it misses some),
// the keep-alive comment period, and how long one write may block before the client is
// dropped (a reader that stopped reading must not hold a connection for ever).
const (
	sseBuffer    = 16
	sseKeepAlive = 15 * time.Second
	sseWriteWait = 10 * time.Second
)

// streamEvents serves GET /v1/streams/{name}/events: the results of pipeline name's camera
// stream as server-sent events, from now on (no history): `id` is the frame's sequence
// number, `event` is "result" or "error", `data` the stream.Event JSON (capture time,
// latency, the post plugin's result). A client that does not keep up misses events (the
// stream never waits for it); one whose socket blocks a write for 10 s is dropped. Needs the
// infer scope when server.tokens is set (results are inference output).
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, ok := s.e.Pipeline(name)
	if !ok || p.Config.Stream == nil {
		s.fail(w, r, name, "stream", fmt.Errorf("%w: no pipeline %q with a [pipelines.%s.stream] table", engine.ErrNotFound, name, name))
		return
	}
	sub := s.e.StreamHub().Subscribe(name, sseBuffer)
	defer sub.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte(": edgehost stream " + name + "\n\n")) {
		return
	}
	tick := time.NewTicker(sseKeepAlive)
	defer tick.Stop()
	var buf []byte
	for {
		select {
		case ev := <-sub.C:
			kind := "result"
			if ev.Error != "" {
				kind = "error"
				if !s.auth.Enabled() || s.auth.Check(r.Header.Get("Authorization"), config.ScopeObserve) != nil {
					ev.Error = redact(ev.Error)
				}
			}
			data, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			buf = append(buf[:0], "id: "...)
			buf = strconv.AppendUint(buf, ev.Seq, 10)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, kind...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, data...) // JSON has no raw newlines
			buf = append(buf, "\n\n"...)
			if !write(buf) {
				return
			}
		case <-tick.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		}
	}
}

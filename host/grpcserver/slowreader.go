package grpcserver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Slow readers. A client that stops reading its responses (an HTTP/2 flow-control window
// left at 0, or a socket it never reads) makes grpc-go hold every response it answers on
// that connection, for as long as the connection stays: grpc-go has no write timeout. The
// guard below bounds that memory twice:
//
//   - in time: a connection with response bytes queued and no byte written for
//     server.transfer_timeout is closed (the same rule as a stalled HTTP body), which frees
//     what it held;
//   - in total: while the responses queued on all connections and not yet written exceed
//     QueuedLimit (4 × max_body_bytes), a finished call's response is dropped and the call
//     fails with RESOURCE_EXHAUSTED saying why, instead of being queued too.
//
// Queued bytes are counted when a response is admitted (just before it is handed to the
// transport), written bytes at the socket; the difference is an estimate (frame headers
// count as written), kept from drifting by discarding any surplus of written bytes.

// guard follows the connections of one Serve.
type guard struct {
	log   hclog.Logger
	stall time.Duration // no write progress for this long with bytes queued: cut
	limit int64         // queued-and-unwritten bytes over all connections

	mu    sync.Mutex
	conns map[string]*capConn // by remote address
	cut   atomic.Int64        // connections closed for not reading
}

// QueuedLimit is the guard's total bound for a server with the given max_body_bytes.
func QueuedLimit(maxBody int64) int64 { return 4 * maxBody }

func newGuard(log hclog.Logger, stall time.Duration, limit int64) *guard {
	return &guard{log: log, stall: stall, limit: limit, conns: map[string]*capConn{}}
}

func (g *guard) add(c *capConn) {
	c.lastWrite.Store(time.Now().UnixNano())
	g.mu.Lock()
	g.conns[c.RemoteAddr().String()] = c
	g.mu.Unlock()
}

func (g *guard) remove(c *capConn) {
	g.mu.Lock()
	if g.conns[c.RemoteAddr().String()] == c {
		delete(g.conns, c.RemoteAddr().String())
	}
	g.mu.Unlock()
}

// run scans the connections every tick until ctx ends.
func (g *guard) run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.log.Trace("guard stopped", "why", context.Cause(ctx))
			return
		case now := <-t.C:
			g.scan(now)
		}
	}
}

func (g *guard) scan(now time.Time) {
	g.mu.Lock()
	conns := make([]*capConn, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		out := c.queued.Load() - c.written.Load()
		if out <= 0 {
			c.written.Add(out) // frame headers and other writes: no credit for later responses
			c.stuckSince.Store(0)
			continue
		}
		last := c.lastWrite.Load()
		since := c.stuckSince.Load()
		g.log.Trace("connection with responses queued", "remote", c.RemoteAddr().String(), "queued_bytes", out,
			"last_write", time.Unix(0, last).Format(time.StampMilli), "stuck_since", time.Unix(0, since).Format(time.StampMilli))
		if since == 0 || last > since {
			c.stuckSince.Store(max(last, now.UnixNano()-int64(time.Millisecond)))
			continue
		}
		if now.Sub(time.Unix(0, since)) >= g.stall {
			g.cut.Add(1)
			g.log.Warn("closing a connection whose client does not read its responses",
				"remote", c.RemoteAddr().String(), "queued_bytes", out, "stalled_for", now.Sub(time.Unix(0, since)).Round(time.Millisecond))
			c.Close()
			g.remove(c)
		}
	}
}

// outstanding is what the followed connections have queued and not yet written.
func (g *guard) outstanding() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var total int64
	for _, c := range g.conns {
		total += max(0, c.queued.Load()-c.written.Load())
	}
	return total
}

// admit is called with a response about to be sent: it fails when the responses not yet
// written over all connections are past the limit; otherwise it counts the response
// (with its 5-byte gRPC message prefix) as queued on the call's connection, found by the
// peer address grpc puts in the call's context.
func (g *guard) admit(ctx context.Context, size int) error {
	if out := g.outstanding(); out+int64(size) > g.limit {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf(
			"response of %d bytes not sent: %d bytes of responses are queued for clients that do not read them (limit %d, 4 × server.max_body_bytes); retry", size, out, g.limit))
	}
	n := int64(size) + 5
	var c *capConn
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		g.mu.Lock()
		c = g.conns[p.Addr.String()]
		g.mu.Unlock()
	}
	if c == nil {
		g.log.Debug("a response on a connection the guard does not follow", "bytes", n)
		return nil
	}
	c.queued.Add(n)
	return nil
}

// msgSize is the encoded size of a response message.
func msgSize(m any) int {
	if pm, ok := m.(proto.Message); ok {
		return proto.Size(pm)
	}
	return 0
}

// guardedStream checks the guard before each message a streaming call sends.
type guardedStream struct {
	grpc.ServerStream
	g *guard
}

func (s guardedStream) SendMsg(m any) error {
	if err := s.g.admit(s.Context(), msgSize(m)); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

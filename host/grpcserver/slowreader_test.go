package grpcserver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/grpcserver"
	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"github.com/edgehost/edgehost/host/server"
	"github.com/edgehost/edgehost/internal/testservers"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rawCall is an HTTP/2 client written frame by frame: it sends one ModelInfer call and
// then, with its stream window at 0 (SETTINGS_INITIAL_WINDOW_SIZE 0), never lets the server
// send the response; it keeps the connection up (answers SETTINGS, PINGs). It honours the
// server's flow control for its own upload. done is closed when the server closes the
// connection.
type rawCall struct {
	conn  net.Conn
	done  chan struct{}
	ended chan string   // the server ended stream 1: "RST_STREAM CODE" or "trailers"
	data  atomic.Int64  // DATA bytes received on stream 1 (none while the window is 0)
	heads chan struct{} // closed at the response headers of stream 1 (an answer on its way)

	mu     sync.Mutex
	frames map[string]int // frames received, by type and stream, for failure messages
	sent   int            // upload bytes sent
}

func (r *rawCall) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("uploaded %d bytes; frames received %v; %d response bytes", r.sent, r.frames, r.data.Load())
}

func startRawCall(t *testing.T, addr string, msg []byte, uploadStall bool) *rawCall {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	var wmu sync.Mutex
	write := func(f func() error) error { wmu.Lock(); defer wmu.Unlock(); return f() }
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	r := &rawCall{conn: c, done: make(chan struct{}), ended: make(chan string, 2), frames: map[string]int{}, heads: make(chan struct{})}
	window := make(chan int32, 64) // the server's window updates for the upload
	go func() {
		defer close(r.done)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.frames[fmt.Sprintf("%s/%d", f.Header().Type, f.Header().StreamID)]++
			r.mu.Unlock()
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = write(fr.WriteSettingsAck)
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = write(func() error { return fr.WritePing(true, f.Data) })
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == 1 {
					r.ended <- "RST_STREAM " + f.ErrCode.String()
				}
			case *http2.HeadersFrame:
				if f.StreamID == 1 && f.StreamEnded() {
					r.ended <- "trailers"
				} else if f.StreamID == 1 {
					close(r.heads)
				}
			case *http2.DataFrame:
				if f.StreamID == 1 {
					r.data.Add(int64(len(f.Data())))
				}
			case *http2.WindowUpdateFrame:
				if f.StreamID == 1 {
					select {
					case window <- int32(f.Increment):
					default:
					}
				}
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/inference.GRPCInferenceService/ModelInfer"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := write(func() error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	}); err != nil {
		t.Fatal(err)
	}
	body := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)
	if uploadStall {
		body = body[:len(body)/2] // announce the whole message, send half, then nothing
	}
	go func() {
		// The server's initial stream and connection windows are 65535 bytes; then what its
		// WINDOW_UPDATEs for the stream grant.
		avail := int32(65535)
		for off := 0; off < len(body); {
			for avail <= 0 {
				select {
				case n := <-window:
					avail += n
				case <-r.done:
					return
				}
			}
			n := min(len(body)-off, int(avail), 16384)
			end := off+n == len(body) && !uploadStall
			if write(func() error { return fr.WriteData(1, end, body[off:off+n]) }) != nil {
				return
			}
			off += n
			avail -= int32(n)
			r.mu.Lock()
			r.sent = off
			r.mu.Unlock()
		}
	}()
	return r
}

// TestSlowReaderCut: a client that never reads its response (stream window 0) holds a
// 5.5 MB deeplab response in the server. The guard closes its connection once no byte has
// been written to it for transfer_timeout, and while the response is held, a second
// client's big response is refused with RESOURCE_EXHAUSTED (the queued total is over
// 4 × max_body_bytes) instead of being queued too. After the cut, calls work again.
// A client that stalls its upload is reset by the upload deadline.
func TestSlowReaderCut(t *testing.T) {
	// Before setup: run alone, setup starts the shared servers, whose Serve reads GuardTick.
	old := grpcserver.GuardTick
	grpcserver.GuardTick = 50 * time.Millisecond
	env := setup(t)
	t.Cleanup(func() { grpcserver.GuardTick = old })
	cfg := env.cfg.Server
	cfg.TransferTimeout = config.Duration{Duration: time.Second}
	cfg.MaxBodyBytes = 2 << 20 // the queued bound is 8 MiB: one deadlab response fits, two do not
	cfg.RequestTimeout = config.Duration{Duration: 60 * time.Second}
	srv := server.New(env.e, cfg, hclog.NewNullLogger())
	logBuf := &testservers.LogBuffer{} // the guard's view of each connection, shown if the cut fails
	glog := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logBuf})
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	gs := grpcserver.New(srv, cfg, glog)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(c, gl) }()
	req := &pb.ModelInferRequest{ModelName: "deeplab",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "sub_7", Datatype: "FP32", Shape: []int64{1, 257, 257, 3}}},
		RawInputContents: [][]byte{make([]byte, 257*257*3*4)}}
	msg, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewGRPCInferenceServiceClient(conn)
	md, err := client.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "deeplab"})
	if err != nil {
		t.Fatal(err)
	}
	req.Inputs[0].Name = md.Inputs[0].Name
	if msg, err = proto.Marshal(req); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ModelInfer(ctx(t), req); err != nil {
		t.Fatalf("a reading client: %v", err)
	}

	start := time.Now()
	slow := startRawCall(t, gl.Addr().String(), msg, false)
	// Its answer admitted (response headers sent) before the second client asks: the guard
	// refuses a finished answer while another is unsent, so a second answer finishing at the
	// same moment as the slow reader's could have the slow reader's refused instead.
	select {
	case <-slow.heads:
	case how := <-slow.ended:
		t.Fatalf("the slow reader's call ended before an answer was held: %s (%v)", how, slow)
	case <-time.After(60 * time.Second):
		t.Fatalf("no answer for the slow reader after 60 s (%v)", slow)
	}
	// While its response is held: a second big response is refused, saying why.
	var refused error
	for time.Since(start) < 30*time.Second {
		_, err := client.ModelInfer(ctx(t), req)
		if status.Code(err) == codes.ResourceExhausted {
			refused = err
			break
		}
		select {
		case <-slow.done:
			t.Fatalf("the slow reader was cut after %v before a second response was refused (last: %v; slow reader: %v)", time.Since(start), err, slow)
		default:
		}
	}
	if refused == nil {
		t.Fatalf("no call was refused while a slow reader held its response (slow reader: %v)", slow)
	}
	t.Logf("while held: %v (slow reader: %v)", status.Convert(refused).Message(), slow)
	select {
	case <-slow.done:
		t.Logf("slow reader's connection closed %v after its call; guard log %d bytes", time.Since(start).Round(time.Millisecond), len(logBuf.String()))
	case <-time.After(60 * time.Second):
		select {
		case err := <-served:
			t.Logf("Serve returned early: %v", err)
		default:
		}
		t.Fatalf("the slow reader's connection is still open after 60 s (%v); the guard's log:\n%s", slow, tail(logBuf.String()))
	}
	if gs.SlowReadersCut() < 1 {
		t.Errorf("SlowReadersCut = %d", gs.SlowReadersCut())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.ModelInfer(ctx(t), req)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the cut: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A stalled upload: half the announced message, then nothing. The call's upload deadline
	// (request_timeout + transfer_timeout + max_body_bytes at min_transfer_rate) resets it;
	// here shortened to a few seconds.
	cfg.RequestTimeout = config.Duration{Duration: time.Second}
	cfg.MinTransferRate = 4 << 20 // 2 MiB in 0.5 s
	gl2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go grpcserver.New(server.New(env.e, cfg, hclog.NewNullLogger()), cfg, hclog.NewNullLogger()).Serve(c, gl2)
	start = time.Now()
	stalled := startRawCall(t, gl2.Addr().String(), msg, true)
	select {
	case how := <-stalled.ended:
		t.Logf("stalled upload ended by the server after %v: %s", time.Since(start).Round(time.Millisecond), how)
	case <-stalled.done:
		t.Logf("stalled upload: connection closed after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		t.Fatal("a stalled upload is still held after 60 s")
	}
}

// tail is the last 8 KiB of s.
func tail(s string) string { return s[max(0, len(s)-8192):] }

package grpcserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Endpoint is the endpoint label of gRPC requests in edgehost_requests_total.
const Endpoint = "grpc"

// StreamWindow and ConnWindow are the HTTP/2 flow-control windows of a call and of a
// connection: what a client may send before edgehost reads it.
const (
	StreamWindow = 256 << 10
	ConnWindow   = 2 << 20
)

// StreamEndpoint is the endpoint label of requests that came over ModelStreamInfer.
const StreamEndpoint = "grpc_stream"

// ClassTrailer is the trailer key that carries a failed call's error class (bad_input,
// overloaded, …: the classes of the HTTP error table).
const ClassTrailer = "edgehost-error-class"

// MaxConcurrentStreams bounds the calls in flight on one connection; with a message at most
// server.max_body_bytes, it bounds what one connection can make edgehost hold.
const MaxConcurrentStreams = 64

// Server is the KServe v2 GRPCInferenceService over an HTTP front end's engine, metrics and
// error table. Its methods are safe for concurrent use.
type Server struct {
	pb.UnimplementedGRPCInferenceServiceServer
	http *server.Server
	cfg  config.Server
	log  hclog.Logger

	guard atomic.Pointer[guard] // set by Serve
}

// GuardTick is how often the slow-reader guard looks at the connections (see slowreader.go).
var GuardTick = time.Second

// SlowReadersCut counts the connections closed because their client did not read its
// responses.
func (g *Server) SlowReadersCut() int64 {
	if gd := g.guard.Load(); gd != nil {
		return gd.cut.Load()
	}
	return 0
}

// New builds the gRPC service over srv, the HTTP front end whose pipelines, bare models,
// readiness, metrics and error table it shares.
func New(srv *server.Server, cfg config.Server, log hclog.Logger) *Server {
	return &Server{http: srv, cfg: cfg, log: log.Named("grpc")}
}

// Serve serves on l until ctx ends, then stops gracefully: it stops accepting, lets the
// calls in flight finish (up to server.shutdown_timeout, then cuts them off) and returns nil.
// Messages over server.max_body_bytes are refused with ResourceExhausted before any work.
//
// Memory per connection is bounded: metadata to MaxHeaderListSize, calls to
// MaxConcurrentStreams, each message to max_body_bytes and its upload to the transfer
// deadline HTTP has (server.transfer_timeout plus max_body_bytes at min_transfer_rate, on
// top of request_timeout: a stalled upload is reset then); connections to
// server.max_connections. With server.tls it serves TLS (mTLS with client_ca_file), with
// server.tokens every call but health needs the "authorization: Bearer TOKEN" metadata of
// a token with the method's scope. grpc.health.v1 answers SERVING while the server is ready.
func (g *Server) Serve(ctx context.Context, l net.Listener) error {
	auth := g.http.Auth()
	if err := auth.CheckFiles(); err != nil {
		return err
	}
	guard := newGuard(g.log, g.cfg.TransferTimeout.Duration, QueuedLimit(g.cfg.MaxBodyBytes))
	g.guard.Store(guard)
	gctx, stopGuard := context.WithCancel(ctx)
	defer stopGuard()
	go guard.run(gctx, GuardTick)
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(g.cfg.MaxBodyBytes, 1<<31-1))),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		// Fixed flow-control windows (no BDP growth): a stream whose client sends faster than
		// the pipeline answers (ModelStreamInfer behind real time) buffers at most this much
		// in edgehost. With BDP windows 200 streams behind real time held 670 MiB.
		grpc.InitialWindowSize(StreamWindow),
		grpc.InitialConnWindowSize(ConnWindow),
		grpc.MaxHeaderListSize(MaxHeaderListSize),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 2 * time.Minute}),
		grpc.InTapHandle(g.uploadDeadline),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := g.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			resp, err := h(ctx, req)
			if err == nil {
				if err := guard.admit(ctx, msgSize(resp)); err != nil {
					return nil, err
				}
			}
			return resp, err
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := g.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, guardedStream{ss, guard})
		}),
	}
	tc, err := server.TLSConfig(g.cfg)
	if err != nil {
		return err
	}
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	gs := grpc.NewServer(opts...)
	pb.RegisterGRPCInferenceServiceServer(gs, g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go g.followReadiness(ctx, hs)
	l = limitListener(l, server.MaxConns(g.cfg.MaxConnections), guard)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.log.Info("shutting down: finishing in-flight calls", "timeout", g.cfg.ShutdownTimeout.Duration)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(g.cfg.ShutdownTimeout.Duration):
		g.log.Warn("shutdown timeout passed: cutting off the calls still in flight")
		gs.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// MaxHeaderListSize bounds the metadata of one call (HTTP/2 header list): a 15 MiB metadata
// value on a stalled stream is refused instead of held.
const MaxHeaderListSize = 64 << 10

// uploadDeadline gives every call a deadline of request_timeout plus the time a message of
// max_body_bytes takes at min_transfer_rate after transfer_timeout: a client that announces
// a message and stalls is reset then, as HTTP cuts off a stalled body.
func (g *Server) uploadDeadline(ctx context.Context, info *tap.Info) (context.Context, error) {
	if strings.HasSuffix(info.FullMethodName, "/ModelStreamInfer") {
		return ctx, nil // a stream lasts as long as its audio; each of its requests has request_timeout
	}
	d := g.cfg.RequestTimeout.Duration + g.cfg.TransferTimeout.Duration
	if g.cfg.MinTransferRate > 0 {
		d += time.Duration(g.cfg.MaxBodyBytes) * time.Second / time.Duration(g.cfg.MinTransferRate)
	}
	tctx, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(ctx, cancel) // the stream's own context ends with the stream
	return tctx, nil
}

// scopes: the calls that run something need infer; health and liveness nothing; the rest
// (metadata, readiness of a model) observe.
func methodScope(full string) string {
	switch {
	case strings.HasPrefix(full, "/grpc.health.v1.Health/"),
		strings.HasSuffix(full, "/ServerLive"), strings.HasSuffix(full, "/ServerReady"):
		return ""
	case strings.HasSuffix(full, "/ModelInfer"), strings.HasSuffix(full, "/ModelStreamInfer"):
		return config.ScopeInfer
	}
	return config.ScopeObserve
}

func (g *Server) authorize(ctx context.Context, method string) error {
	auth := g.http.Auth()
	scope := methodScope(method)
	if scope == "" || !auth.Enabled() {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var h string
	if v := md.Get("authorization"); len(v) > 0 {
		h = v[0]
	}
	if err := auth.Check(h, scope); err != nil {
		return g.fail(ctx, method, err)
	}
	return nil
}

// followReadiness keeps the health service's status in step with server readiness.
func (g *Server) followReadiness(ctx context.Context, hs *health.Server) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if g.http.Ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		select {
		case <-ctx.Done():
			hs.Shutdown()
			return
		case <-t.C:
		}
	}
}

// limitListener refuses connections beyond max (closes them at once) and registers the
// ones it accepts with the slow-reader guard.
func limitListener(l net.Listener, max int, g *guard) net.Listener {
	return &capListener{Listener: l, sem: make(chan struct{}, max), g: g}
}

type capListener struct {
	net.Listener
	sem chan struct{}
	g   *guard
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			cc := &capConn{Conn: c}
			cc.release = func() { l.g.remove(cc); <-l.sem }
			l.g.add(cc)
			return cc, nil
		default:
			c.Close()
		}
	}
}

type capConn struct {
	net.Conn
	once    sync.Once
	release func()
	// for the slow-reader guard: response bytes queued, bytes written, when the last write
	// returned, and since when bytes have been queued without progress (unix ns; 0: not)
	queued, written, lastWrite, stuckSince atomic.Int64
}

func (c *capConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.written.Add(int64(n))
		c.lastWrite.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *capConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// fail turns err into a gRPC status through the error table, logs it and sets the class
// trailer.
func (g *Server) fail(ctx context.Context, method string, err error) error {
	class, httpStatus, code := server.Classify(err)
	_ = grpc.SetTrailer(ctx, metadata.Pairs(ClassTrailer, class))
	lvl := hclog.Debug
	if httpStatus >= 500 && class != server.ClassCanceled {
		lvl = hclog.Warn
	}
	g.log.Log(lvl, "call failed", "method", method, "code", code.String(), "class", class, "error", err)
	var authz string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authz = v[0]
		}
	}
	// Where files live is for observers only, as over HTTP.
	return status.Error(code, g.http.Auth().Reveal(authz, err.Error()))
}

// ServerLive is always true while the server answers.
func (g *Server) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: true}, nil
}

// ServerReady reports the same readiness as GET /v2/health/ready.
func (g *Server) ServerReady(context.Context, *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: g.http.Ready()}, nil
}

// ModelReady is true for every pipeline and bare model; an unknown name is NotFound, as
// GET /v2/models/{name}/ready answers 404.
func (g *Server) ModelReady(ctx context.Context, req *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	if _, _, err := g.http.Lookup(req.GetName()); err != nil {
		return nil, g.fail(ctx, "ModelReady", err)
	}
	return &pb.ModelReadyResponse{Ready: true}, nil
}

// ServerMetadata names the server and its version.
func (g *Server) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	return &pb.ServerMetadataResponse{Name: "edgehost", Version: server.Version, Extensions: []string{}}, nil
}

// ModelMetadata is GET /v2/models/{name} over gRPC: a pipeline's BYTES input and result, or
// a bare model's own tensors.
func (g *Server) ModelMetadata(ctx context.Context, req *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	md, err := g.http.Metadata(req.GetName())
	if err != nil {
		return nil, g.fail(ctx, "ModelMetadata", err)
	}
	conv := func(ts []server.TensorMetadata) []*pb.ModelMetadataResponse_TensorMetadata {
		out := make([]*pb.ModelMetadataResponse_TensorMetadata, len(ts))
		for i, t := range ts {
			out[i] = &pb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: shape64(t.Shape)}
		}
		return out
	}
	return &pb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform,
		Inputs: conv(md.Inputs), Outputs: conv(md.Outputs)}, nil
}

// ModelInfer runs a pipeline (one input, a BYTES element or UINT8 vector holding the raw
// request; one output, result, BYTES [1]) or a bare model (its own tensors). Inputs come in
// raw_input_contents or typed contents; outputs always go out in raw_output_contents, in
// the order of the requested outputs (all of them when none is named). The call's deadline
// and server.request_timeout both bound it.
func (g *Server) ModelInfer(ctx context.Context, req *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	name := req.GetModelName()
	p, m, err := g.http.Lookup(name)
	if err != nil {
		return nil, g.fail(ctx, "ModelInfer", err)
	}
	resp, err := g.infer(ctx, req, p, m)
	g.http.Count(name, Endpoint, err)
	if err != nil {
		return nil, g.fail(ctx, "ModelInfer", err)
	}
	return resp, nil
}

func (g *Server) infer(ctx context.Context, req *pb.ModelInferRequest, p *engine.Pipeline, m *engine.Model) (*pb.ModelInferResponse, error) {
	ins, err := decodeInputs(req)
	if err != nil {
		return nil, err
	}
	seq, err := server.SequenceOf(params(req.GetParameters()))
	if err != nil {
		return nil, err
	}
	if seq.ID != "" && p == nil {
		return nil, server.BadInput("model %s is a bare model: sequences (%s) are served by pipelines", req.GetModelName(), server.ParamSequenceID)
	}
	var outs []server.Tensor
	if p != nil {
		input, err := server.PipelineInput(ins)
		if err != nil {
			return nil, err
		}
		err = g.http.RunSequence(ctx, p, input, seq, func(res []byte, _ string) error {
			data := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(res)), uint32(len(res)))
			outs = []server.Tensor{{Name: "result", Datatype: "BYTES", Shape: []int{1}, Data: append(data, res...)}}
			return nil
		})
		if err != nil {
			return nil, err
		}
	} else if outs, err = g.http.RunModel(ctx, m, ins); err != nil {
		return nil, err
	}
	if outs, err = requested(req, outs); err != nil {
		return nil, err
	}
	resp := &pb.ModelInferResponse{ModelName: req.GetModelName(), ModelVersion: req.GetModelVersion(), Id: req.GetId(),
		Outputs: make([]*pb.ModelInferResponse_InferOutputTensor, len(outs)), RawOutputContents: make([][]byte, len(outs))}
	for i, o := range outs {
		resp.Outputs[i] = &pb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: o.Datatype, Shape: shape64(o.Shape)}
		resp.RawOutputContents[i] = o.Data
	}
	return resp, nil
}

// params converts request parameters to the values SequenceOf reads.
func params(m map[string]*pb.InferParameter) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch c := v.GetParameterChoice().(type) {
		case *pb.InferParameter_BoolParam:
			out[k] = c.BoolParam
		case *pb.InferParameter_Int64Param:
			out[k] = c.Int64Param
		case *pb.InferParameter_StringParam:
			out[k] = c.StringParam
		}
	}
	return out
}

// ModelStreamInfer is Triton's bidirectional streaming inference: it answers each request
// of the stream in order, one ModelStreamInferResponse each; a failed request is answered
// with its error_message (the error table's class and message) and the stream goes on.
// Each request runs under server.request_timeout; the stream itself has no deadline (a
// live audio stream lasts as long as it lasts) and ends when the client closes it.
//
// Between answering a chunk of a sequence and receiving the stream's next request, the
// stream holds the sequence (pipeline.HoldSequence): its idle timeout counts only once the
// stream has ended (or moved to another sequence), so a server running behind real time
// never expires the sequence of a client that is still streaming.
func (g *Server) ModelStreamInfer(stream pb.GRPCInferenceService_ModelStreamInferServer) error {
	ctx := stream.Context()
	release := func() {}
	defer func() { release() }()
	for {
		req, err := stream.Recv()
		release()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := req.GetModelName()
		var resp *pb.ModelInferResponse
		p, m, err := g.http.Lookup(name)
		if err == nil {
			resp, err = g.infer(ctx, req, p, m)
		}
		if seq, _ := server.SequenceOf(params(req.GetParameters())); p != nil && seq.ID != "" && !seq.End {
			release = p.Pipeline.HoldSequence(seq.ID)
		}
		g.http.Count(name, StreamEndpoint, err)
		out := &pb.ModelStreamInferResponse{InferResponse: resp}
		if err != nil {
			class, _, code := server.Classify(err)
			lvl := hclog.Debug
			if code == codes.Internal {
				lvl = hclog.Warn
			}
			g.log.Log(lvl, "stream request failed", "method", "ModelStreamInfer", "code", code.String(), "class", class, "error", err)
			out = &pb.ModelStreamInferResponse{ErrorMessage: err.Error(),
				InferResponse: &pb.ModelInferResponse{ModelName: name, ModelVersion: req.GetModelVersion(), Id: req.GetId()}}
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// requested keeps the outputs the request names, in its order (all when it names none); a
// name the model does not have is bad input.
func requested(req *pb.ModelInferRequest, outs []server.Tensor) ([]server.Tensor, error) {
	want := req.GetOutputs()
	if len(want) == 0 {
		return outs, nil
	}
	picked := make([]server.Tensor, 0, len(want))
	for _, w := range want {
		found := false
		for _, o := range outs {
			if o.Name == w.GetName() {
				picked, found = append(picked, o), true
				break
			}
		}
		if !found {
			names := make([]string, len(outs))
			for i, o := range outs {
				names[i] = o.Name
			}
			return nil, server.BadInput("model %s has no output %q (outputs: %s)", req.GetModelName(), w.GetName(), strings.Join(names, ", "))
		}
	}
	return picked, nil
}

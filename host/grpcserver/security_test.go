package grpcserver_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/grpcserver"
	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestTokensAndHealth: with server.tokens, ModelInfer needs a token with the infer scope
// (none or a wrong one: Unauthenticated with nothing else said; observe only:
// PermissionDenied), metadata the observe scope, and grpc.health.v1 answers SERVING to
// anyone (Kubernetes gRPC probes). Call metadata over MaxHeaderListSize is refused.
func TestTokensAndHealth(t *testing.T) {
	env := setup(t)
	dir := t.TempDir()
	write := func(name, tok string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(tok), 0o600)
		return p
	}
	cfg := env.cfg.Server
	cfg.Tokens = []config.Token{
		{File: write("inf", "grpc-infer-token-0123456789"), Scopes: []string{config.ScopeInfer}},
		{File: write("obs", "grpc-observe-token-0123456789"), Scopes: []string{config.ScopeObserve}},
	}
	srv := server.New(env.e, cfg, hclog.NewNullLogger())
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	go grpcserver.New(srv, cfg, hclog.NewNullLogger()).Serve(c, gl)
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewGRPCInferenceServiceClient(conn)
	withToken := func(tok string) context.Context {
		if tok == "" {
			return ctx(t)
		}
		return metadata.AppendToOutgoingContext(ctx(t), "authorization", "Bearer "+tok)
	}
	req := &pb.ModelInferRequest{ModelName: "classify", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}},
		RawInputContents: [][]byte{bytesElem(peacock(t))}}
	for _, tc := range []struct {
		name, tok string
		want      codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"wrong token", "not-the-token-0123456789", codes.Unauthenticated},
		{"observe only", "grpc-observe-token-0123456789", codes.PermissionDenied},
		{"infer", "grpc-infer-token-0123456789", codes.OK},
	} {
		r, err := client.ModelInfer(withToken(tc.tok), req)
		if got := status.Code(err); got != tc.want {
			t.Errorf("ModelInfer, %s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if tc.want == codes.Unauthenticated && status.Convert(err).Message() != server.ErrUnauthorized.Error() {
			t.Errorf("%s: message %q says more than %q", tc.name, status.Convert(err).Message(), server.ErrUnauthorized)
		}
		if tc.want == codes.OK && top1(t, r.RawOutputContents[0]) != "peacock" {
			t.Errorf("infer with a token: wrong answer")
		}
	}
	if _, err := client.ModelMetadata(withToken("grpc-infer-token-0123456789"), &pb.ModelMetadataRequest{Name: "classify"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("metadata with an infer-only token: %v", err)
	}
	if _, err := client.ModelMetadata(withToken("grpc-observe-token-0123456789"), &pb.ModelMetadataRequest{Name: "classify"}); err != nil {
		t.Errorf("metadata with an observe token: %v", err)
	}
	// Error texts pass through the same redaction as over HTTP: absolute paths are for
	// observers only (here the caller's own, echoed back in a NOT_FOUND).
	nope := &pb.ModelInferRequest{ModelName: "/srv/models/secret.tflite", Inputs: req.Inputs, RawInputContents: req.RawInputContents}
	if _, err := client.ModelInfer(withToken("grpc-infer-token-0123456789"), nope); status.Code(err) != codes.NotFound ||
		strings.Contains(status.Convert(err).Message(), "/srv/models") || !strings.Contains(status.Convert(err).Message(), "<path>") {
		t.Errorf("an infer-only caller's error: %v (want NOT_FOUND with the path redacted)", err)
	}
	if r, err := client.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive without a token: %v", err)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc.health.v1 Check: %v %v", h, err)
	}
	// 1 MiB of metadata: refused by the server, not held.
	big := metadata.AppendToOutgoingContext(withToken("grpc-infer-token-0123456789"), "x-big", strings.Repeat("a", 1<<20))
	if _, err := client.ModelInfer(big, req); err == nil {
		t.Errorf("1 MiB of call metadata accepted")
	} else {
		t.Logf("1 MiB of metadata: %v", err)
	}
}

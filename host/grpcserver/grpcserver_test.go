package grpcserver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/grpcserver"
	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxBody is server.max_body_bytes in these tests: peacock.png (56 KB) and the bare
// mobilenet tensor (150,528 bytes) fit, 300 KB does not.
const maxBody = 200000

// env is one edgehost serving the shipped config's classify pipeline and mobilenet model,
// plus hostile pipelines (a trap, and runaway loops for overload and deadlines), over HTTP
// and gRPC on loopback ports.
type env struct {
	cfg     *config.Config
	e       *engine.Engine
	http    *server.Server
	httpURL string
	client  pb.GRPCInferenceServiceClient
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
)

func setup(t testing.TB) *env {
	t.Helper()
	envOnce.Do(func() { shared, envErr = newEnv(t) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return shared
}

func newEnv(t testing.TB) (*env, error) {
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		return nil, err
	}
	good := testplugins.Hostile(t, "GOOD", abi.KindBoth)
	loop := testplugins.Hostile(t, "LOOP_PRE", abi.KindBoth)
	extra := fmt.Sprintf(`
[pipelines.trap]
model = "mobilenet"
workers = 1
rollback_window = 0
[pipelines.trap.pre]
path = %q
[pipelines.trap.post]
path = %q

# One worker, no queue: a second call while a runaway holds the worker is overloaded.
[pipelines.busy]
model = "mobilenet"
workers = 1
queue_timeout = "1ms"
rollback_window = 0
[pipelines.busy.pre]
path = %q
timeout_ms = 3000
[pipelines.busy.post]
path = %q

# One worker, a long queue: a second call waits for it until its own deadline.
[pipelines.queue]
model = "mobilenet"
workers = 1
queue_timeout = "2m"
rollback_window = 0
[pipelines.queue.pre]
path = %q
timeout_ms = 3000
[pipelines.queue.post]
path = %q

# A stateful stream: okay_nabu keeps state in the interpreter, seqecho counts per instance.
[models.nabu]
path = ".deps/models/okay_nabu.tflite"
threads = 1
[pipelines.seq]
model = "nabu"
workers = 1
[pipelines.seq.sequences]
max = 4
idle_timeout = "1m"
[pipelines.seq.pre]
path = %q
[pipelines.seq.post]
path = %q
`, testplugins.Hostile(t, "TRAP_PRE", abi.KindBoth), good, loop, good, loop, good, testplugins.SeqEcho(t, 1), testplugins.SeqEcho(t, 1))
	text := strings.ReplaceAll(string(src), "max_body_bytes = 16777216", fmt.Sprintf("max_body_bytes = %d", maxBody))
	text = strings.ReplaceAll(text, `cache_dir = ".cache/wazero"`, `cache_dir = ""`)
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text+extra))
	if err != nil {
		return nil, err
	}
	// classify (C plugins) and the bare mobilenet are enough here; the Go plugins and the
	// SSD model would only make the start slower.
	delete(cfg.Pipelines, "classify-go")
	delete(cfg.Pipelines, "detect")
	delete(cfg.Pipelines, "people") // the cascades run on ssd (and pose)
	delete(cfg.Pipelines, "animals")
	delete(cfg.Models, "ssd")
	delete(cfg.Models, "pose")
	p := cfg.Pipelines["classify"]
	p.QueueTimeout.Duration = 2 * time.Minute
	p.Pre.TimeoutMS, p.Post.TimeoutMS = 60000, 60000 // results, not budgets, are checked here
	cfg.Pipelines["classify"] = p

	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})
	e, err := engine.New(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	srv := server.New(e, cfg.Server, log)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(context.Background(), hl)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go grpcserver.New(srv, cfg.Server, log).Serve(context.Background(), gl)
	return &env{cfg: cfg, e: e, http: srv, httpURL: "http://" + hl.Addr().String(), client: dial(t, gl.Addr().String())}, nil
}

func dial(t testing.TB, addr string) pb.GRPCInferenceServiceClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	return pb.NewGRPCInferenceServiceClient(conn)
}

// ctx is a generous per-call deadline: a loaded machine may be 10× slower.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func peacock(t testing.TB) []byte {
	b, err := os.ReadFile(testplugins.Model("peacock.png"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bytesElem(b []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// top1 is the first label of a classify result (BYTES element with its length prefix).
func top1(t testing.TB, raw []byte) string {
	t.Helper()
	if len(raw) < 4 || int(binary.LittleEndian.Uint32(raw)) != len(raw)-4 {
		t.Fatalf("result %q is not one length-prefixed BYTES element", raw)
	}
	var r struct {
		Top []struct{ Label string } `json:"top"`
	}
	if err := json.Unmarshal(raw[4:], &r); err != nil || len(r.Top) == 0 {
		t.Fatalf("result %q: %v", raw[4:], err)
	}
	return r.Top[0].Label
}

func TestHealthAndMetadata(t *testing.T) {
	env := setup(t)
	c := env.client
	if r, err := c.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive: %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx(t), &pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady: %v %v", r, err)
	}
	if r, err := c.ServerMetadata(ctx(t), &pb.ServerMetadataRequest{}); err != nil || r.Name != "edgehost" || r.Version != server.Version {
		t.Fatalf("ServerMetadata: %v %v", r, err)
	}
	for _, name := range []string{"classify", "mobilenet"} {
		if r, err := c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: name}); err != nil || !r.Ready {
			t.Fatalf("ModelReady(%s): %v %v", name, r, err)
		}
	}
	_, err := c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: "nope"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `model "nope"`) {
		t.Fatalf("ModelReady(nope): %v, want NotFound naming the model", err)
	}

	md, err := c.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "classify"})
	if err != nil {
		t.Fatal(err)
	}
	if md.Platform != "edgehost_pipeline" || len(md.Inputs) != 1 || md.Inputs[0].Name != "input" || md.Inputs[0].Datatype != "BYTES" ||
		len(md.Outputs) != 1 || md.Outputs[0].Name != "result" || len(md.Versions) != 1 {
		t.Fatalf("classify metadata: %v", md)
	}
	md, err = c.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "mobilenet"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := env.e.Model("mobilenet")
	in := m.Model.Inputs[0]
	if md.Platform != "tensorflow_lite" || len(md.Inputs) != 1 || md.Inputs[0].Name != in.Name || md.Inputs[0].Datatype != "UINT8" ||
		fmt.Sprint(md.Inputs[0].Shape) != fmt.Sprint(in.Shape) || len(md.Outputs) != len(m.Model.Outputs) {
		t.Fatalf("mobilenet metadata: %v, model input %v", md, in)
	}
	if _, err := c.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("ModelMetadata(nope): %v", err)
	}
}

// TestInferPipeline: the image as a raw BYTES element, as typed BYTES contents and as a
// UINT8 vector in typed contents all classify as peacock; the id comes back; the requests
// metric counts the calls under endpoint "grpc".
func TestInferPipeline(t *testing.T) {
	env := setup(t)
	img := peacock(t)
	before := testutil.ToFloat64(env.http.Metrics.Requests.WithLabelValues("classify", grpcserver.Endpoint, "200"))
	u := make([]uint32, len(img))
	for i, b := range img {
		u[i] = uint32(b)
	}
	cases := []struct {
		name string
		req  *pb.ModelInferRequest
	}{
		{"raw BYTES", &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}},
			RawInputContents: [][]byte{bytesElem(img)}}},
		{"raw UINT8", &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "UINT8", Shape: []int64{int64(len(img))}}},
			RawInputContents: [][]byte{img}}},
		{"contents BYTES", &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1},
			Contents: &pb.InferTensorContents{BytesContents: [][]byte{img}}}}}},
		{"contents UINT8", &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "UINT8", Shape: []int64{int64(len(img))},
			Contents: &pb.InferTensorContents{UintContents: u}}},
			Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "result"}}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.ModelName, c.req.Id = "classify", fmt.Sprintf("req-%d", i)
			r, err := env.client.ModelInfer(ctx(t), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if r.ModelName != "classify" || r.Id != c.req.Id || len(r.Outputs) != 1 || len(r.RawOutputContents) != 1 {
				t.Fatalf("response %v", r)
			}
			o := r.Outputs[0]
			if o.Name != "result" || o.Datatype != "BYTES" || fmt.Sprint(o.Shape) != "[1]" {
				t.Fatalf("output %v", o)
			}
			if got := top1(t, r.RawOutputContents[0]); got != "peacock" {
				t.Fatalf("top-1 %q, want peacock", got)
			}
		})
	}
	after := testutil.ToFloat64(env.http.Metrics.Requests.WithLabelValues("classify", grpcserver.Endpoint, "200"))
	if after-before != float64(len(cases)) {
		t.Fatalf("requests metric grew by %v, want %d", after-before, len(cases))
	}
}

// mobilenetInput is peacock.png scaled (nearest neighbour) to the model's 224×224 RGB.
func mobilenetInput(t testing.TB) []byte {
	im, _, err := image.Decode(bytes.NewReader(peacock(t)))
	if err != nil {
		t.Fatal(err)
	}
	b := im.Bounds()
	out := make([]byte, 0, 224*224*3)
	for y := 0; y < 224; y++ {
		for x := 0; x < 224; x++ {
			r, g, bl, _ := im.At(b.Min.X+x*b.Dx()/224, b.Min.Y+y*b.Dy()/224).RGBA()
			out = append(out, byte(r>>8), byte(g>>8), byte(bl>>8))
		}
	}
	return out
}

// TestInferModel: the bare mobilenet model over gRPC gives the same output bytes as over
// HTTP (binary tensor data) for the same tensor, and that output's best class is peacock;
// typed contents give the same; requested outputs are honoured.
func TestInferModel(t *testing.T) {
	env := setup(t)
	m, _ := env.e.Model("mobilenet")
	in, out := m.Model.Inputs[0], m.Model.Outputs[0]
	tensor := mobilenetInput(t)
	req := &pb.ModelInferRequest{ModelName: "mobilenet",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: in.Name, Datatype: "UINT8", Shape: []int64{1, 224, 224, 3}}},
		RawInputContents: [][]byte{tensor}}
	r, err := env.client.ModelInfer(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Outputs) != 1 || r.Outputs[0].Name != out.Name || r.Outputs[0].Datatype != out.Type.String() ||
		fmt.Sprint(r.Outputs[0].Shape) != fmt.Sprint(out.Shape) || len(r.RawOutputContents[0]) != 1001 {
		t.Fatalf("response outputs %v, %d bytes", r.Outputs, len(r.RawOutputContents[0]))
	}
	scores := r.RawOutputContents[0]
	best := 0
	for i, s := range scores {
		if s > scores[best] {
			best = i
		}
	}
	labels, err := os.ReadFile(testplugins.Model("mobilenet_labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.Split(string(labels), "\n")[best]; l != "peacock" {
		t.Fatalf("best class %d %q, want peacock", best, l)
	}

	// The same tensor over HTTP with the binary tensor data extension.
	hdr, _ := json.Marshal(map[string]any{
		"inputs":  []any{map[string]any{"name": in.Name, "datatype": "UINT8", "shape": []int{1, 224, 224, 3}, "parameters": map[string]any{"binary_data_size": len(tensor)}}},
		"outputs": []any{map[string]any{"name": out.Name, "parameters": map[string]any{"binary_data": true}}}})
	hreq, _ := http.NewRequest("POST", env.httpURL+"/v2/models/mobilenet/infer", bytes.NewReader(append(hdr, tensor...)))
	hreq.Header.Set("Inference-Header-Content-Length", fmt.Sprint(len(hdr)))
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var hl int
	fmt.Sscan(resp.Header.Get("Inference-Header-Content-Length"), &hl)
	if resp.StatusCode != 200 || hl <= 0 || hl > len(body) {
		t.Fatalf("HTTP: %d %q", resp.StatusCode, body)
	}
	if !bytes.Equal(body[hl:], scores) {
		t.Fatal("gRPC and HTTP outputs differ for the same tensor")
	}

	// Typed contents, and the output asked for by name.
	u := make([]uint32, len(tensor))
	for i, b := range tensor {
		u[i] = uint32(b)
	}
	r, err = env.client.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "mobilenet",
		Inputs:  []*pb.ModelInferRequest_InferInputTensor{{Name: in.Name, Datatype: "UINT8", Shape: []int64{1, 224, 224, 3}, Contents: &pb.InferTensorContents{UintContents: u}}},
		Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: out.Name}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.RawOutputContents) != 1 || !bytes.Equal(r.RawOutputContents[0], scores) {
		t.Fatal("typed contents gave a different output")
	}
}

// TestBadInput: every malformed or wrong request gets the gRPC code of its class in the
// error table, a message that says what is wrong, and the class in the trailer; the server
// keeps serving.
func TestBadInput(t *testing.T) {
	env := setup(t)
	img := peacock(t)
	m, _ := env.e.Model("mobilenet")
	inName := m.Model.Inputs[0].Name
	in := func(name, dt string, shape ...int64) []*pb.ModelInferRequest_InferInputTensor {
		return []*pb.ModelInferRequest_InferInputTensor{{Name: name, Datatype: dt, Shape: shape}}
	}
	classify := func(ins []*pb.ModelInferRequest_InferInputTensor, raw ...[]byte) *pb.ModelInferRequest {
		return &pb.ModelInferRequest{ModelName: "classify", Inputs: ins, RawInputContents: raw}
	}
	model := func(ins []*pb.ModelInferRequest_InferInputTensor, raw ...[]byte) *pb.ModelInferRequest {
		return &pb.ModelInferRequest{ModelName: "mobilenet", Inputs: ins, RawInputContents: raw}
	}
	withContents := func(r *pb.ModelInferRequest, c *pb.InferTensorContents) *pb.ModelInferRequest {
		r.Inputs[0].Contents = c
		return r
	}
	tensor := make([]byte, 224*224*3)
	cases := []struct {
		name  string
		req   *pb.ModelInferRequest
		code  codes.Code
		class string
		want  string
	}{
		{"unknown model", &pb.ModelInferRequest{ModelName: "nope", Inputs: in("input", "BYTES", 1), RawInputContents: [][]byte{bytesElem(img)}},
			codes.NotFound, "not_found", `model "nope"`},
		{"no inputs", classify(nil), codes.InvalidArgument, "bad_input", "no inputs"},
		{"input without a name", classify(in("", "BYTES", 1), bytesElem(img)), codes.InvalidArgument, "bad_input", "input 0 has no name"},
		{"raw for fewer inputs", classify(append(in("input", "BYTES", 1), in("second", "BYTES", 1)...), bytesElem(img)),
			codes.InvalidArgument, "bad_input", "raw_input_contents has 1 entries for 2 inputs"},
		{"neither raw nor contents", classify(in("input", "BYTES", 1)), codes.InvalidArgument, "bad_input", "neither contents nor raw_input_contents"},
		{"raw and contents", withContents(classify(in("input", "BYTES", 1), bytesElem(img)), &pb.InferTensorContents{BytesContents: [][]byte{img}}),
			codes.InvalidArgument, "bad_input", "both given"},
		{"negative dimension", classify(in("input", "UINT8", -5), img), codes.InvalidArgument, "bad_input", "negative dimension"},
		{"huge shape", classify(in("input", "UINT8", 1<<20, 1<<20), img), codes.InvalidArgument, "bad_input", "too large"},
		{"no shape", classify(in("input", "BYTES"), bytesElem(img)), codes.InvalidArgument, "bad_input", "shape is missing"},
		{"unsupported datatype", classify(in("input", "BOOL", 4), []byte{1, 0, 1, 0}), codes.InvalidArgument, "bad_input", `unsupported datatype "BOOL"`},
		{"BYTES length past the data", classify(in("input", "BYTES", 1), append(binary.LittleEndian.AppendUint32(nil, 1<<30), img...)),
			codes.InvalidArgument, "bad_input", "says 1073741824 bytes"},
		{"BYTES cut in its prefix", classify(in("input", "BYTES", 2), append(bytesElem(img), 1, 0)),
			codes.InvalidArgument, "bad_input", "cut short in its 4-byte length prefix"},
		{"two BYTES elements for a pipeline", classify(in("input", "BYTES", 2), append(bytesElem(img), bytesElem(img)...)),
			codes.InvalidArgument, "bad_input", "a pipeline takes one BYTES element"},
		{"BYTES count against shape", classify(in("input", "BYTES", 3), bytesElem(img)), codes.InvalidArgument, "bad_input", "1 BYTES elements for shape [3], want 3"},
		{"UINT8 size against shape", classify(in("input", "UINT8", 10), img), codes.InvalidArgument, "bad_input", "want 10"},
		{"FP32 into a pipeline", classify(in("input", "FP32", 1), make([]byte, 4)), codes.InvalidArgument, "bad_input", "a pipeline takes BYTES or UINT8 input"},
		{"contents count", withContents(classify(in("input", "UINT8", 3)), &pb.InferTensorContents{UintContents: []uint32{1, 2}}),
			codes.InvalidArgument, "bad_input", "contents hold 2 UINT8 elements, shape [3] says 3"},
		{"UINT8 contents out of range", withContents(classify(in("input", "UINT8", 2)), &pb.InferTensorContents{UintContents: []uint32{1, 300}}),
			codes.InvalidArgument, "bad_input", "element 1 is 300, not a valid UINT8"},
		{"FP16 in contents", withContents(classify(in("input", "FP16", 1)), &pb.InferTensorContents{Fp32Contents: []float32{1}}),
			codes.InvalidArgument, "bad_input", "send it in raw_input_contents"},
		{"corrupt image", classify(in("input", "BYTES", 1), bytesElem(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...))),
			codes.InvalidArgument, "bad_input", "imagepre-c@"},
		{"not an image", classify(in("input", "BYTES", 1), bytesElem([]byte("hello, not an image"))), codes.InvalidArgument, "bad_input", "imagepre-c@"},
		{"unknown output", &pb.ModelInferRequest{ModelName: "classify", Inputs: in("input", "BYTES", 1), RawInputContents: [][]byte{bytesElem(img)},
			Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "scores"}}}, codes.InvalidArgument, "bad_input", `has no output "scores" (outputs: result)`},
		{"model: wrong input name", model(in("pixels", "UINT8", 1, 224, 224, 3), tensor), codes.InvalidArgument, "bad_input", `has no input "pixels"`},
		{"model: wrong datatype", model(in(inName, "FP32", 1), make([]byte, 4)), codes.InvalidArgument, "bad_input", "model wants UINT8"},
		{"model: wrong shape", model(in(inName, "UINT8", 1, 224, 224, 1), tensor[:224*224]), codes.InvalidArgument, "bad_input", "model wants [1 224 224 3]"},
		{"model: short data", model(in(inName, "UINT8", 1, 224, 224, 3), tensor[:100]), codes.InvalidArgument, "bad_input", "want 150528"},
		{"model: two inputs", model(append(in(inName, "UINT8", 1), in(inName, "UINT8", 1)...), []byte{1}, []byte{2}),
			codes.InvalidArgument, "bad_input", "takes 1 inputs, got 2"},
		{"too large", classify(in("input", "UINT8", 300000), make([]byte, 300000)), codes.ResourceExhausted, "", "larger than max"},
		{"plugin trap", &pb.ModelInferRequest{ModelName: "trap", Inputs: in("input", "BYTES", 1), RawInputContents: [][]byte{bytesElem(img)}},
			codes.Internal, "plugin_trap", "hostile-trap-pre@1.0.0: edgehost_pre trapped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr metadata.MD
			_, err := env.client.ModelInfer(ctx(t), c.req, grpc.Trailer(&tr))
			st, _ := status.FromError(err)
			if st.Code() != c.code || !strings.Contains(st.Message(), c.want) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), c.code, c.want)
			}
			if got := strings.Join(tr.Get(grpcserver.ClassTrailer), ","); got != c.class {
				t.Fatalf("class trailer %q, want %q", got, c.class)
			}
		})
	}
	// Still serving.
	r, err := env.client.ModelInfer(ctx(t), classify(in("input", "BYTES", 1), bytesElem(img)))
	if err != nil || top1(t, r.RawOutputContents[0]) != "peacock" {
		t.Fatalf("after bad input: %v %v", r, err)
	}
}

// waitBusy waits until pipeline name's only worker is taken.
func waitBusy(t *testing.T, env *env, name string) {
	t.Helper()
	p, _ := env.e.Pipeline(name)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if busy, _ := p.Pipeline.Usage(); busy > 0 {
			return
		}
	}
	t.Fatalf("%s's worker never became busy", name)
}

// TestOverloadAndDeadline: while a runaway holds a pipeline's only worker, a call to a
// pipeline with no queue is Unavailable (overloaded), and a call that waits in a queue ends
// at its own deadline — well before the runaway's 3 s budget — and the server counts it as
// a timeout. The runaway itself is stopped by its budget (Internal, plugin_timeout).
func TestOverloadAndDeadline(t *testing.T) {
	env := setup(t)
	img := bytesElem(peacock(t))
	call := func(c context.Context, name string) (error, metadata.MD) {
		var tr metadata.MD
		_, err := env.client.ModelInfer(c, &pb.ModelInferRequest{ModelName: name,
			Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}}, RawInputContents: [][]byte{img}}, grpc.Trailer(&tr))
		return err, tr
	}
	for _, name := range []string{"busy", "queue"} {
		t.Run(name, func(t *testing.T) {
			first := make(chan error, 1)
			go func() { err, _ := call(ctx(t), name); first <- err }()
			waitBusy(t, env, name)
			// The server's side: the call ends as a timeout (its deadline passed) or, when the
			// client's cancel arrives first, as canceled.
			ended := func() float64 {
				return testutil.ToFloat64(env.http.Metrics.Errors.WithLabelValues(name, server.ClassTimeout)) +
					testutil.ToFloat64(env.http.Metrics.Errors.WithLabelValues(name, server.ClassCanceled))
			}
			before := ended()
			c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err, tr := call(c, name)
			if name == "busy" {
				if status.Code(err) != codes.Unavailable || tr.Get(grpcserver.ClassTrailer)[0] != server.ClassOverloaded {
					t.Fatalf("second call: %v (trailer %v), want Unavailable, overloaded", err, tr)
				}
			} else {
				if status.Code(err) != codes.DeadlineExceeded {
					t.Fatalf("queued call: %v, want DeadlineExceeded", err)
				}
				for ended() == before {
					if time.Since(start) > 2500*time.Millisecond {
						t.Fatal("the server still waited for a worker 2.5 s after a call with a 300 ms deadline: the deadline was not honoured")
					}
					time.Sleep(5 * time.Millisecond)
				}
				t.Logf("the server ended the queued call %v after its start (deadline 300 ms)", time.Since(start).Round(time.Millisecond))
			}
			if err := <-first; status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "budget") {
				t.Fatalf("runaway call: %v, want Internal naming the time budget", err)
			}
		})
	}
}

// TestConcurrentClients: 4 clients × 5 calls, raw and typed, all classify correctly.
func TestConcurrentClients(t *testing.T) {
	env := setup(t)
	img := peacock(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				r, err := env.client.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "classify",
					Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}}, RawInputContents: [][]byte{bytesElem(img)}})
				if err == nil && !strings.Contains(string(r.RawOutputContents[0]), `"label":"peacock"`) {
					err = fmt.Errorf("result %q", r.RawOutputContents[0])
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestShutdown: cancelling Serve's context stops it cleanly (nil) and closes the port.
func TestShutdown(t *testing.T) {
	env := setup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- grpcserver.New(env.http, config.Server{MaxBodyBytes: maxBody, RequestTimeout: config.Duration{Duration: time.Minute},
			ShutdownTimeout: config.Duration{Duration: 10 * time.Second}}, hclog.NewNullLogger()).Serve(c, l)
	}()
	client := dial(t, addr)
	if r, err := client.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive: %v %v", r, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after its context ended")
	}
	if l2, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("after shutdown, %s is still in use: %v", addr, err)
	} else {
		l2.Close()
	}
}

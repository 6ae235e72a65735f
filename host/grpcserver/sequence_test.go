package grpcserver_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
)

type seqEcho struct {
	Pre      int    `json:"pre"`
	PreFlags uint32 `json:"pre_flags"`
	Out      []int  `json:"out"`
}

func chunk(k int) []byte {
	b := make([]byte, 120)
	for i := range b {
		b[i] = byte(int8(-90 + (i*7+k*13)%30))
	}
	return b
}

func seqReq(id any, start, end bool, k int) *pb.ModelInferRequest {
	ps := map[string]*pb.InferParameter{
		"sequence_start": {ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: start}},
		"sequence_end":   {ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: end}},
	}
	switch v := id.(type) {
	case int64:
		ps["sequence_id"] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: v}}
	case string:
		ps["sequence_id"] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: v}}
	}
	return &pb.ModelInferRequest{ModelName: "seq", Id: fmt.Sprint(k), Parameters: ps,
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}},
		RawInputContents: [][]byte{bytesElem(chunk(k))}}
}

func echoOf(t testing.TB, raw []byte) seqEcho {
	t.Helper()
	var e seqEcho
	if len(raw) < 4 || json.Unmarshal(raw[4:], &e) != nil {
		t.Fatalf("result %q", raw)
	}
	return e
}

// TestSequenceStreams: Triton's sequence parameters on ModelStreamInfer (several streams at
// once, each a sequence), on unary ModelInfer and on KServe v2 HTTP reach one sequence's
// worker in order; a chunk of an unknown sequence is answered with an error_message and the
// stream goes on; HTTP answers it 400.
func TestSequenceStreams(t *testing.T) {
	env := setup(t)
	const n = 20
	var wg sync.WaitGroup
	results := make([][]seqEcho, 3)
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := env.client.ModelStreamInfer(ctx(t))
			if err != nil {
				t.Error(err)
				return
			}
			go func() {
				for k := range n {
					st.Send(seqReq(int64(100+s), k == 0, k == n-1, k))
				}
				st.CloseSend()
			}()
			for k := 0; ; k++ {
				r, err := st.Recv()
				if err == io.EOF {
					if k != n {
						t.Errorf("stream %d: %d answers, want %d", s, k, n)
					}
					return
				}
				if err != nil || r.GetErrorMessage() != "" {
					t.Errorf("stream %d answer %d: %v %q", s, k, err, r.GetErrorMessage())
					return
				}
				e := echoOf(t, r.GetInferResponse().GetRawOutputContents()[0])
				if e.Pre != k+1 || r.GetInferResponse().GetId() != fmt.Sprint(k) {
					t.Errorf("stream %d answer %d: %+v id %s", s, k, e, r.GetInferResponse().GetId())
				}
				results[s] = append(results[s], e)
			}
		}()
	}
	wg.Wait()
	for s := 1; s < 3; s++ {
		if fmt.Sprint(results[s]) != fmt.Sprint(results[0]) {
			t.Fatalf("stream %d differs from stream 0 on the same chunks", s)
		}
	}
	if sq := env.e.Status().Pipelines["seq"].Sequences; sq == nil || sq.Started < 3 || sq.Live != 0 {
		t.Fatalf("status of the seq pipeline's sequences: %+v", sq)
	}
	// An unknown sequence on a stream: an error message, and the stream goes on.
	st, err := env.client.ModelStreamInfer(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Send(seqReq(int64(999), false, false, 0))
	st.Send(seqReq("str-id", true, true, 0))
	st.CloseSend()
	r1, err1 := st.Recv()
	r2, err2 := st.Recv()
	if err1 != nil || !strings.Contains(r1.GetErrorMessage(), "not live") || err2 != nil || r2.GetErrorMessage() != "" {
		t.Fatalf("unknown then started sequence: %v %q, %v %q", err1, r1.GetErrorMessage(), err2, r2.GetErrorMessage())
	}
	// Unary ModelInfer and HTTP continue the same sequence (an integer id and its string).
	if _, err := env.client.ModelInfer(ctx(t), seqReq(int64(42), true, false, 0)); err != nil {
		t.Fatal(err)
	}
	body := func(k int, end bool) []byte {
		c := chunk(k)
		u := make([]int, len(c))
		for i, b := range c {
			u[i] = int(b)
		}
		j, _ := json.Marshal(map[string]any{"parameters": map[string]any{"sequence_id": 42, "sequence_end": end},
			"inputs": []map[string]any{{"name": "input", "datatype": "UINT8", "shape": []int{len(c)}, "data": u}}})
		return j
	}
	for k, want := range []int{200, 200, 400} {
		resp, err := http.Post(env.httpURL+"/v2/models/seq/infer", "application/json", bytes.NewReader(body(k+1, k == 1)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("HTTP chunk %d: %d %s, want %d", k+1, resp.StatusCode, b, want)
		}
		if want == 200 {
			var r struct {
				Outputs []struct {
					Data []string `json:"data"`
				} `json:"outputs"`
			}
			if err := json.Unmarshal(b, &r); err != nil || len(r.Outputs) != 1 {
				t.Fatalf("%s: %v", b, err)
			}
			raw := binary.LittleEndian.AppendUint32(nil, 0)
			if e := echoOf(t, append(raw, r.Outputs[0].Data[0]...)); e.Pre != k+2 {
				t.Fatalf("HTTP chunk %d: %+v, want the sequence's request %d", k+1, e, k+2)
			}
		} else if !strings.Contains(string(b), "unknown_sequence") && !strings.Contains(string(b), "not live") {
			t.Fatalf("after the end: %s", b)
		}
	}
}

package server_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/server"
)

// TestSequenceOf: Triton's sequence parameters as KServe v2 JSON decodes them (a uint64 id
// kept exact past 2^53, a string id, 0 = none) and as the gRPC front end passes them, and
// the bad ones refused as bad input naming the parameter.
func TestSequenceOf(t *testing.T) {
	decode := func(params string) (pipeline.Sequence, error) {
		req, err := server.DecodeInferRequest([]byte(`{"parameters":`+params+`,"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[1]}]}`), -1)
		if err != nil {
			return pipeline.Sequence{}, err
		}
		return server.SequenceOf(req.Parameters)
	}
	for _, c := range []struct {
		params string
		want   pipeline.Sequence
	}{
		{`{}`, pipeline.Sequence{}},
		{`{"sequence_id":0}`, pipeline.Sequence{}},
		{`{"sequence_id":42,"sequence_start":true}`, pipeline.Sequence{ID: "42", Start: true}},
		{`{"sequence_id":18446744073709551615,"sequence_end":true}`, pipeline.Sequence{ID: "18446744073709551615", End: true}},
		{`{"sequence_id":"cam-7","sequence_start":false}`, pipeline.Sequence{ID: "cam-7"}},
	} {
		got, err := decode(c.params)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.params, got, err, c.want)
		}
	}
	for _, c := range []struct{ params, msg string }{
		{`{"sequence_id":-1}`, "sequence_id"},
		{`{"sequence_id":1.5}`, "sequence_id"},
		{`{"sequence_id":true}`, "sequence_id"},
		{`{"sequence_id":"` + strings.Repeat("x", 300) + `"}`, "256"},
		{`{"sequence_id":1,"sequence_start":"yes"}`, "sequence_start"},
		{`{"sequence_start":true}`, "need a sequence_id"},
	} {
		_, err := decode(c.params)
		if class, status, _ := server.Classify(err); err == nil || class != server.ClassBadInput || status != 400 || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%.60s: %v (%s %d), want bad input about %s", c.params, err, class, status, c.msg)
		}
	}
	// gRPC's InferParameter values.
	if got, err := server.SequenceOf(map[string]any{"sequence_id": int64(7), "sequence_end": true}); err != nil || got != (pipeline.Sequence{ID: "7", End: true}) {
		t.Errorf("int64: %+v %v", got, err)
	}
	// The error table's two sequence classes.
	for _, c := range []struct {
		err   error
		class string
		http  int
	}{
		{&pipeline.SequenceError{Pipeline: "p", ID: "1"}, server.ClassUnknownSequence, 400},
		{&pipeline.SequenceLimitError{Pipeline: "p", Max: 1}, server.ClassTooManySequences, 429},
	} {
		if class, status, _ := server.Classify(c.err); class != c.class || status != c.http || !errors.Is(c.err, c.err) {
			t.Errorf("%v: %s %d", c.err, class, status)
		}
	}
}

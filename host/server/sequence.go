package server

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/edgehost/edgehost/host/pipeline"
)

// Triton's sequence request parameters (KServe v2 HTTP "parameters" and gRPC
// ModelInferRequest.parameters), as tritonclient sends them.
const (
	ParamSequenceID    = "sequence_id"    // an unsigned integer or a string; 0 or "" is none
	ParamSequenceStart = "sequence_start" // bool
	ParamSequenceEnd   = "sequence_end"   // bool
)

// SequenceOf reads the sequence parameters of a request from params (values as JSON
// decodes them, or as the gRPC front end converts InferParameter: bool, int64, string).
// An integer id and the string of its decimal digits name the same sequence. start or end
// without an id is bad input, as in Triton.
func SequenceOf(params map[string]any) (pipeline.Sequence, error) {
	var seq pipeline.Sequence
	if v, ok := params[ParamSequenceID]; ok && v != nil {
		switch id := v.(type) {
		case string:
			if len(id) > 256 {
				return seq, badf("parameter %s: a string id of %d bytes exceeds 256", ParamSequenceID, len(id))
			}
			seq.ID = id
		case int64:
			if id < 0 {
				return seq, badf("parameter %s: %d is negative", ParamSequenceID, id)
			}
			if id != 0 {
				seq.ID = strconv.FormatInt(id, 10)
			}
		case uint64:
			if id != 0 {
				seq.ID = strconv.FormatUint(id, 10)
			}
		case float64:
			if id < 0 || id != math.Trunc(id) || id > 1<<53 {
				return seq, badf("parameter %s: %v is not an unsigned integer (or a string)", ParamSequenceID, id)
			}
			if id != 0 {
				seq.ID = strconv.FormatUint(uint64(id), 10)
			}
		case json.Number:
			u, err := strconv.ParseUint(string(id), 10, 64)
			if err != nil {
				return seq, badf("parameter %s: %s is not an unsigned integer (or a string)", ParamSequenceID, id)
			}
			if u != 0 {
				seq.ID = string(id)
			}
		default:
			return seq, badf("parameter %s must be an unsigned integer or a string", ParamSequenceID)
		}
	}
	for _, f := range []struct {
		key string
		dst *bool
	}{{ParamSequenceStart, &seq.Start}, {ParamSequenceEnd, &seq.End}} {
		v, ok := params[f.key]
		if !ok || v == nil {
			continue
		}
		b, isBool := v.(bool)
		if !isBool {
			return seq, badf("parameter %s must be true or false", f.key)
		}
		*f.dst = b
	}
	if seq.ID == "" && (seq.Start || seq.End) {
		return seq, badf("parameters %s/%s need a %s", ParamSequenceStart, ParamSequenceEnd, ParamSequenceID)
	}
	return seq, nil
}

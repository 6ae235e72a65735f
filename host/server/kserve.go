package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/pipeline"
	"github.com/edgehost/edgehost/host/plugin"
	"github.com/edgehost/edgehost/host/tflite"
)

// KServe v2 / Open Inference Protocol. Each pipeline is a model with one BYTES input (the
// raw request, e.g. an image; UINT8 [N] is accepted too) and one BYTES output, "result" (the
// post plugin's result). Each model is also served bare: its own tensors in and out.

const headerLen = "Inference-Header-Content-Length"

// TensorMetadata is one input or output of a model's KServe v2 metadata.
type TensorMetadata struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

func (s *Server) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": "edgehost", "version": Version,
		"extensions": []string{"binary_tensor_data"}})
}

// Lookup finds a pipeline or bare model by KServe model name; an unknown name is an error
// of class not_found.
func (s *Server) Lookup(name string) (*engine.Pipeline, *engine.Model, error) {
	if p, ok := s.e.Pipeline(name); ok {
		return p, nil, nil
	}
	if m, ok := s.e.Model(name); ok {
		return nil, m, nil
	}
	if s.e.Starting(name) {
		return nil, nil, engine.StartingError(name)
	}
	return nil, nil, fmt.Errorf("%w: model %q is neither a pipeline nor a model", engine.ErrNotFound, name)
}

func tensorMetas(ts []tflite.TensorInfo) []TensorMetadata {
	out := make([]TensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = TensorMetadata{Name: t.Name, Datatype: t.Type.String(), Shape: t.Shape}
	}
	return out
}

// ModelMetadata is a KServe v2 model's metadata, for both front ends.
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// Metadata returns the KServe v2 metadata of a pipeline or bare model, or an error of class
// not_found.
func (s *Server) Metadata(name string) (*ModelMetadata, error) {
	p, m, err := s.Lookup(name)
	if err != nil {
		return nil, err
	}
	if p != nil {
		return &ModelMetadata{Name: p.Name, Versions: []string{p.Pre.Hash[:12] + "-" + p.Post.Hash[:12]}, Platform: "edgehost_pipeline",
			Inputs:  []TensorMetadata{{Name: "input", Datatype: "BYTES", Shape: []int{1}}},
			Outputs: []TensorMetadata{{Name: "result", Datatype: "BYTES", Shape: []int{1}}}}, nil
	}
	return &ModelMetadata{Name: m.Name, Versions: []string{"1"}, Platform: "tensorflow_lite",
		Inputs: tensorMetas(m.Model.Inputs), Outputs: tensorMetas(m.Model.Outputs)}, nil
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) {
	md, err := s.Metadata(r.PathValue("name"))
	if err != nil {
		s.fail(w, r, "", "", err)
		return
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, _, err := s.Lookup(name); err != nil {
		s.fail(w, r, "", "", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": true})
}

// InferRequest is a decoded KServe v2 inference request; InferTensor.Bytes gives each
// input's data.
type InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []InferTensor     `json:"inputs"`
	Outputs    []RequestedOutput `json:"outputs,omitempty"`
}

// RequestedOutput names an output the client wants and how (binary_data).
type RequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferTensor is one input tensor of an InferRequest.
type InferTensor struct {
	Name       string          `json:"name"`
	Shape      []int           `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	raw        []byte          // binary data, or the decoded JSON data, as little-endian bytes
}

type inferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version,omitempty"`
	ID           string         `json:"id,omitempty"`
	Outputs      []outputTensor `json:"outputs"`
}

type outputTensor struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int          `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
	binary     []byte
}

// DecodeInferRequest parses a KServe v2 request body: JSON, or JSON followed by binary
// tensor data when headerLength >= 0 (the binary tensor data extension).
func DecodeInferRequest(body []byte, headerLength int) (*InferRequest, error) {
	hdr := body
	var bin []byte
	if headerLength >= 0 {
		if headerLength > len(body) {
			return nil, badf("%s is %d but the body has only %d bytes", headerLen, headerLength, len(body))
		}
		hdr, bin = body[:headerLength], body[headerLength:]
	}
	// json.Unmarshal, not a Decoder: no second buffer of the body (memory stays proportional:
	// the body, one copy of each data array, the decoded tensor).
	var req InferRequest
	if err := json.Unmarshal(hdr, &req); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value") {
			return nil, badf("unexpected data after the inference request JSON")
		}
		return nil, badf("malformed inference request JSON: %v", err)
	}
	if _, ok := req.Parameters[ParamSequenceID].(float64); ok {
		// A numeric sequence_id is a uint64 (Triton's): read it again as its digits, which a
		// float64 holds exactly only up to 2^53.
		var p struct {
			Parameters struct {
				ID json.Number `json:"sequence_id"`
			} `json:"parameters"`
		}
		if json.Unmarshal(hdr, &p) == nil && p.Parameters.ID != "" {
			req.Parameters[ParamSequenceID] = p.Parameters.ID
		}
	}
	if len(req.Inputs) == 0 {
		return nil, badf("inference request has no inputs")
	}
	for i := range req.Inputs {
		in := &req.Inputs[i]
		if in.Name == "" {
			return nil, badf("input %d has no name", i)
		}
		n, err := elements(in.Shape)
		if err != nil {
			return nil, badf("input %q: %v", in.Name, err)
		}
		if size, ok := in.Parameters["binary_data_size"]; ok {
			sz, ok := size.(float64)
			if !ok || sz < 0 || sz != math.Trunc(sz) || sz > float64(len(bin)) {
				return nil, badf("input %q: binary_data_size %v does not fit the %d bytes of binary data left", in.Name, size, len(bin))
			}
			in.raw, bin = bin[:int(sz)], bin[int(sz):]
			if err := checkBinarySize(in, n); err != nil {
				return nil, err
			}
			continue
		}
		if len(in.Data) == 0 {
			return nil, badf("input %q has neither data nor binary_data_size", in.Name)
		}
		raw, err := decodeJSONData(in.Data, in.Datatype, n)
		if err != nil {
			return nil, badf("input %q: %v", in.Name, err)
		}
		in.raw = raw
	}
	if len(bin) != 0 {
		return nil, badf("%d bytes of binary data are not claimed by any input's binary_data_size", len(bin))
	}
	return &req, nil
}

func elements(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, errors.New("shape is missing")
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

var dtypes = map[string]abi.DType{"FP32": abi.Float32, "INT32": abi.Int32, "UINT8": abi.UInt8,
	"INT64": abi.Int64, "INT16": abi.Int16, "INT8": abi.Int8}

func checkBinarySize(in *InferTensor, n int) error {
	if in.Datatype == "BYTES" {
		return nil
	}
	dt, ok := dtypes[in.Datatype]
	if !ok {
		return badf("input %q: unsupported datatype %q", in.Name, in.Datatype)
	}
	if len(in.raw) != n*dt.Size() {
		return badf("input %q: %d bytes of binary data for shape %v of %s, want %d", in.Name, len(in.raw), in.Shape, in.Datatype, n*dt.Size())
	}
	return nil
}

// decodeJSONData flattens a (possibly nested) JSON array into little-endian bytes of dtype.
func decodeJSONData(data json.RawMessage, datatype string, n int) ([]byte, error) {
	if datatype != "BYTES" {
		dt, ok := dtypes[datatype]
		if !ok {
			return nil, fmt.Errorf("unsupported datatype %q (want FP32, INT32, INT64, INT16, INT8, UINT8 or BYTES)", datatype)
		}
		return decodeNumbers(data, dt, n)
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("data is not valid JSON: %v", err)
	}
	var flat []any
	var walk func(any) error
	walk = func(x any) error {
		if a, ok := x.([]any); ok {
			for _, e := range a {
				if err := walk(e); err != nil {
					return err
				}
			}
			return nil
		}
		if len(flat) >= n+1 {
			return nil
		}
		flat = append(flat, x)
		return nil
	}
	if err := walk(v); err != nil {
		return nil, err
	}
	if len(flat) != n {
		return nil, fmt.Errorf("data has %d elements, shape says %d", len(flat), n)
	}
	if datatype == "BYTES" {
		var out []byte
		for _, e := range flat {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("BYTES data must be strings, got %T", e)
			}
			out = binary.LittleEndian.AppendUint32(out, uint32(len(s)))
			out = append(out, s...)
		}
		return out, nil
	}
	dt, ok := dtypes[datatype]
	if !ok {
		return nil, fmt.Errorf("unsupported datatype %q (want FP32, INT32, INT64, INT16, INT8, UINT8 or BYTES)", datatype)
	}
	out := make([]byte, 0, n*dt.Size())
	for _, e := range flat {
		num, ok := e.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s data must be numbers, got %v", datatype, e)
		}
		f, err := num.Float64()
		if err != nil {
			return nil, fmt.Errorf("bad number %v", num)
		}
		var err2 error
		out, err2 = appendNumber(out, dt, f)
		if err2 != nil {
			return nil, err2
		}
	}
	return out, nil
}

// decodeNumbers decodes a (nested) JSON array of numbers straight into little-endian bytes
// of dt, with memory proportional to the result: no value per element is built (an 8M-element
// UINT8 array decoded through []any cost ~800 MB). It accepts exactly JSON's grammar for
// arrays and numbers and flattens nested arrays in order.
func decodeNumbers(data []byte, dt abi.DType, n int) ([]byte, error) {
	out := make([]byte, 0, min(n*dt.Size(), len(data)*dt.Size()))
	i, depth, count := 0, 0, 0
	ws := func() {
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			i++
		}
	}
	// expectValue: after '[' or ',' (a value, or ']' right after '['), else after a value.
	expectValue, afterOpen := true, false
	for ws(); i < len(data); ws() {
		c := data[i]
		switch {
		case c == '[' && expectValue:
			depth++
			i++
			afterOpen = true
			continue
		case c == ']' && depth > 0 && (!expectValue || afterOpen):
			depth--
			i++
			expectValue, afterOpen = false, false
		case c == ',' && depth > 0 && !expectValue:
			i++
			expectValue, afterOpen = true, false
			continue
		case expectValue && (c == '-' || (c >= '0' && c <= '9')):
			j := i
			for j < len(data) && (data[j] == '-' || data[j] == '+' || data[j] == '.' || data[j] == 'e' || data[j] == 'E' || (data[j] >= '0' && data[j] <= '9')) {
				j++
			}
			tok := data[i:j]
			if !jsonNumber(tok) {
				return nil, fmt.Errorf("bad number %.32q", tok)
			}
			if count++; count > n {
				return nil, fmt.Errorf("data has more than %d elements, shape says %d", n, n)
			}
			f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
			if err != nil {
				return nil, fmt.Errorf("bad number %.32q", tok)
			}
			if out, err = appendNumber(out, dt, f); err != nil {
				return nil, err
			}
			i = j
			expectValue, afterOpen = false, false
		case expectValue && (c == '"' || c == 't' || c == 'f' || c == 'n' || c == '{'):
			return nil, fmt.Errorf("%s data must be numbers", dt)
		default:
			return nil, fmt.Errorf("data is not valid JSON: unexpected %q at byte %d", c, i)
		}
		if depth == 0 {
			break
		}
	}
	if ws(); depth != 0 || i != len(data) || expectValue {
		return nil, errors.New("data is not valid JSON: not one complete array or number")
	}
	if count != n {
		return nil, fmt.Errorf("data has %d elements, shape says %d", count, n)
	}
	return out, nil
}

// jsonNumber reports whether b is a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) bool {
	i := 0
	digits := func() int {
		k := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - k
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func appendNumber(out []byte, dt abi.DType, f float64) ([]byte, error) {
	le := binary.LittleEndian
	integer := func(lo, hi float64) error {
		if f != math.Trunc(f) || f < lo || f > hi {
			return fmt.Errorf("%v is not a valid %s", f, dt)
		}
		return nil
	}
	switch dt {
	case abi.Float32:
		return le.AppendUint32(out, math.Float32bits(float32(f))), nil
	case abi.UInt8:
		if err := integer(0, 255); err != nil {
			return nil, err
		}
		return append(out, byte(f)), nil
	case abi.Int8:
		if err := integer(-128, 127); err != nil {
			return nil, err
		}
		return append(out, byte(int8(f))), nil
	case abi.Int16:
		if err := integer(math.MinInt16, math.MaxInt16); err != nil {
			return nil, err
		}
		return le.AppendUint16(out, uint16(int16(f))), nil
	case abi.Int32:
		if err := integer(math.MinInt32, math.MaxInt32); err != nil {
			return nil, err
		}
		return le.AppendUint32(out, uint32(int32(f))), nil
	case abi.Int64:
		if err := integer(-1<<53, 1<<53); err != nil {
			return nil, err
		}
		return le.AppendUint64(out, uint64(int64(f))), nil
	}
	return nil, fmt.Errorf("unsupported datatype %s", dt)
}

// Tensor is one named tensor whose data is its flattened, row-major elements in
// little-endian bytes (BYTES: each element a 4-byte little-endian length, then its bytes),
// the form both front ends decode requests into: JSON or binary tensor data over HTTP,
// raw_input_contents or typed contents over gRPC.
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int
	Data     []byte
}

func (r *InferRequest) tensors() []Tensor {
	ts := make([]Tensor, len(r.Inputs))
	for i, t := range r.Inputs {
		ts[i] = Tensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape, Data: t.raw}
	}
	return ts
}

// PipelineInput extracts the raw request bytes (an image, say) from a pipeline's inputs:
// exactly one, a single BYTES element or a UINT8 vector. Anything else is bad input. The
// result aliases the tensor's data.
func PipelineInput(ins []Tensor) ([]byte, error) {
	if len(ins) != 1 {
		return nil, badf("a pipeline takes exactly one input (the raw request bytes), got %d", len(ins))
	}
	in := ins[0]
	switch in.Datatype {
	case "BYTES":
		n, err := elements(in.Shape)
		if err != nil {
			return nil, badf("input %q: %v", in.Name, err)
		}
		if n != 1 {
			return nil, badf("input %q: a pipeline takes one BYTES element, shape %v has %d", in.Name, in.Shape, n)
		}
		if len(in.Data) < 4 {
			return nil, badf("input %q: BYTES element is missing its 4-byte length prefix", in.Name)
		}
		l := binary.LittleEndian.Uint32(in.Data)
		if int64(l) != int64(len(in.Data))-4 {
			return nil, badf("input %q: BYTES element length prefix %d does not match the %d bytes given", in.Name, l, len(in.Data)-4)
		}
		return in.Data[4:], nil
	case "UINT8":
		n, err := elements(in.Shape)
		if err != nil {
			return nil, badf("input %q: %v", in.Name, err)
		}
		if n != len(in.Data) {
			return nil, badf("input %q: %d bytes of data for UINT8 shape %v, want %d", in.Name, len(in.Data), in.Shape, n)
		}
		return in.Data, nil
	}
	return nil, badf("input %q: a pipeline takes BYTES or UINT8 input, got %s", in.Name, in.Datatype)
}

func wantsBinary(req *InferRequest, name string) bool {
	for _, o := range req.Outputs {
		if o.Name == name {
			if b, ok := o.Parameters["binary_data"].(bool); ok {
				return b
			}
		}
	}
	b, _ := req.Parameters["binary_data_output"].(bool)
	return b
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, m, err := s.Lookup(name)
	if err != nil {
		s.fail(w, r, "", "", err)
		return
	}
	err = s.inferModel(w, r, name, p, m)
	if err != nil {
		s.fail(w, r, name, "kserve", err)
		return
	}
	s.Metrics.Requests.WithLabelValues(name, "kserve", "200").Inc()
}

func (s *Server) inferModel(w http.ResponseWriter, r *http.Request, name string, p *engine.Pipeline, m *engine.Model) error {
	buf, release, err := s.body(w, r)
	defer release()
	if err != nil {
		var mb *http.MaxBytesError
		var br *badRequest
		if errors.As(err, &mb) || errors.As(err, &br) {
			return err
		}
		return badf("reading request body: %v", err)
	}
	hl := -1
	if h := r.Header.Get(headerLen); h != "" {
		if hl, err = strconv.Atoi(h); err != nil || hl < 0 {
			return badf("invalid %s header %q", headerLen, h)
		}
	} else if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return badf("Content-Type %q: send application/json, or set %s for the binary tensor data extension", ct, headerLen)
	}
	req, err := DecodeInferRequest(buf, hl)
	if err != nil {
		return err
	}
	resp := inferResponse{ModelName: name, ID: req.ID}
	seq, err := SequenceOf(req.Parameters)
	if err != nil {
		return err
	}
	if seq.ID != "" && p == nil {
		return badf("model %s is a bare model: sequences (%s) are served by pipelines", name, ParamSequenceID)
	}
	if p != nil {
		input, err := PipelineInput(req.tensors())
		if err != nil {
			return err
		}
		err = s.run(r.Context(), p, pipeline.Request{Body: bytes.NewReader(input), Size: len(input), Sequence: seq}, func(res []byte, ct string) error {
			out := outputTensor{Name: "result", Datatype: "BYTES", Shape: []int{1}}
			if wantsBinary(req, "result") {
				out.binary = binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(res)), uint32(len(res)))
				out.binary = append(out.binary, res...)
			} else {
				out.Data = []string{string(res)}
			}
			resp.Outputs = []outputTensor{out}
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		if resp.Outputs, err = s.runModel(r.Context(), m, req); err != nil {
			return err
		}
	}
	return writeInferResponse(w, &resp)
}

// runModel runs a bare model for an HTTP request and encodes its outputs as asked.
func (s *Server) runModel(ctx context.Context, m *engine.Model, req *InferRequest) ([]outputTensor, error) {
	res, m, err := s.runBare(ctx, m, req.tensors())
	if err != nil {
		return nil, err
	}
	outs := make([]outputTensor, len(res))
	for i, t := range res {
		o := outputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		if wantsBinary(req, t.Name) {
			o.binary = t.Data
		} else {
			o.Data = typedData(m.Model.Outputs[i].Type, t.Data)
		}
		outs[i] = o
	}
	return outs, nil
}

// RunModel runs a bare model: inputs are matched by name and checked for datatype, shape
// and data size (any mismatch is bad input), copied into a pooled interpreter (waiting for
// one until ctx or server.request_timeout ends), and the outputs come back in the model's
// order, their data copied out of the interpreter. A model replaced (hot reload) between
// the look-up and the run serves the request in its new version.
func (s *Server) RunModel(ctx context.Context, m *engine.Model, ins []Tensor) ([]Tensor, error) {
	res, _, err := s.runBare(ctx, m, ins)
	return res, err
}

// runBare is RunModel, also returning the version of the model that ran.
func (s *Server) runBare(ctx context.Context, m *engine.Model, ins []Tensor) ([]Tensor, *engine.Model, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout.Duration)
	defer cancel()
	for {
		res, err := s.runBareOnce(ctx, m, ins)
		if !errors.Is(err, tflite.ErrPoolClosed) {
			return res, m, err
		}
		// The model was replaced or removed after the request looked it up: its pool
		// closed. Run on the version now loaded under that name, checked afresh.
		next, ok := s.e.Model(m.Name)
		if !ok || next == m {
			return nil, m, fmt.Errorf("%w: model %q was removed", engine.ErrNotFound, m.Name)
		}
		m = next
	}
}

func (s *Server) runBareOnce(ctx context.Context, m *engine.Model, ins []Tensor) ([]Tensor, error) {
	model := m.Model
	if len(ins) != len(model.Inputs) {
		return nil, badf("model %s takes %d inputs, got %d", m.Name, len(model.Inputs), len(ins))
	}
	ordered := make([]*Tensor, len(model.Inputs))
	for i := range ins {
		in := &ins[i]
		idx := -1
		for k, t := range model.Inputs {
			if t.Name == in.Name {
				idx = k
			}
		}
		if idx < 0 {
			names := make([]string, len(model.Inputs))
			for k, t := range model.Inputs {
				names[k] = t.Name
			}
			return nil, badf("model %s has no input %q (inputs: %s)", m.Name, in.Name, strings.Join(names, ", "))
		}
		t := model.Inputs[idx]
		if in.Datatype != t.Type.String() {
			return nil, badf("input %q: datatype %s, model wants %s", in.Name, in.Datatype, t.Type)
		}
		if fmt.Sprint(in.Shape) != fmt.Sprint(t.Shape) {
			return nil, badf("input %q: shape %v, model wants %v", in.Name, in.Shape, t.Shape)
		}
		n, err := elements(t.Shape)
		if err != nil {
			return nil, badf("input %q: %v", in.Name, err)
		}
		if want := n * t.Type.Size(); len(in.Data) != want {
			return nil, badf("input %q: %d bytes of data for shape %v of %s, want %d", in.Name, len(in.Data), in.Shape, in.Datatype, want)
		}
		if ordered[idx] != nil {
			return nil, badf("input %q is given twice", in.Name)
		}
		ordered[idx] = in
	}
	// Counted like a pipeline request; run alone, it takes the model's idle interpreter
	// (tflite.Model.IdleInterpreter), whose threads use the cores no one else does.
	tflite.Begin()
	defer tflite.End()
	it := m.Model.IdleInterpreter()
	if it != nil {
		defer m.Model.PutIdle(it)
	} else {
		var err error
		if it, err = m.Pool.Get(ctx); err != nil {
			return nil, err
		}
		defer m.Pool.Put(it)
	}
	for i, in := range ordered {
		copy(it.Input(i), in.Data)
	}
	if err := it.Invoke(); err != nil {
		return nil, err
	}
	outs := make([]Tensor, len(model.Outputs))
	for i, t := range model.Outputs {
		outs[i] = Tensor{Name: t.Name, Datatype: t.Type.String(), Shape: t.Shape, Data: append([]byte(nil), it.Output(i)...)}
	}
	return outs, nil
}

func typedData(dt abi.DType, b []byte) any {
	le := binary.LittleEndian
	switch dt {
	case abi.Float32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out
	case abi.UInt8:
		out := make([]int, len(b))
		for i, v := range b {
			out[i] = int(v)
		}
		return out
	case abi.Int8:
		out := make([]int, len(b))
		for i, v := range b {
			out[i] = int(int8(v))
		}
		return out
	case abi.Int32:
		out := make([]int32, len(b)/4)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out
	case abi.Int64:
		out := make([]int64, len(b)/8)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out
	case abi.Int16:
		out := make([]int16, len(b)/2)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out
	}
	return nil
}

func writeInferResponse(w http.ResponseWriter, resp *inferResponse) error {
	var bin []byte
	for i := range resp.Outputs {
		o := &resp.Outputs[i]
		if o.binary != nil {
			if o.Parameters == nil {
				o.Parameters = map[string]any{}
			}
			o.Parameters["binary_data_size"] = len(o.binary)
			bin = append(bin, o.binary...)
		}
	}
	hdr, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	if bin == nil {
		w.Header().Set("Content-Type", "application/json")
		_, err = w.Write(hdr)
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(headerLen, strconv.Itoa(len(hdr)))
	w.Header().Set("Content-Length", strconv.Itoa(len(hdr)+len(bin)))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err = w.Write(bin)
	return err
}

// trapPlugin names the plugin when err is a trap.
func trapPlugin(err error) string {
	var t *plugin.TrapError
	if errors.As(err, &t) {
		return t.Plugin
	}
	var to *plugin.TimeoutError
	if errors.As(err, &to) {
		return to.Plugin
	}
	return ""
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// Bytes returns the tensor's data as little-endian bytes (BYTES elements keep their 4-byte
// length prefixes), whether it came as JSON or as binary tensor data.
func (t *InferTensor) Bytes() []byte { return t.raw }

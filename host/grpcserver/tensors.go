package grpcserver

import (
	"encoding/binary"
	"math"

	"github.com/edgehost/edgehost/abi"
	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"github.com/edgehost/edgehost/host/server"
)

// elemSize is the byte size of one element of each fixed-size KServe datatype edgehost
// serves (the TFLite types of abi.DType); BYTES elements carry their own lengths.
var elemSize = func() map[string]int {
	m := map[string]int{}
	for _, d := range []abi.DType{abi.Float32, abi.Int32, abi.UInt8, abi.Int64, abi.Int16, abi.Int8, abi.Float16} {
		m[d.String()] = d.Size()
	}
	return m
}()

// maxElements bounds a shape's element count, as the HTTP decoder does.
const maxElements = math.MaxInt32

// shape converts a protobuf shape, rejecting negative dimensions and element counts past
// maxElements; it returns the shape and its element count.
func shape(name string, dims []int64) ([]int, int, error) {
	if len(dims) == 0 {
		return nil, 0, server.BadInput("input %q: shape is missing", name)
	}
	out := make([]int, len(dims))
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return nil, 0, server.BadInput("input %q: shape %v has a negative dimension", name, dims)
		}
		if d > 0 && n > maxElements/d {
			return nil, 0, server.BadInput("input %q: shape %v is too large", name, dims)
		}
		n *= d
		out[i] = int(d)
	}
	return out, int(n), nil
}

// decodeInputs turns a request's inputs into tensors: from raw_input_contents (one entry
// per input, what Triton's clients send) or from each input's typed contents. Sizes are
// checked against the shapes here; names, datatypes and shapes against the model later.
func decodeInputs(req *pb.ModelInferRequest) ([]server.Tensor, error) {
	ins, raw := req.GetInputs(), req.GetRawInputContents()
	if len(ins) == 0 {
		return nil, server.BadInput("inference request has no inputs")
	}
	if len(raw) != 0 && len(raw) != len(ins) {
		return nil, server.BadInput("raw_input_contents has %d entries for %d inputs: give one per input, in order", len(raw), len(ins))
	}
	out := make([]server.Tensor, len(ins))
	for i, in := range ins {
		if in.GetName() == "" {
			return nil, server.BadInput("input %d has no name", i)
		}
		shp, n, err := shape(in.GetName(), in.GetShape())
		if err != nil {
			return nil, err
		}
		t := server.Tensor{Name: in.GetName(), Datatype: in.GetDatatype(), Shape: shp}
		if len(raw) != 0 {
			if in.GetContents() != nil {
				return nil, server.BadInput("input %q: contents and raw_input_contents are both given: use one", t.Name)
			}
			t.Data = raw[i]
			if err := checkRaw(&t, n); err != nil {
				return nil, err
			}
		} else {
			if in.GetContents() == nil {
				return nil, server.BadInput("input %q has neither contents nor raw_input_contents", t.Name)
			}
			if t.Data, err = fromContents(&t, in.GetContents(), n); err != nil {
				return nil, err
			}
		}
		out[i] = t
	}
	return out, nil
}

// checkRaw checks that raw data holds exactly n elements of the tensor's datatype.
func checkRaw(t *server.Tensor, n int) error {
	if t.Datatype == "BYTES" {
		b, count := t.Data, 0
		for len(b) > 0 {
			if len(b) < 4 {
				return server.BadInput("input %q: BYTES element %d is cut short in its 4-byte length prefix", t.Name, count)
			}
			l := binary.LittleEndian.Uint32(b)
			if uint64(l) > uint64(len(b)-4) {
				return server.BadInput("input %q: BYTES element %d says %d bytes, %d are left", t.Name, count, l, len(b)-4)
			}
			b = b[4+int(l):]
			count++
		}
		if count != n {
			return server.BadInput("input %q: %d BYTES elements for shape %v, want %d", t.Name, count, t.Shape, n)
		}
		return nil
	}
	size, ok := elemSize[t.Datatype]
	if !ok {
		return unsupported(t)
	}
	if len(t.Data) != n*size {
		return server.BadInput("input %q: %d bytes of raw_input_contents for shape %v of %s, want %d", t.Name, len(t.Data), t.Shape, t.Datatype, n*size)
	}
	return nil
}

func unsupported(t *server.Tensor) error {
	return server.BadInput("input %q: unsupported datatype %q (want FP32, INT32, INT64, INT16, INT8, UINT8, FP16 (raw only) or BYTES)", t.Name, t.Datatype)
}

// fromContents encodes typed contents as little-endian bytes, checking the element count
// and each value's range for its datatype.
func fromContents(t *server.Tensor, c *pb.InferTensorContents, n int) ([]byte, error) {
	count := func(got int) error {
		if got != n {
			return server.BadInput("input %q: contents hold %d %s elements, shape %v says %d", t.Name, got, t.Datatype, t.Shape, n)
		}
		return nil
	}
	le := binary.LittleEndian
	var out []byte
	switch t.Datatype {
	case "BYTES":
		if err := count(len(c.GetBytesContents())); err != nil {
			return nil, err
		}
		for _, e := range c.GetBytesContents() {
			out = le.AppendUint32(out, uint32(len(e)))
			out = append(out, e...)
		}
	case "FP32":
		if err := count(len(c.GetFp32Contents())); err != nil {
			return nil, err
		}
		out = make([]byte, 0, 4*n)
		for _, v := range c.GetFp32Contents() {
			out = le.AppendUint32(out, math.Float32bits(v))
		}
	case "INT64":
		if err := count(len(c.GetInt64Contents())); err != nil {
			return nil, err
		}
		out = make([]byte, 0, 8*n)
		for _, v := range c.GetInt64Contents() {
			out = le.AppendUint64(out, uint64(v))
		}
	case "UINT8":
		if err := count(len(c.GetUintContents())); err != nil {
			return nil, err
		}
		out = make([]byte, 0, n)
		for k, v := range c.GetUintContents() {
			if v > math.MaxUint8 {
				return nil, server.BadInput("input %q: element %d is %d, not a valid UINT8", t.Name, k, v)
			}
			out = append(out, byte(v))
		}
	case "INT8", "INT16", "INT32":
		if err := count(len(c.GetIntContents())); err != nil {
			return nil, err
		}
		size := elemSize[t.Datatype]
		lo, hi := int32(math.MinInt32), int32(math.MaxInt32)
		if size == 1 {
			lo, hi = math.MinInt8, math.MaxInt8
		} else if size == 2 {
			lo, hi = math.MinInt16, math.MaxInt16
		}
		out = make([]byte, 0, size*n)
		for k, v := range c.GetIntContents() {
			if v < lo || v > hi {
				return nil, server.BadInput("input %q: element %d is %d, not a valid %s", t.Name, k, v, t.Datatype)
			}
			switch size {
			case 1:
				out = append(out, byte(int8(v)))
			case 2:
				out = le.AppendUint16(out, uint16(int16(v)))
			default:
				out = le.AppendUint32(out, uint32(v))
			}
		}
	default:
		if _, ok := elemSize[t.Datatype]; ok {
			return nil, server.BadInput("input %q: %s has no typed contents field: send it in raw_input_contents", t.Name, t.Datatype)
		}
		return nil, unsupported(t)
	}
	return out, nil
}

// shape64 converts a shape for a response.
func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

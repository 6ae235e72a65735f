package tflite

/*
#include <stdlib.h>
#include "graph.h"
*/
import "C"

import (
	"fmt"
	"strconv"
	"unsafe"
)

// Graph is what the TFLite runtime made of a model: every operator, whether a delegate
// kernel took it, and every tensor with its quantisation. It is read from a throwaway
// interpreter by a probe delegate that TFLite prepares after the others, so it reports what
// the runtime did, not what a parser of the file would guess.
type Graph struct {
	Ops     []Op
	Tensors []GraphTensor
	// Delegate is the delegate the graph was built with ("xnnpack", or "" for TFLite's own
	// kernels); Partitions is how many delegate kernels it made (each replaces a run of ops).
	Delegate   string
	Partitions int
}

// Op is one operator of the graph.
type Op struct {
	Name      string // builtin operator name (CONV_2D) or a custom op's name
	Version   int
	Delegated bool // taken by the delegate; false: runs on TFLite's built-in kernels
}

// GraphTensor is one tensor of the graph.
type GraphTensor struct {
	Index    int
	Name     string
	Type     string // TFLite's type name: float32, uint8, int8, int32, …
	Shape    []int  // nil when the tensor has no shape
	Bytes    int64
	Constant bool          // read-only data of the model (weights, biases)
	Quant    *Quantization // nil when the tensor is not quantised
}

// Quantization is a tensor's affine quantisation: real = scale × (q − zero point), per
// tensor (one scale) or per axis (one scale per slice along Axis).
type Quantization struct {
	Scales     []float32
	ZeroPoints []int32
	Axis       int // the quantised dimension; meaningful when PerAxis
}

// PerAxis reports whether the tensor has one scale per slice of Axis.
func (q *Quantization) PerAxis() bool { return len(q.Scales) > 1 }

// OpCount is how many operators of one kind a graph has and how many of them the delegate took.
type OpCount struct {
	Name             string
	Count, Delegated int
}

// OpCounts counts the graph's operators by name, in order of first appearance.
func (g *Graph) OpCounts() []OpCount {
	var out []OpCount
	at := map[string]int{}
	for _, op := range g.Ops {
		i, ok := at[op.Name]
		if !ok {
			i = len(out)
			at[op.Name] = i
			out = append(out, OpCount{Name: op.Name})
		}
		out[i].Count++
		if op.Delegated {
			out[i].Delegated++
		}
	}
	return out
}

// DelegatedOps is how many operators the delegate took.
func (g *Graph) DelegatedOps() int {
	n := 0
	for _, op := range g.Ops {
		if op.Delegated {
			n++
		}
	}
	return n
}

// Graph probes the model's graph with a throwaway interpreter: with XNNPACK applied first
// when xnnpack is set (and the library has it), otherwise on TFLite's own kernels. The
// model's interpreters are not touched.
func (m *Model) Graph(xnnpack bool) (*Graph, error) {
	m.retain()
	defer m.release()
	errbuf := (*C.eh_errbuf)(C.calloc(1, C.sizeof_eh_errbuf))
	defer C.free(unsafe.Pointer(errbuf))
	var g C.eh_graph
	x := C.int(0)
	if xnnpack && C.eh_has_xnnpack() != 0 {
		x = 2 // as the model's interpreters try it: quantized kernels forced on, then plain
	}
	rc := C.eh_graph_probe(*(**C.TfLiteModel)(unsafe.Pointer(m.m)), x, 1, &g, errbuf)
	if rc != 0 && x == 2 {
		errbuf.len = 0
		x = 1
		rc = C.eh_graph_probe(*(**C.TfLiteModel)(unsafe.Pointer(m.m)), x, 1, &g, errbuf)
	}
	if rc != 0 {
		msg := "no detail reported by TFLite"
		if errbuf.len > 0 {
			msg = C.GoStringN(&errbuf.msg[0], C.int(errbuf.len))
		}
		return nil, fmt.Errorf("%w: %s: cannot read the graph: %s", ErrBadModel, m.Path, msg)
	}
	defer C.eh_graph_free(&g)
	out := &Graph{Partitions: int(g.delegate_kernels)}
	if x != 0 {
		out.Delegate = "xnnpack"
	}
	for _, op := range unsafe.Slice(g.ops, int(g.nops)) {
		name := C.GoString(&op.custom[0])
		if name == "" || int(op.builtin) != builtinCustom {
			name = BuiltinName(int(op.builtin))
		}
		out.Ops = append(out.Ops, Op{Name: name, Version: int(op.version), Delegated: op.delegated != 0})
	}
	for i, t := range unsafe.Slice(g.tensors, int(g.ntensors)) {
		gt := GraphTensor{Index: i, Name: C.GoString(&t.name[0]), Type: typeName(int(t._type)), Bytes: int64(t.bytes), Constant: t.constant != 0}
		if t.ndims >= 0 {
			gt.Shape = make([]int, 0, int(t.ndims))
			for k := 0; k < int(t.ndims) && k < C.EH_GRAPH_DIMS; k++ {
				gt.Shape = append(gt.Shape, int(t.dims[k]))
			}
		}
		if t.nscale > 0 {
			gt.Quant = &Quantization{
				Scales:     append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(t.scales)), int(t.nscale))...),
				ZeroPoints: append([]int32(nil), unsafe.Slice((*int32)(unsafe.Pointer(t.zero_points)), int(t.nscale))...),
				Axis:       int(t.qdim),
			}
		}
		out.Tensors = append(out.Tensors, gt)
	}
	return out, nil
}

// typeName names a TfLiteType.
func typeName(t int) string {
	names := []string{"notype", "float32", "int32", "uint8", "int64", "string", "bool", "int16", "complex64",
		"int8", "float16", "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4"}
	if t >= 0 && t < len(names) {
		return names[t]
	}
	return "type" + strconv.Itoa(t)
}

const builtinCustom = 32

// BuiltinName names a TfLiteBuiltinOperator (schema.fbs's BuiltinOperator), or "BUILTIN_n"
// for a code this table does not know.
func BuiltinName(code int) string {
	if code >= 0 && code < len(builtinNames) && builtinNames[code] != "" {
		return builtinNames[code]
	}
	return "BUILTIN_" + strconv.Itoa(code)
}

// builtinNames is TFLite's BuiltinOperator enumeration, by value.
var builtinNames = []string{
	"ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
	"EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
	"LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
	"RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
	"CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
	"UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB",
	"DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP",
	"TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM",
	"ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE",
	"SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT",
	"RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT",
	"LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL",
	"FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS",
	"SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU",
	"REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE",
	"NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM",
	"BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO", "RFFT2D", "CONV_3D",
	"IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
	"REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "BROADCAST_ARGS",
	"RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL", "GELU", "DYNAMIC_UPDATE_SLICE",
	"RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_SUM", "ATAN2",
	"UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR", "RIGHT_SHIFT",
}

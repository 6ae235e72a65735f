/* graph.h: what the runtime made of a model's graph, read by a probe delegate that TFLite
 * prepares after every other delegate: each operator (and which delegate kernel took it) and
 * each tensor with its quantisation. Uses only TfLiteContext and TfLiteDelegate, which both
 * supported libraries (2.9 and 2.17) lay out the same way. */
#ifndef EDGEHOST_GRAPH_H_
#define EDGEHOST_GRAPH_H_

#include <stdint.h>
#include "shim.h"

#define EH_GRAPH_NAME 128
#define EH_GRAPH_DIMS 8

typedef struct eh_graph_op {
	int32_t builtin;          /* TfLiteBuiltinOperator */
	int32_t version;
	char custom[EH_GRAPH_NAME]; /* custom op name, "" for builtins */
	int32_t delegated;        /* 1: replaced by a delegate kernel (XNNPACK when it is the only one) */
} eh_graph_op;

typedef struct eh_graph_tensor {
	char name[EH_GRAPH_NAME];
	int32_t type;
	int32_t ndims; /* -1: no dims */
	int32_t dims[EH_GRAPH_DIMS];
	int64_t bytes;
	int32_t constant; /* read-only weights (kTfLiteMmapRo) */
	int32_t nscale;   /* 0: not quantised; 1: per-tensor; >1: per-axis */
	float* scales;
	int32_t* zero_points;
	int32_t qdim;
} eh_graph_tensor;

typedef struct eh_graph {
	int32_t nops;
	eh_graph_op* ops;
	int32_t ntensors;
	eh_graph_tensor* tensors;
	int32_t delegate_kernels; /* partitions the earlier delegates made */
	int32_t prepared;         /* the probe ran */
} eh_graph;

/* eh_graph_probe builds a throwaway interpreter of model (XNNPACK with threads threads first
 * when xnnpack is 1, with its quantized kernels forced on when 2), reads its graph into out, and frees the interpreter. 0 on success;
 * otherwise -1 with TFLite's messages in err. Free out with eh_graph_free. */
int eh_graph_probe(TfLiteModel* model, int xnnpack, int threads, eh_graph* out, eh_errbuf* err);
void eh_graph_free(eh_graph* g);

#endif

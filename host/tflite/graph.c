/* graph.c: see graph.h. */
#include <stdlib.h>
#include <string.h>

#include "graph.h"

#define EH_BUILTIN_DELEGATE 51 /* kTfLiteBuiltinDelegate */

static void copy_name(char* dst, const char* src) {
	if (src == NULL) {
		dst[0] = 0;
		return;
	}
	strncpy(dst, src, EH_GRAPH_NAME - 1);
	dst[EH_GRAPH_NAME - 1] = 0;
}

static int add_op(eh_graph* g, int* cap, const TfLiteRegistration* reg, int delegated) {
	if (g->nops == *cap) {
		int n = *cap ? *cap * 2 : 64;
		eh_graph_op* ops = realloc(g->ops, (size_t)n * sizeof *ops);
		if (ops == NULL) return -1;
		g->ops = ops;
		*cap = n;
	}
	eh_graph_op* op = &g->ops[g->nops++];
	memset(op, 0, sizeof *op);
	op->builtin = reg->builtin_code;
	op->version = reg->version;
	copy_name(op->custom, reg->custom_name);
	op->delegated = delegated;
	return 0;
}

static TfLiteTensor* tensor_at(TfLiteContext* ctx, int i) {
	if (ctx->GetTensor != NULL) return ctx->GetTensor(ctx, i);
	return &ctx->tensors[i];
}

static TfLiteStatus probe_prepare(TfLiteContext* ctx, TfLiteDelegate* d) {
	eh_graph* g = (eh_graph*)d->data_;
	/* TFLite prepares a delegate once per subgraph, the primary first. A model with several
	 * subgraphs (okay_nabu: CALL_ONCE initialises its resource variables in a second one) would
	 * otherwise append to ops past the capacity this call counts from zero (a heap overrun:
	 * free(): invalid pointer in `edgehost inspect`) and replace tensors. Keep the primary. */
	if (g->prepared) return kTfLiteOk;
	TfLiteIntArray* plan = NULL;
	if (ctx->GetExecutionPlan(ctx, &plan) != kTfLiteOk) return kTfLiteError;
	int cap = 0;
	for (int i = 0; i < plan->size; i++) {
		TfLiteNode* node = NULL;
		TfLiteRegistration* reg = NULL;
		if (ctx->GetNodeAndRegistration(ctx, plan->data[i], &node, &reg) != kTfLiteOk) return kTfLiteError;
		if (reg->builtin_code == EH_BUILTIN_DELEGATE && node->builtin_data != NULL) {
			/* A delegate kernel: its parameters name the original nodes it replaced. */
			const TfLiteDelegateParams* p = (const TfLiteDelegateParams*)node->builtin_data;
			g->delegate_kernels++;
			for (int j = 0; p->nodes_to_replace != NULL && j < p->nodes_to_replace->size; j++) {
				TfLiteNode* inner = NULL;
				TfLiteRegistration* ireg = NULL;
				if (ctx->GetNodeAndRegistration(ctx, p->nodes_to_replace->data[j], &inner, &ireg) != kTfLiteOk) return kTfLiteError;
				if (add_op(g, &cap, ireg, 1) != 0) return kTfLiteError;
			}
			continue;
		}
		if (add_op(g, &cap, reg, 0) != 0) return kTfLiteError;
	}
	g->ntensors = (int32_t)ctx->tensors_size;
	g->tensors = calloc(ctx->tensors_size ? ctx->tensors_size : 1, sizeof *g->tensors);
	if (g->tensors == NULL) return kTfLiteError;
	for (size_t i = 0; i < ctx->tensors_size; i++) {
		TfLiteTensor* t = tensor_at(ctx, (int)i);
		eh_graph_tensor* o = &g->tensors[i];
		if (t == NULL) continue;
		copy_name(o->name, t->name);
		o->type = t->type;
		o->bytes = (int64_t)t->bytes;
		o->constant = t->allocation_type == kTfLiteMmapRo;
		o->ndims = -1;
		if (t->dims != NULL) {
			o->ndims = t->dims->size;
			for (int k = 0; k < t->dims->size && k < EH_GRAPH_DIMS; k++) o->dims[k] = t->dims->data[k];
		}
		if (t->quantization.type == kTfLiteAffineQuantization && t->quantization.params != NULL) {
			const TfLiteAffineQuantization* q = (const TfLiteAffineQuantization*)t->quantization.params;
			int n = q->scale != NULL ? q->scale->size : 0;
			if (n > 0) {
				o->scales = malloc((size_t)n * sizeof(float));
				o->zero_points = calloc((size_t)n, sizeof(int32_t));
				if (o->scales == NULL || o->zero_points == NULL) return kTfLiteError;
				for (int k = 0; k < n; k++) {
					o->scales[k] = q->scale->data[k];
					if (q->zero_point != NULL && k < q->zero_point->size) o->zero_points[k] = q->zero_point->data[k];
				}
				o->nscale = n;
				o->qdim = q->quantized_dimension;
			}
		} else if (t->params.scale != 0) {
			o->scales = malloc(sizeof(float));
			o->zero_points = malloc(sizeof(int32_t));
			if (o->scales == NULL || o->zero_points == NULL) return kTfLiteError;
			o->scales[0] = t->params.scale;
			o->zero_points[0] = t->params.zero_point;
			o->nscale = 1;
		}
	}
	g->prepared = 1;
	return kTfLiteOk; /* claims nothing */
}

int eh_graph_probe(TfLiteModel* model, int xnnpack, int threads, eh_graph* out, eh_errbuf* err) {
	memset(out, 0, sizeof *out);
	TfLiteInterpreterOptions* o = TfLiteInterpreterOptionsCreate();
	if (o == NULL) return -1;
	TfLiteInterpreterOptionsSetNumThreads(o, threads > 0 ? threads : 1);
	eh_set_reporter(o, err);
	TfLiteDelegate* xnn = NULL;
	if (xnnpack) {
		xnn = eh_xnnpack_create(threads > 0 ? threads : 1, xnnpack == 2);
		if (xnn != NULL) TfLiteInterpreterOptionsAddDelegate(o, xnn);
	}
	/* Newer TFLite versions append fields to TfLiteDelegate; pad and zero them. */
	TfLiteDelegate* probe = calloc(1, sizeof(TfLiteDelegate) + 256);
	if (probe == NULL) {
		TfLiteInterpreterOptionsDelete(o);
		eh_xnnpack_delete(xnn);
		return -1;
	}
	probe->data_ = out;
	probe->Prepare = probe_prepare;
	probe->flags = kTfLiteDelegateFlagsNone;
	TfLiteInterpreterOptionsAddDelegate(o, probe);
	TfLiteInterpreter* it = TfLiteInterpreterCreate(model, o);
	int rc = 0;
	if (it == NULL) {
		rc = -1;
	} else {
		if (!out->prepared && TfLiteInterpreterAllocateTensors(it) != kTfLiteOk) rc = -1;
		if (!out->prepared) rc = -1;
		TfLiteInterpreterDelete(it);
	}
	TfLiteInterpreterOptionsDelete(o);
	eh_xnnpack_delete(xnn);
	free(probe);
	if (rc != 0) eh_graph_free(out);
	return rc;
}

void eh_graph_free(eh_graph* g) {
	for (int32_t i = 0; g->tensors != NULL && i < g->ntensors; i++) {
		free(g->tensors[i].scales);
		free(g->tensors[i].zero_points);
	}
	free(g->tensors);
	free(g->ops);
	memset(g, 0, sizeof *g);
}

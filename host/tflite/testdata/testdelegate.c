/* testdelegate.c: a minimal vendor delegate for edgehost's tests. It implements TFLite's
 * external-delegate plugin interface exactly as vendor libraries (Edge TPU and others) do,
 * claims no nodes, and records that TFLite prepared it in the file named by option
 * "marker". Option "fail" = "create" or "prepare" makes that step fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tensorflow/lite/c/common.h>

typedef struct {
	char marker[1024];
	int fail_prepare;
} state;

static TfLiteStatus prepare(TfLiteContext* ctx, TfLiteDelegate* d) {
	state* s = (state*)d->data_;
	if (s->fail_prepare) {
		ctx->ReportError(ctx, "testdelegate: failing Prepare as asked");
		return kTfLiteError;
	}
	TfLiteIntArray* plan = NULL;
	if (ctx->GetExecutionPlan(ctx, &plan) != kTfLiteOk) return kTfLiteError;
	if (s->marker[0]) {
		FILE* f = fopen(s->marker, "w");
		if (f) {
			fprintf(f, "prepared nodes=%d\n", plan->size);
			fclose(f);
		}
	}
	return kTfLiteOk;
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n, void (*report_error)(const char*)) {
	state* s = calloc(1, sizeof *s);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i], "marker") == 0) snprintf(s->marker, sizeof s->marker, "%s", values[i]);
		else if (strcmp(keys[i], "fail") == 0 && strcmp(values[i], "prepare") == 0) s->fail_prepare = 1;
		else if (strcmp(keys[i], "fail") == 0 && strcmp(values[i], "create") == 0) {
			if (report_error) report_error("testdelegate: failing create as asked");
			free(s);
			return NULL;
		}
	}
	/* Newer TFLite versions append fields to TfLiteDelegate; pad and zero them. */
	TfLiteDelegate* d = calloc(1, sizeof(TfLiteDelegate) + 256);
	d->data_ = s;
	d->Prepare = prepare;
	d->flags = kTfLiteDelegateFlagsNone;
	return d;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* d) {
	if (d) {
		free(d->data_);
		free(d);
	}
}

/*
 * classify.c - edgehost "post" plugin in C: top-k classification.
 *
 * Reads the first output tensor (any shape, flattened; uint8/int8/int16 with scale and zero
 * point, or float32), dequantises it, applies softmax if asked, and returns
 *
 *   {"top":[{"index":3,"label":"peacock","score":0.96},...]}
 *
 * sorted by score (ties: lower index first). "label" is "" when no label is known.
 *
 * Params (JSON object, all optional):
 *   "top_k":   integer >= 1, default 5 (capped at the number of classes)
 *   "softmax": boolean, default false (mobilenet_quant already outputs probabilities)
 *   "labels":  array of strings, label i for class index i
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"

static long g_top_k = 5;
static int g_softmax = 0;
static char **g_labels;     /* g_nlabels NUL-terminated strings */
static size_t *g_label_len; /* their lengths (labels may contain NUL via \u0000) */
static size_t g_nlabels;

static eh_buf g_out;   /* the result; valid until the next call, as ABI §5.3 requires */
static float *g_score; /* scratch: dequantised scores */
static size_t g_score_cap;
static size_t *g_top; /* scratch: indices of the best top_k */

int eh_plugin_init(const char *params, size_t len) {
    eh_json v;
    int r = eh_json_get(params, len, "top_k", &v);
    if (r < 0) return eh_fail(EH_BAD_PARAMS, "params: not a valid JSON object");
    if (r == 1) {
        double k;
        if (eh_json_number(&v, &k) != 0 || k < 1 || k > 1e6 || k != floor(k))
            return eh_fail(EH_BAD_PARAMS, "params: \"top_k\" must be an integer between 1 and 1000000");
        g_top_k = (long)k;
    }
    if (eh_json_get(params, len, "softmax", &v) == 1 && eh_json_bool(&v, &g_softmax) != 0)
        return eh_fail(EH_BAD_PARAMS, "params: \"softmax\" must be true or false");
    if (eh_json_get(params, len, "labels", &v) == 1) {
        int rc = eh_json_string_array(&v, "labels", &g_labels, &g_label_len, &g_nlabels);
        if (rc != EH_OK) return rc;
    }
    g_top = malloc(sizeof *g_top * (size_t)g_top_k);
    if (!g_top) return eh_fail(EH_INTERNAL, "classify-c: out of memory");
    eh_log(EH_LOG_INFO, "classify-c: top_k=%ld softmax=%s labels=%zu", g_top_k,
           g_softmax ? "true" : "false", g_nlabels);
    return EH_OK;
}

/* In-place softmax, numerically stable. */
static void softmax(float *s, size_t n) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (s[i] > mx) mx = s[i];
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        s[i] = expf(s[i] - mx);
        sum += s[i];
    }
    if (sum > 0)
        for (size_t i = 0; i < n; i++) s[i] = (float)(s[i] / sum);
}

/* Sort key of a score: NaN ranks below everything. */
static inline float key(float v) { return v == v ? v : -INFINITY; }

/* Indices of the k (>= 1) highest scores, best first, by insertion into a sorted list of k;
 * ties keep the lower index first. Returns how many (min(k, n)). */
static size_t top_k(const float *s, size_t n, size_t k, size_t *top) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float v = key(s[i]);
        size_t j;
        if (m < k) j = m++;
        else if (v > key(s[top[k - 1]])) j = k - 1;
        else continue;
        while (j > 0 && v > key(s[top[j - 1]])) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
    return m;
}

int eh_plugin_post(eh_call *call) {
    eh_buf_reset(&g_out); /* the previous result is no longer needed */
    eh_tensor *t = eh_call_tensor(call, 0);
    if (!t) return eh_fail(EH_INTERNAL, "classify-c: the model has no output tensor");
    size_t n = eh_tensor_count(t);
    if (n == 0) return eh_fail(EH_INTERNAL, "classify-c: output tensor 0 is empty or its descriptor is inconsistent");
    uint32_t dt = eh_tensor_dtype(t);
    if (dt != EH_UINT8 && dt != EH_INT8 && dt != EH_INT16 && dt != EH_FLOAT32)
        return eh_fail(EH_INTERNAL, "classify-c: output dtype %s is not supported (uint8, int8, int16, float32)",
                       eh_dtype_name(dt));
    if (n > g_score_cap) {
        free(g_score);
        g_score = malloc(n * sizeof *g_score);
        g_score_cap = g_score ? n : 0;
        if (!g_score) return eh_fail(EH_INTERNAL, "classify-c: out of memory for %zu scores", n);
    }
    for (size_t i = 0; i < n; i++) g_score[i] = eh_tensor_get_f32(t, i);
    if (g_softmax) softmax(g_score, n);

    size_t k = top_k(g_score, n, (size_t)g_top_k < n ? (size_t)g_top_k : n, g_top);
    eh_buf_append(&g_out, "{\"top\":[", 8);
    for (size_t i = 0; i < k; i++) {
        size_t idx = g_top[i];
        eh_buf_printf(&g_out, "%s{\"index\":%zu,\"label\":", i ? "," : "", idx);
        if (idx < g_nlabels) eh_buf_json_string(&g_out, g_labels[idx], g_label_len[idx]);
        else eh_buf_append(&g_out, "\"\"", 2);
        eh_buf_append(&g_out, ",\"score\":", 9);
        eh_buf_json_number(&g_out, g_score[idx]);
        eh_buf_append(&g_out, "}", 1);
    }
    eh_buf_append(&g_out, "]}", 2);
    if (g_out.oom) return eh_fail(EH_INTERNAL, "classify-c: out of memory for the result");
    eh_set_output(call, g_out.p, g_out.len);
    return EH_OK;
}

EH_EXPORT_POST

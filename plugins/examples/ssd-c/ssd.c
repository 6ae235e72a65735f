/*
 * ssd.c - edgehost "post" plugin in C for SSD detection models whose graph ends in TFLite's
 * detection post-processing op (outputs: boxes [1,N,4] as ymin,xmin,ymax,xmax in 0..1,
 * classes [1,N], scores [1,N], count [1]). It returns the detections scoring at least the
 * threshold, best first as the op orders them, as JSON:
 *   {"units":"pixels","image":{"width":1920,"height":1280},
 *    "detections":[{"label":"person","class":0,"score":0.75,"box":[ymin,xmin,ymax,xmax]}]}
 * the same result as plugins/examples/ssd-go. Boxes are in the original image's pixels when
 * the pre plugin put its size in the request context ({"width":W,"height":H}, as imagepre-c
 * and imagepre-go do); otherwise "units" is "normalized" and boxes are in 0..1.
 *
 * Params (JSON object, all optional):
 *   "labels":       array of strings; the label of class c is labels[c + label_offset]
 *   "label_offset": integer added to the class id to index labels        default 0
 *   "threshold":    minimum score, 0..1                                   default 0.5
 *   "max_results":  most detections returned, 1..100000                   default 100
 */
#include <math.h>
#include <stdlib.h>

#include "edgehost.h"

static char **g_labels;     /* g_nlabels strings */
static size_t *g_label_len; /* their lengths */
static size_t g_nlabels;
static long g_offset = 0, g_max = 100;
static double g_threshold = 0.5;
static eh_buf g_out; /* the result; valid until the next call (ABI §5.3) */

/* An integer param in [lo, hi] into *out; 0 when absent or valid. */
static int int_param(const char *params, size_t len, const char *key, long lo, long hi, long *out) {
    eh_json v;
    double d;
    if (eh_json_get(params, len, key, &v) != 1) return EH_OK;
    if (eh_json_number(&v, &d) != 0 || d < lo || d > hi || d != floor(d))
        return eh_fail(EH_BAD_PARAMS, "params: \"%s\" must be an integer between %ld and %ld", key, lo, hi);
    *out = (long)d;
    return EH_OK;
}

int eh_plugin_init(const char *params, size_t len) {
    eh_json v;
    int rc;
    if (eh_json_get(params, len, "labels", &v) < 0) return eh_fail(EH_BAD_PARAMS, "params: not a valid JSON object");
    if ((rc = int_param(params, len, "label_offset", -1000000, 1000000, &g_offset)) != EH_OK) return rc;
    if ((rc = int_param(params, len, "max_results", 1, 100000, &g_max)) != EH_OK) return rc;
    if (eh_json_get(params, len, "threshold", &v) == 1 &&
        (eh_json_number(&v, &g_threshold) != 0 || !(g_threshold >= 0 && g_threshold <= 1)))
        return eh_fail(EH_BAD_PARAMS, "params: \"threshold\" must be a number in [0, 1]");
    if (eh_json_get(params, len, "labels", &v) == 1 &&
        (rc = eh_json_string_array(&v, "labels", &g_labels, &g_label_len, &g_nlabels)) != EH_OK)
        return rc;
    eh_log(EH_LOG_INFO, "ssd-c: threshold=%g label_offset=%ld max_results=%ld labels=%zu", g_threshold, g_offset,
           g_max, g_nlabels);
    return EH_OK;
}

int eh_plugin_post(eh_call *call) {
    eh_buf_reset(&g_out);
    if (eh_call_ntensors(call) != 4)
        return eh_fail(EH_UNSUPPORTED, "ssd-c: want the 4 outputs of TFLite_Detection_PostProcess, the model has %zu",
                       eh_call_ntensors(call));
    eh_tensor *boxes = eh_call_tensor(call, 0), *classes = eh_call_tensor(call, 1);
    eh_tensor *scores = eh_call_tensor(call, 2), *count = eh_call_tensor(call, 3);
    if (eh_tensor_count(count) < 1) return eh_fail(EH_INTERNAL, "ssd-c: the count output is empty");
    float cf = eh_tensor_get_f32(count, 0);
    size_t n = cf > 0 && cf == cf ? (size_t)cf : 0;
    if (n > eh_tensor_count(scores)) n = eh_tensor_count(scores);
    if (n > eh_tensor_count(classes)) n = eh_tensor_count(classes);
    if (n > eh_tensor_count(boxes) / 4) n = eh_tensor_count(boxes) / 4;
    /* The request context from the pre plugin (ABI.md §5.6): the original image's size. With
     * it, boxes are in that image's pixels; without it, normalised to 0..1. */
    double iw = 0, ih = 0;
    size_t clen;
    const char *ctx = (const char *)eh_call_context(call, &clen);
    eh_json v;
    if (ctx && eh_json_get(ctx, clen, "width", &v) == 1 && eh_json_number(&v, &iw) == 0 &&
        eh_json_get(ctx, clen, "height", &v) == 1 && eh_json_number(&v, &ih) == 0 && iw >= 1 && ih >= 1)
        eh_buf_printf(&g_out, "{\"units\":\"pixels\",\"image\":{\"width\":%.0f,\"height\":%.0f},", iw, ih);
    else {
        iw = ih = 0;
        eh_buf_append(&g_out, "{\"units\":\"normalized\",", 24);
    }
    eh_buf_append(&g_out, "\"detections\":[", 14);
    long found = 0;
    for (size_t i = 0; i < n && found < g_max; i++) {
        float s = eh_tensor_get_f32(scores, i);
        if (!(s >= g_threshold)) continue;
        float cls = eh_tensor_get_f32(classes, i);
        long c = cls == cls && fabsf(cls) < 1e9f ? (long)cls : -1;
        long j = c + g_offset;
        eh_buf_append(&g_out, found ? ",{\"label\":" : "{\"label\":", found ? 10 : 9);
        if (j >= 0 && (size_t)j < g_nlabels) eh_buf_json_string(&g_out, g_labels[j], g_label_len[j]);
        else eh_buf_append(&g_out, "\"\"", 2);
        eh_buf_printf(&g_out, ",\"class\":%ld,\"score\":", c);
        eh_buf_json_number(&g_out, s);
        eh_buf_append(&g_out, ",\"box\":[", 8);
        for (int k = 0; k < 4; k++) {
            if (k) eh_buf_append(&g_out, ",", 1);
            double b = eh_tensor_get_f32(boxes, 4 * i + (size_t)k);
            if (iw > 0) { /* ymin, xmin, ymax, xmax: y scales by the height, x by the width */
                double side = (k % 2 == 0) ? ih : iw;
                b = b < 0 ? 0 : b > 1 ? 1 : b;
                b = round(b * side * 10) / 10;
            }
            eh_buf_json_number(&g_out, b);
        }
        eh_buf_append(&g_out, "]}", 2);
        found++;
    }
    eh_buf_append(&g_out, "]}", 2);
    if (g_out.oom) return eh_fail(EH_INTERNAL, "ssd-c: out of memory for the result");
    eh_set_output(call, g_out.p, g_out.len);
    return EH_OK;
}

EH_EXPORT_POST

/*
 * wakeword.c - edgehost "post" plugin in C: microWakeWord's decision, as pymicro-wakeword
 * makes it: the mean of the last `sliding_window_size` model probabilities (0 until the
 * window is full) above `probability_cutoff` is a detection. Pairs with microfeatures-c in a
 * sequence of 10 ms chunks (ABI 1.3, §5.8); its state (the window) lives in this instance.
 *
 * Params (from the model's JSON, "micro" section):
 *   "probability_cutoff":  number in (0, 1), default 0.85
 *   "sliding_window_size": integer 1..100, default 5
 *   "wake_word":           string for the result, default "wake word"
 *   "report":              "detections" (default): a result only on a detection, an empty
 *                          result for the other chunks; "all": every chunk, with the
 *                          quantised features and the raw model output (for comparisons).
 *
 * A detection: {"wake_word":"Okay Nabu","detected":true,"chunk":123,"time":1.23,
 *               "probability":0.91}; time is the end of the chunk in the stream, in seconds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"

#define MAX_WINDOW 100
#ifndef WAKEWORD_VERSION
#define WAKEWORD_VERSION 1 /* reported as "v" with report = "all" (tools/seqaccept builds a 2) */
#endif

static double g_cutoff = 0.85;
static int g_window = 5;
static char *g_wake_word = "wake word";
static size_t g_wake_len = 9;
static int g_all;

static double g_probs[MAX_WINDOW];
static int g_nprobs, g_next;
static eh_buf g_out;

int eh_plugin_init(const char *params, size_t len) {
    eh_json v;
    int r = eh_json_get(params, len, "probability_cutoff", &v);
    if (r < 0) return eh_fail(EH_BAD_PARAMS, "params: not a valid JSON object");
    if (r == 1 && (eh_json_number(&v, &g_cutoff) != 0 || !(g_cutoff > 0 && g_cutoff < 1)))
        return eh_fail(EH_BAD_PARAMS, "params: \"probability_cutoff\" must be a number between 0 and 1");
    if (eh_json_get(params, len, "sliding_window_size", &v) == 1) {
        double w;
        if (eh_json_number(&v, &w) != 0 || w < 1 || w > MAX_WINDOW || w != floor(w))
            return eh_fail(EH_BAD_PARAMS, "params: \"sliding_window_size\" must be an integer between 1 and %d", MAX_WINDOW);
        g_window = (int)w;
    }
    if (eh_json_get(params, len, "wake_word", &v) == 1) {
        g_wake_word = eh_json_string_dup(&v, &g_wake_len);
        if (!g_wake_word) return eh_fail(EH_BAD_PARAMS, "params: \"wake_word\" must be a string");
    }
    if (eh_json_get(params, len, "report", &v) == 1) {
        char *s = eh_json_string_dup(&v, NULL);
        if (!s || (strcmp(s, "all") != 0 && strcmp(s, "detections") != 0))
            return eh_fail(EH_BAD_PARAMS, "params: \"report\" must be \"detections\" or \"all\"");
        g_all = strcmp(s, "all") == 0;
        free(s);
    }
    return EH_OK;
}

int eh_plugin_post(eh_call *c) {
    eh_tensor *t = eh_call_tensor(c, 0);
    if (!t || eh_tensor_count(t) != 1 || eh_tensor_dtype(t) != EH_UINT8)
        return eh_fail(EH_INTERNAL, "wakeword-c: the model output must be one uint8 probability");
    if (c->flags & EH_FLAG_SEQ_START) g_nprobs = g_next = 0;
    size_t cl = 0;
    const uint8_t *cx = eh_call_context(c, &cl);
    char ctx[EH_MAX_CONTEXT + 1];
    unsigned chunk = 0;
    int feature = 0, inferred = 0, off = 0;
    if (cx) {
        memcpy(ctx, cx, cl);
        ctx[cl] = 0;
        sscanf(ctx, "%u %d %d%n", &chunk, &feature, &inferred, &off);
    }
    if (inferred && (c->flags & EH_FLAG_SKIP_MODEL))
        return eh_fail(EH_INTERNAL, "wakeword-c: the pre plugin asked for a model run that did not happen");
    /* pymicro-wakeword: no call without a feature frame; 0.0 until stride frames and until
     * the window is full; then the mean of the window. */
    double prob = 0;
    int q = -1;
    if (inferred) {
        q = *(const uint8_t *)eh_tensor_data(t);
        float p = ((float)q - (float)eh_tensor_zero_point(t)) * eh_tensor_scale(t);
        g_probs[g_next] = (double)p;
        g_next = (g_next + 1) % g_window;
        if (g_nprobs < g_window) g_nprobs++;
        if (g_nprobs == g_window) {
            double sum = 0;
            for (int i = 0; i < g_window; i++) sum += g_probs[i];
            prob = sum / g_window;
        }
    }
    int detected = feature && prob > g_cutoff;
    double time = chunk * 0.01;
    eh_buf_reset(&g_out);
    if (g_all) {
        eh_buf_printf(&g_out, "{\"v\":%d,\"chunk\":%u,\"time\":%.2f,\"feature\":%s,\"inferred\":%s,\"output\":%d,\"probability\":",
                      WAKEWORD_VERSION, chunk, time, feature ? "true" : "false", inferred ? "true" : "false", q);
        eh_buf_printf(&g_out, feature ? "%.17g" : "null", prob);
        eh_buf_printf(&g_out, ",\"detected\":%s,\"features\":[", detected ? "true" : "false");
        if (feature) eh_buf_append(&g_out, ctx + off + 1, strlen(ctx + off + 1));
        eh_buf_printf(&g_out, "]}");
        /* features were space-separated: make them a JSON array */
        for (size_t i = 0; i < g_out.len; i++)
            if (g_out.p[i] == ' ') g_out.p[i] = ',';
    } else if (detected) {
        eh_buf_printf(&g_out, "{\"wake_word\":");
        eh_buf_json_string(&g_out, g_wake_word, g_wake_len);
        eh_buf_printf(&g_out, ",\"detected\":true,\"chunk\":%u,\"time\":%.2f,\"probability\":%.4f}", chunk, time, prob);
    } else {
        static const char empty[1];
        eh_set_output(c, empty, 0); /* nothing to report for this chunk */
        return EH_OK;
    }
    if (g_out.oom) return eh_fail(EH_INTERNAL, "wakeword-c: out of memory");
    eh_set_output(c, g_out.p, g_out.len);
    return EH_OK;
}

EH_EXPORT_POST

/*
 * seqecho.c - a stateful test plugin (kind "both") for the sequence tests (ABI 1.3, §5.8).
 *
 * pre:  copies the request bytes into input tensor 0 (they must be exactly its size), counts
 *       the requests this instance served, and hands "count flags" to post in the context.
 * post: counts its own requests and returns
 *       {"pre":N,"post":M,"pre_flags":F,"post_flags":G,"out":[...output 0 bytes...],"tag":T}
 *       where T is the compile-time TAG (to tell plugin versions apart).
 * A 1.2 plugin would not see the sequence flags; this one reports them.
 */
#include <stdio.h>
#include <string.h>

#include "edgehost.h"

#ifndef TAG
#define TAG 1
#endif

static unsigned g_pre, g_post;
static eh_buf g_out;

int eh_plugin_init(const char *params, size_t len) {
    (void)params;
    (void)len;
    return EH_OK;
}

int eh_plugin_pre(eh_call *c) {
    eh_tensor *t = eh_call_tensor(c, 0);
    if (!t) return eh_fail(EH_INTERNAL, "no input tensor");
    if (c->flags & EH_FLAG_SEQ_START) g_pre = 0; /* fresh anyway: the host makes new instances */
    if (eh_call_input_len(c) != eh_tensor_bytes(t))
        return eh_fail(EH_BAD_INPUT, "want %zu bytes, got %zu", eh_tensor_bytes(t), eh_call_input_len(c));
    memcpy(eh_tensor_data(t), eh_call_input(c), eh_tensor_bytes(t));
    g_pre++;
    char ctx[64];
    int n = snprintf(ctx, sizeof ctx, "%u %u", g_pre, (unsigned)c->flags);
    return eh_set_context(c, ctx, (size_t)n);
}

int eh_plugin_post(eh_call *c) {
    eh_tensor *t = eh_call_tensor(c, 0);
    if (!t) return eh_fail(EH_INTERNAL, "no output tensor");
    g_post++;
    unsigned pre = 0, pflags = 0;
    size_t cl;
    const uint8_t *cx = eh_call_context(c, &cl);
    if (cx) {
        char tmp[64];
        if (cl >= sizeof tmp) cl = sizeof tmp - 1;
        memcpy(tmp, cx, cl);
        tmp[cl] = 0;
        sscanf(tmp, "%u %u", &pre, &pflags);
    }
    eh_buf_reset(&g_out);
    eh_buf_printf(&g_out, "{\"pre\":%u,\"post\":%u,\"pre_flags\":%u,\"post_flags\":%u,\"tag\":%d,\"out\":[",
                  pre, g_post, pflags, (unsigned)c->flags, TAG);
    const uint8_t *d = eh_tensor_data(t);
    for (size_t i = 0; i < eh_tensor_bytes(t); i++) eh_buf_printf(&g_out, i ? ",%u" : "%u", d[i]);
    eh_buf_printf(&g_out, "]}");
    if (g_out.oom) return eh_fail(EH_INTERNAL, "out of memory");
    eh_set_output(c, g_out.p, g_out.len);
    return EH_OK;
}

EH_EXPORT_PRE
EH_EXPORT_POST

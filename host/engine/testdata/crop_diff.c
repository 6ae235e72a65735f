/*
 * crop_diff.c - a kind "both" test plugin (shared instance) for the differential test of
 * the C SDK's eh_crop_resize_rgb against Pillow (TestCropMatchesPillow). The request body:
 * u32 w, u32 h, f64 x0, y0, x1, y1, u32 out_w, u32 out_h (little-endian), then w*h*3 RGB
 * bytes. pre keeps it; post answers the uint8 crop (out_h x out_w x 3) as its result.
 */
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"

static uint8_t *g_in;
static size_t g_len;
static uint8_t *g_out;

int eh_plugin_pre(eh_call *call) {
    free(g_in);
    g_len = eh_call_input_len(call);
    g_in = malloc(g_len);
    if (!g_in) return eh_fail(EH_TOO_LARGE, "no memory");
    memcpy(g_in, eh_call_input(call), g_len);
    for (size_t i = 0; i < eh_call_ntensors(call); i++) memset(eh_tensor_data(eh_call_tensor(call, i)), 0, eh_tensor_bytes(eh_call_tensor(call, i)));
    return EH_OK;
}

int eh_plugin_post(eh_call *call) {
    uint32_t w, h, ow, oh;
    double b[4];
    if (g_len < 48) return eh_fail(EH_BAD_INPUT, "short header");
    memcpy(&w, g_in, 4);
    memcpy(&h, g_in + 4, 4);
    memcpy(b, g_in + 8, 32);
    memcpy(&ow, g_in + 40, 4);
    memcpy(&oh, g_in + 44, 4);
    if ((size_t)w * h * 3 + 48 != g_len) return eh_fail(EH_BAD_INPUT, "size");
    free(g_out);
    g_out = aligned_alloc(64, ((size_t)ow * oh * 3 + 63) / 64 * 64);
    if (!g_out) return eh_fail(EH_TOO_LARGE, "no memory");
    eh_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = EH_UINT8;
    t.ndims = 4;
    t.dims[0] = 1, t.dims[1] = (int32_t)oh, t.dims[2] = (int32_t)ow, t.dims[3] = 3;
    t.bytes = ow * oh * 3;
    t.data = (uint32_t)(uintptr_t)g_out;
    int rc = eh_crop_resize_rgb(g_in + 48, w, h, b[0], b[1], b[2], b[3], &t, 0, 1, 0);
    if (rc != EH_OK) return rc;
    eh_set_output(call, g_out, t.bytes);
    return EH_OK;
}

EH_EXPORT_PRE
EH_EXPORT_POST

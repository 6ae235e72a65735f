/*
 * imagepre.c - edgehost "pre" plugin in C: decode a PNG or JPEG request body, resize it
 * bilinearly to the model input's HxW and write the input tensor (NHWC, C = 3 or 1).
 *
 * Tensor encoding per dtype:
 *   uint8   raw pixel value 0..255
 *   int8    pixel - 128
 *   float32 (pixel - mean) / std, per channel; params "mean" and "std" (default 127.5)
 *
 * Params (JSON object, all optional):
 *   "mean":       number, or array of 1 or 3 numbers (per channel R,G,B)   default 127.5
 *   "std":        number, or array of 1 or 3 non-zero numbers              default 127.5
 *   "max_pixels": largest accepted image, width*height                     default 50331648
 *   "exif_orientation": apply a JPEG's EXIF orientation (true), or ignore it default true
 *
 * The decoders live in png.c, jpeg.c and inflate.c; they know nothing of edgehost.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "edgehost.h"
#include "image.h"

static float g_mean[3] = {127.5f, 127.5f, 127.5f};
static float g_std[3] = {127.5f, 127.5f, 127.5f};
static uint64_t g_max_pixels = 48u << 20; /* 50 Mpx: a 12 Mpx camera frame decodes at 1/8 in a few MiB */
static int g_exif = 1;                     /* apply EXIF orientation */

/* Read a number or an array of 1 or 3 numbers into v[3]. 0 ok, -1 invalid. */
static int read_triplet(const eh_json *j, float v[3]) {
    double d;
    if (eh_json_number(j, &d) == 0) {
        v[0] = v[1] = v[2] = (float)d;
        return 0;
    }
    long n = eh_json_array_len(j);
    if (n != 1 && n != 3) return -1;
    size_t pos = 0;
    eh_json el;
    for (long i = 0; i < n; i++) {
        if (eh_json_array_next(j, &pos, &el) != 1 || eh_json_number(&el, &d) != 0) return -1;
        v[i] = (float)d;
    }
    if (n == 1) v[1] = v[2] = v[0];
    return 0;
}

int eh_plugin_init(const char *params, size_t len) {
    eh_json v;
    int r = eh_json_get(params, len, "mean", &v);
    if (r < 0) return eh_fail(EH_BAD_PARAMS, "params: not a valid JSON object");
    if (r == 1 && read_triplet(&v, g_mean) != 0)
        return eh_fail(EH_BAD_PARAMS, "params: \"mean\" must be a number or an array of 1 or 3 numbers");
    if (eh_json_get(params, len, "std", &v) == 1) {
        if (read_triplet(&v, g_std) != 0)
            return eh_fail(EH_BAD_PARAMS, "params: \"std\" must be a number or an array of 1 or 3 numbers");
        for (int i = 0; i < 3; i++)
            if (g_std[i] == 0.0f || !isfinite(g_std[i]))
                return eh_fail(EH_BAD_PARAMS, "params: \"std\" must be finite and non-zero");
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(g_mean[i])) return eh_fail(EH_BAD_PARAMS, "params: \"mean\" must be finite");
    if (eh_json_get(params, len, "max_pixels", &v) == 1) {
        double d;
        if (eh_json_number(&v, &d) != 0 || d < 1 || d > 1e12 || d != floor(d))
            return eh_fail(EH_BAD_PARAMS, "params: \"max_pixels\" must be a positive integer");
        g_max_pixels = (uint64_t)d;
    }
    if (eh_json_get(params, len, "exif_orientation", &v) == 1 && eh_json_bool(&v, &g_exif) != 0)
        return eh_fail(EH_BAD_PARAMS, "params: \"exif_orientation\" must be true or false");
    eh_log(EH_LOG_DEBUG, "imagepre-c: mean=[%g,%g,%g] std=[%g,%g,%g] max_pixels=%llu", g_mean[0],
           g_mean[1], g_mean[2], g_std[0], g_std[1], g_std[2], (unsigned long long)g_max_pixels);
    return EH_OK;
}

/* Name a few well-known formats we do not decode, for a helpful 415. */
static const char *other_format(const uint8_t *d, size_t n) {
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return "GIF";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "WebP";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return "TIFF";
    return NULL;
}

/* A raw frame (ABI 1.3, §5.7; a stream source decoded it with ffmpeg): no decoding, only the
 * resize and the quantisation. The host checked stride * height == n; checked again here. */
static int pre_frame(eh_call *call, eh_tensor *t, const eh_frame *fr, const uint8_t *in, size_t n, uint32_t H,
                     uint32_t W, uint32_t C, uint32_t dt) {
    if (fr->format != EH_PIXEL_RGB24)
        return eh_fail(EH_UNSUPPORTED, "imagepre-c: raw frame pixel format %u is not supported (rgb24)", fr->format);
    if (fr->width == 0 || fr->height == 0 || fr->stride < (uint64_t)fr->width * 3 ||
        (uint64_t)fr->stride * fr->height != n || (uint64_t)fr->width * fr->height > g_max_pixels)
        return eh_fail(EH_BAD_INPUT, "imagepre-c: raw frame %ux%u stride %u does not fit its %zu bytes or max_pixels",
                       fr->width, fr->height, fr->stride, n);
    img im = {fr->width, fr->height, (uint8_t *)in};
    uint8_t *packed = NULL;
    if (fr->stride != fr->width * 3) { /* rows with padding: pack them (img has none) */
        packed = malloc((size_t)fr->width * 3 * fr->height);
        if (!packed) return eh_fail(EH_TOO_LARGE, "imagepre-c: out of memory packing a raw frame");
        for (uint32_t y = 0; y < fr->height; y++)
            memcpy(packed + (size_t)y * fr->width * 3, in + (size_t)y * fr->stride, (size_t)fr->width * 3);
        im.pix = packed;
    }
    int kind = dt == EH_UINT8 ? IMG_OUT_U8 : dt == EH_INT8 ? IMG_OUT_I8 : IMG_OUT_F32;
    int rc = img_resize(&im, eh_tensor_data(t), kind, H, W, C, g_mean, g_std);
    free(packed);
    if (rc != IMG_OK) return eh_fail(EH_TOO_LARGE, "imagepre-c: out of memory resizing a raw frame");
    if (call->flags & EH_FLAG_CONTEXT) {
        char ctx[96];
        int k = snprintf(ctx, sizeof ctx, "{\"width\":%u,\"height\":%u,\"input_width\":%u,\"input_height\":%u}",
                         (unsigned)fr->width, (unsigned)fr->height, (unsigned)W, (unsigned)H);
        return eh_set_context(call, ctx, (size_t)k);
    }
    return EH_OK;
}

int eh_plugin_pre(eh_call *call) {
    if (eh_call_ntensors(call) != 1)
        return eh_fail(EH_INTERNAL, "imagepre-c: the model must have exactly 1 input tensor, it has %zu",
                       eh_call_ntensors(call));
    eh_tensor *t = eh_call_tensor(call, 0);
    if (eh_tensor_count(t) == 0)
        return eh_fail(EH_INTERNAL, "imagepre-c: input tensor descriptor is inconsistent or empty");
    uint32_t nd = eh_tensor_ndims(t);
    const int32_t *d = t->dims;
    if (!((nd == 4 && d[0] == 1) || nd == 3))
        return eh_fail(EH_INTERNAL, "imagepre-c: input tensor must be [1,H,W,C] or [H,W,C], rank is %u", nd);
    uint32_t H = (uint32_t)d[nd - 3], W = (uint32_t)d[nd - 2], C = (uint32_t)d[nd - 1];
    if (C != 1 && C != 3)
        return eh_fail(EH_INTERNAL, "imagepre-c: input tensor must have 1 or 3 channels (NHWC), it has %u", C);
    uint32_t dt = eh_tensor_dtype(t);
    if (dt != EH_UINT8 && dt != EH_INT8 && dt != EH_FLOAT32)
        return eh_fail(EH_INTERNAL, "imagepre-c: input dtype %s is not supported (uint8, int8, float32)",
                       eh_dtype_name(dt));

    const uint8_t *in = eh_call_input(call);
    size_t n = eh_call_input_len(call);
    eh_frame fr;
    if (eh_call_frame(call, &fr)) return pre_frame(call, t, &fr, in, n, H, W, C, dt);
    if (n == 0 || in == NULL) return eh_fail(EH_BAD_INPUT, "imagepre-c: empty request body, want a PNG or JPEG image");

    img im;
    img_err err = {{0}};
    int rc, orient = 1;
    const char *other;
    if (png_sniff(in, n)) {
        /* row by row, keeping only the pixels the resize reads: the image is never held */
        int kind = dt == EH_UINT8 ? IMG_OUT_U8 : dt == EH_INT8 ? IMG_OUT_I8 : IMG_OUT_F32;
        rc = png_decode_tensor(in, n, g_max_pixels, eh_tensor_data(t), kind, H, W, C, g_mean, g_std, &im.w, &im.h, &err);
        if (rc != IMG_OK) return eh_fail(rc, "%s", err.msg); /* IMG_* values are ABI statuses */
    } else if (jpeg_sniff(in, n)) {
        /* DCT-domain 1/2..1/8, resized straight from the YCbCr planes where it can be */
        int kind = dt == EH_UINT8 ? IMG_OUT_U8 : dt == EH_INT8 ? IMG_OUT_I8 : IMG_OUT_F32;
        orient = g_exif ? jpeg_exif_orientation(in, n) : 1;
        if (orient == 1) {
            rc = jpeg_decode_tensor(in, n, g_max_pixels, eh_tensor_data(t), kind, H, W, C, g_mean, g_std, &im.w,
                                    &im.h, &err);
        } else {
            /* Resize the stored image (transposed for 5-8), then turn it as it is shown. */
            size_t elem = (size_t)C * (kind == IMG_OUT_F32 ? 4 : 1);
            uint8_t *tmp = malloc((size_t)H * W * elem);
            if (!tmp) return eh_fail(EH_TOO_LARGE, "imagepre-c: out of memory turning the image (EXIF orientation)");
            uint32_t Hr = orient >= 5 ? W : H, Wr = orient >= 5 ? H : W;
            rc = jpeg_decode_tensor(in, n, g_max_pixels, tmp, kind, Hr, Wr, C, g_mean, g_std, &im.w, &im.h, &err);
            if (rc == IMG_OK) img_orient(tmp, eh_tensor_data(t), H, W, elem, orient);
            free(tmp);
        }
        if (rc != IMG_OK) return eh_fail(rc, "%s", err.msg);
    } else if ((other = other_format(in, n)) != NULL)
        return eh_fail(EH_UNSUPPORTED, "unsupported: %s images (send PNG or JPEG)", other);
    else return eh_fail(EH_BAD_INPUT, "imagepre-c: request body is not a PNG or JPEG image");
    /* The request context (ABI.md §5.6): the original size, so that a post plugin reports
     * positions in the caller's pixels (the tensor is the whole image, stretched to W×H). */
    uint32_t ow = im.w, oh = im.h;
    img_header_size(in, n, &ow, &oh);
    if (orient >= 5) { /* the caller sees the image turned: its width is the stored height */
        uint32_t tw = ow;
        ow = oh, oh = tw;
    }
    if (call->flags & EH_FLAG_CONTEXT) {
        char ctx[96];
        int k = snprintf(ctx, sizeof ctx, "{\"width\":%u,\"height\":%u,\"input_width\":%u,\"input_height\":%u}",
                         (unsigned)ow, (unsigned)oh, (unsigned)W, (unsigned)H);
        return eh_set_context(call, ctx, (size_t)k);
    }
    return EH_OK;
}

EH_EXPORT_PRE

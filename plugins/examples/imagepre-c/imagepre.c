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

/* Sample positions for bilinear resampling with half-pixel centres: output i reads source
 * samples i0 and i1 with weight w (of 256) on i1. */
typedef struct {
    uint32_t i0, i1;
    uint32_t w;
} tap;

static void make_taps(tap *t, uint32_t dst, uint32_t src) {
    float scale = (float)src / (float)dst;
    for (uint32_t i = 0; i < dst; i++) {
        float s = ((float)i + 0.5f) * scale - 0.5f;
        if (s < 0) s = 0;
        uint32_t i0 = (uint32_t)s;
        if (i0 > src - 1) i0 = src - 1;
        float f = s - (float)i0;
        if (f > 1) f = 1;
        t[i].i0 = i0;
        t[i].i1 = i0 + 1 < src ? i0 + 1 : src - 1;
        t[i].w = (uint32_t)lrintf(f * 256.0f);
    }
}

/* Resize im to H x W x C and store it in t (already validated: dtype u8/i8/f32).
 *
 * Separable and in fixed point: each output row first blends its two source rows (weights of
 * 256, 16-bit sums) over the source columns the horizontal taps use, then blends columns
 * (32-bit sums) and rounds once. The value is the bilinear sample to 1/65536, so uint8 and
 * int8 outputs equal the float computation's rounding except at exact halves. Per output
 * row this costs one pass over the source row and one over the output row, with no float
 * arithmetic for the quantised dtypes. */
static int write_tensor(const img *im, eh_tensor *t, uint32_t H, uint32_t W, uint32_t C) {
    tap *tx = malloc(sizeof(tap) * W), *ty = malloc(sizeof(tap) * H);
    uint16_t *row = malloc(sizeof(uint16_t) * (size_t)im->w * 3);
    if (!tx || !ty || !row) {
        free(tx);
        free(ty);
        free(row);
        return eh_fail(EH_INTERNAL, "imagepre-c: out of memory");
    }
    make_taps(tx, W, im->w);
    make_taps(ty, H, im->h);
    uint8_t *u8 = eh_tensor_data(t);
    int8_t *i8 = eh_tensor_data(t);
    float *f32 = eh_tensor_data(t);
    float scale[3], offset[3]; /* float32: v/65536 * (1/std) - mean/std */
    for (int c = 0; c < 3; c++) {
        scale[c] = 1.0f / (65536.0f * g_std[c]);
        offset[c] = -g_mean[c] / g_std[c];
    }
    size_t stride = (size_t)im->w * 3, k = 0;
    for (uint32_t y = 0; y < H; y++) {
        const uint8_t *r0 = im->pix + ty[y].i0 * stride, *r1 = im->pix + ty[y].i1 * stride;
        uint32_t wy = ty[y].w, vy = 256 - wy;
        for (size_t i = 0; i < stride; i++) row[i] = (uint16_t)(r0[i] * vy + r1[i] * wy);
        if (C == 3 && t->dtype == EH_UINT8) { /* the common case, without per-pixel branches */
            for (uint32_t x = 0; x < W; x++, k += 3) {
                const uint16_t *a = row + (size_t)tx[x].i0 * 3, *b = row + (size_t)tx[x].i1 * 3;
                uint32_t wx = tx[x].w, vx = 256 - wx;
                u8[k] = (uint8_t)((a[0] * vx + b[0] * wx + 32768) >> 16);
                u8[k + 1] = (uint8_t)((a[1] * vx + b[1] * wx + 32768) >> 16);
                u8[k + 2] = (uint8_t)((a[2] * vx + b[2] * wx + 32768) >> 16);
            }
            continue;
        }
        for (uint32_t x = 0; x < W; x++) {
            const uint16_t *a = row + (size_t)tx[x].i0 * 3, *b = row + (size_t)tx[x].i1 * 3;
            uint32_t wx = tx[x].w, vx = 256 - wx;
            uint32_t px[3] = {a[0] * vx + b[0] * wx, a[1] * vx + b[1] * wx, a[2] * vx + b[2] * wx};
            if (C == 1) { /* BT.601 luma, weights of 1024 */
                px[0] = (uint32_t)(((uint64_t)px[0] * 306 + (uint64_t)px[1] * 601 + (uint64_t)px[2] * 117) >> 10);
            }
            switch (t->dtype) {
            case EH_UINT8:
                for (uint32_t c = 0; c < C; c++) u8[k++] = (uint8_t)((px[c] + 32768) >> 16);
                break;
            case EH_INT8:
                for (uint32_t c = 0; c < C; c++) i8[k++] = (int8_t)((int)((px[c] + 32768) >> 16) - 128);
                break;
            default:
                for (uint32_t c = 0; c < C; c++) f32[k++] = (float)px[c] * scale[c] + offset[c];
                break;
            }
        }
    }
    free(tx);
    free(ty);
    free(row);
    return EH_OK;
}

/* The original image's size from its header (PNG IHDR, JPEG SOFn), before any DCT-domain
 * scaling: what a post plugin needs to report positions in the caller's pixels. 0 if absent. */
static int header_size(const uint8_t *in, size_t n, uint32_t *w, uint32_t *h) {
    if (png_sniff(in, n) && n >= 24) {
        *w = (uint32_t)in[16] << 24 | (uint32_t)in[17] << 16 | (uint32_t)in[18] << 8 | in[19];
        *h = (uint32_t)in[20] << 24 | (uint32_t)in[21] << 16 | (uint32_t)in[22] << 8 | in[23];
        return 1;
    }
    if (!jpeg_sniff(in, n)) return 0;
    for (size_t p = 2; p + 9 <= n;) {
        if (in[p] != 0xff) return 0;
        uint8_t m = in[p + 1];
        if (m == 0xff) { p++; continue; }
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) { p += 2; continue; }
        size_t len = (size_t)in[p + 2] << 8 | in[p + 3];
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            *h = (uint32_t)in[p + 5] << 8 | in[p + 6];
            *w = (uint32_t)in[p + 7] << 8 | in[p + 8];
            return 1;
        }
        p += 2 + len;
    }
    return 0;
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
    if (n == 0 || in == NULL) return eh_fail(EH_BAD_INPUT, "imagepre-c: empty request body, want a PNG or JPEG image");

    img im;
    img_err err = {{0}};
    int rc;
    const char *other;
    if (png_sniff(in, n)) rc = png_decode(in, n, g_max_pixels, &im, &err);
    else if (jpeg_sniff(in, n)) rc = jpeg_decode_scaled(in, n, g_max_pixels, W, H, &im, &err); /* DCT-domain 1/2..1/8 */
    else if ((other = other_format(in, n)) != NULL)
        return eh_fail(EH_UNSUPPORTED, "unsupported: %s images (send PNG or JPEG)", other);
    else return eh_fail(EH_BAD_INPUT, "imagepre-c: request body is not a PNG or JPEG image");
    if (rc != IMG_OK) return eh_fail(rc, "%s", err.msg); /* IMG_* values are ABI statuses */

    rc = write_tensor(&im, t, H, W, C);
    img_free(&im);
    if (rc != EH_OK) return rc;
    /* The request context (ABI.md §5.6): the original size, so that a post plugin reports
     * positions in the caller's pixels (the tensor is the whole image, stretched to W×H). */
    uint32_t ow = im.w, oh = im.h;
    header_size(in, n, &ow, &oh);
    if (call->flags & EH_FLAG_CONTEXT) {
        char ctx[96];
        int k = snprintf(ctx, sizeof ctx, "{\"width\":%u,\"height\":%u,\"input_width\":%u,\"input_height\":%u}",
                         (unsigned)ow, (unsigned)oh, (unsigned)W, (unsigned)H);
        return eh_set_context(call, ctx, (size_t)k);
    }
    return EH_OK;
}

EH_EXPORT_PRE

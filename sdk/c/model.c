/*
 * model.c - edgehost C SDK: model calls (ABI 1.3, abi/ABI.md §5.9) and the crop helper a
 * cascade needs. Link it beside edgehost.c and heap.c in plugins that run models.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"

int eh_model_open(eh_model *m, const char *name) {
    memset(m, 0, sizeof *m);
    size_t nl = strlen(name);
    if (nl == 0 || nl >= sizeof m->name) return eh_fail(EH_INTERNAL, "model name \"%s\" is empty or too long", name);
    memcpy(m->name, name, nl);
    int32_t r = eh_host_model_tensors(m->name, (uint32_t)nl, m->t, EH_MODEL_MAX_TENSORS);
    if (r < 0) return eh_fail(EH_INTERNAL, "model %s: model_tensors returned %d", name, (int)r);
    m->n_in = (size_t)(r >> 16);
    m->n_out = (size_t)(r & 0xffff);
    if (m->n_in + m->n_out > EH_MODEL_MAX_TENSORS)
        return eh_fail(EH_INTERNAL, "model %s has %zu tensors, more than %d", name, m->n_in + m->n_out,
                       EH_MODEL_MAX_TENSORS);
    for (size_t i = 0; i < m->n_in + m->n_out; i++) {
        uint32_t b = m->t[i].bytes;
        void *p = aligned_alloc(64, b ? (b + 63) / 64 * 64 : 64);
        if (!p) {
            eh_model_close(m);
            return eh_fail(EH_TOO_LARGE, "model %s: no memory for a %u-byte tensor", name, b);
        }
        m->t[i].data = (uint32_t)(uintptr_t)p;
        m->bufs[2 * i] = m->t[i].data;
        m->bufs[2 * i + 1] = b;
    }
    return EH_OK;
}

int eh_model_run(eh_model *m) {
    int32_t r = eh_host_run_model(m->name, (uint32_t)strlen(m->name), m->bufs, (uint32_t)(m->n_in + m->n_out));
    if (r != EH_MODEL_OK) return eh_fail(EH_INTERNAL, "model %s: run_model returned %d", m->name, (int)r);
    return EH_OK;
}

void eh_model_close(eh_model *m) {
    for (size_t i = 0; i < EH_MODEL_MAX_TENSORS; i++)
        if (m->t[i].data) free(eh_ptr(m->t[i].data));
    memset(m, 0, sizeof *m);
}

/* One axis of the resize, as Pillow's BILINEAR resample does it: a triangle filter whose
 * support widens with the downscale factor (antialiased), over the crop's own pixels
 * (n_src of them, starting at src0 in the image), weights normalised. Output i reads source
 * pixels start[i] .. start[i] + len[i] - 1 (crop coordinates). */
typedef struct {
    int32_t *start, *len;
    float *w; /* len[i] weights of output i at w[i * k] */
    int32_t k;
} axis;

static void axis_free(axis *a) {
    free(a->start);
    free(a->len);
    free(a->w);
}

static int axis_init(axis *a, uint32_t n_out, int32_t n_src) {
    double scale = (double)n_src / n_out, fs = scale < 1 ? 1 : scale, support = fs;
    a->k = (int32_t)ceil(support) * 2 + 1;
    a->start = malloc(sizeof(int32_t) * n_out);
    a->len = malloc(sizeof(int32_t) * n_out);
    a->w = malloc(sizeof(float) * n_out * (size_t)a->k);
    if (!a->start || !a->len || !a->w) return -1;
    for (uint32_t i = 0; i < n_out; i++) {
        double c = ((double)i + 0.5) * scale;
        int32_t lo = (int32_t)(c - support + 0.5), hi = (int32_t)(c + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_src) hi = n_src;
        if (hi - lo > a->k) hi = lo + a->k;
        double sum = 0;
        float *w = a->w + (size_t)i * a->k;
        for (int32_t x = lo; x < hi; x++) {
            double t = ((double)x - c + 0.5) / fs;
            double v = t < 0 ? 1 + t : 1 - t;
            w[x - lo] = (float)(v > 0 ? v : 0);
            sum += w[x - lo];
        }
        for (int32_t x = lo; x < hi; x++) w[x - lo] = sum > 0 ? (float)(w[x - lo] / sum) : 0;
        a->start[i] = lo;
        a->len[i] = hi - lo;
    }
    return 0;
}

int eh_crop_resize_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, float x0, float y0, float x1, float y1,
                       eh_tensor *t, float mean, float std, uint8_t pad) {
    if (t->ndims != 4 || t->dims[0] != 1 || t->dims[3] != 3 || t->dims[1] <= 0 || t->dims[2] <= 0 ||
        eh_tensor_count(t) == 0)
        return eh_fail(EH_UNSUPPORTED, "crop: want an NHWC tensor 1 x H x W x 3");
    if (t->dtype != EH_UINT8 && t->dtype != EH_INT8 && t->dtype != EH_FLOAT32)
        return eh_fail(EH_UNSUPPORTED, "crop: tensor type %s", eh_dtype_name(t->dtype));
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || fabsf(x0) > 1e6f || fabsf(y0) > 1e6f ||
        fabsf(x1) > 1e6f || fabsf(y1) > 1e6f)
        return eh_fail(EH_BAD_INPUT, "crop: invalid box");
    /* The crop is whole pixels, as Image.crop takes them: [cx0, cx0 + cw) x [cy0, cy0 + ch). */
    int32_t cx0 = (int32_t)lroundf(x0), cy0 = (int32_t)lroundf(y0);
    int32_t cw = (int32_t)lroundf(x1) - cx0, ch = (int32_t)lroundf(y1) - cy0;
    if (cw < 1 || ch < 1) return eh_fail(EH_BAD_INPUT, "crop: empty box");
    uint32_t H = (uint32_t)t->dims[1], W = (uint32_t)t->dims[2];
    axis ax = {0}, ay = {0};
    float *tmp = malloc(sizeof(float) * (size_t)ch * W * 3);
    if (!tmp || axis_init(&ax, W, cw) != 0 || axis_init(&ay, H, ch) != 0) {
        free(tmp);
        axis_free(&ax);
        axis_free(&ay);
        return eh_fail(EH_TOO_LARGE, "crop: no memory");
    }
    /* Horizontal pass: every crop row (padded outside the image) -> W columns. */
    for (int32_t y = 0; y < ch; y++) {
        int32_t iy = cy0 + y;
        int inside_y = iy >= 0 && (uint32_t)iy < h;
        const uint8_t *row = inside_y ? rgb + (size_t)iy * w * 3 : 0;
        float *o = tmp + (size_t)y * W * 3;
        for (uint32_t x = 0; x < W; x++) {
            float r = 0, g = 0, b = 0;
            const float *wt = ax.w + (size_t)x * ax.k;
            for (int32_t k = 0; k < ax.len[x]; k++) {
                int32_t ix = cx0 + ax.start[x] + k;
                if (inside_y && ix >= 0 && (uint32_t)ix < w) {
                    const uint8_t *p = row + (size_t)ix * 3;
                    r += wt[k] * p[0], g += wt[k] * p[1], b += wt[k] * p[2];
                } else {
                    r += wt[k] * pad, g += wt[k] * pad, b += wt[k] * pad;
                }
            }
            o[3 * x] = r, o[3 * x + 1] = g, o[3 * x + 2] = b;
        }
    }
    /* Vertical pass into the tensor. */
    uint8_t *u8 = eh_tensor_data(t);
    int8_t *i8 = eh_tensor_data(t);
    float *f32 = eh_tensor_data(t);
    for (uint32_t y = 0; y < H; y++) {
        const float *wt = ay.w + (size_t)y * ay.k;
        for (uint32_t x = 0; x < W * 3; x++) {
            float v = 0;
            for (int32_t k = 0; k < ay.len[y]; k++) v += wt[k] * tmp[((size_t)(ay.start[y] + k) * W) * 3 + x];
            size_t i = (size_t)y * W * 3 + x;
            if (t->dtype == EH_FLOAT32) f32[i] = (v - mean) / std;
            else {
                int q = (int)lroundf(v);
                q = q < 0 ? 0 : q > 255 ? 255 : q;
                if (t->dtype == EH_UINT8) u8[i] = (uint8_t)q;
                else i8[i] = (int8_t)(q - 128);
            }
        }
    }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return EH_OK;
}

long eh_tensor_argmax(const eh_tensor *t) {
    size_t n = eh_tensor_count(t);
    long best = -1;
    float bv = 0;
    for (size_t i = 0; i < n; i++) {
        float v = eh_tensor_get_f32(t, i);
        if (best < 0 || v > bv) {
            best = (long)i;
            bv = v;
        }
    }
    return best;
}

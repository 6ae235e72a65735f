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

/* One axis of the bilinear resize: output i of n samples source position
 * lo + (i + 0.5) * span / n - 0.5. */
typedef struct {
    int32_t i0, i1;
    float w;
} tap;

static void taps(tap *t, uint32_t n, float lo, float span) {
    for (uint32_t i = 0; i < n; i++) {
        float s = lo + ((float)i + 0.5f) * span / (float)n - 0.5f;
        float f = floorf(s);
        t[i].i0 = (int32_t)f;
        t[i].i1 = (int32_t)f + 1;
        t[i].w = s - f;
    }
}

static inline float px(const uint8_t *rgb, uint32_t w, uint32_t h, int32_t x, int32_t y, int c, uint8_t pad) {
    if (x < 0 || y < 0 || (uint32_t)x >= w || (uint32_t)y >= h) return pad;
    return rgb[((size_t)y * w + (size_t)x) * 3 + (size_t)c];
}

int eh_crop_resize_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, float x0, float y0, float x1, float y1,
                       eh_tensor *t, float mean, float std, uint8_t pad) {
    if (t->ndims != 4 || t->dims[0] != 1 || t->dims[3] != 3 || t->dims[1] <= 0 || t->dims[2] <= 0 ||
        eh_tensor_count(t) == 0)
        return eh_fail(EH_UNSUPPORTED, "crop: want an NHWC tensor 1 x H x W x 3");
    if (t->dtype != EH_UINT8 && t->dtype != EH_INT8 && t->dtype != EH_FLOAT32)
        return eh_fail(EH_UNSUPPORTED, "crop: tensor type %s", eh_dtype_name(t->dtype));
    if (!(x1 > x0) || !(y1 > y0) || !isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return eh_fail(EH_BAD_INPUT, "crop: empty or invalid box");
    uint32_t H = (uint32_t)t->dims[1], W = (uint32_t)t->dims[2];
    tap *tx = malloc(sizeof(tap) * W), *ty = malloc(sizeof(tap) * H);
    if (!tx || !ty) {
        free(tx);
        free(ty);
        return eh_fail(EH_TOO_LARGE, "crop: no memory");
    }
    taps(tx, W, x0, x1 - x0);
    taps(ty, H, y0, y1 - y0);
    uint8_t *u8 = eh_tensor_data(t);
    int8_t *i8 = eh_tensor_data(t);
    float *f32 = eh_tensor_data(t);
    for (uint32_t y = 0; y < H; y++) {
        for (uint32_t x = 0; x < W; x++) {
            for (int c = 0; c < 3; c++) {
                float a = px(rgb, w, h, tx[x].i0, ty[y].i0, c, pad), b = px(rgb, w, h, tx[x].i1, ty[y].i0, c, pad);
                float d = px(rgb, w, h, tx[x].i0, ty[y].i1, c, pad), e = px(rgb, w, h, tx[x].i1, ty[y].i1, c, pad);
                float top = a + (b - a) * tx[x].w, bot = d + (e - d) * tx[x].w;
                float v = top + (bot - top) * ty[y].w;
                size_t k = ((size_t)y * W + x) * 3 + (size_t)c;
                if (t->dtype == EH_FLOAT32) f32[k] = (v - mean) / std;
                else if (t->dtype == EH_UINT8) u8[k] = (uint8_t)(v + 0.5f);
                else i8[k] = (int8_t)((int)(v + 0.5f) - 128);
            }
        }
    }
    free(tx);
    free(ty);
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

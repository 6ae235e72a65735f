/*
 * model.c - edgehost C SDK: model calls (ABI 1.3, abi/ABI.md §5.9) and the crop helper a
 * cascade needs. Link it beside edgehost.c and heap.c in plugins that run models.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgehost.h"

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

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

/* The resize is Pillow's BILINEAR resample (Image.resize), emulated exactly: a triangle
 * filter whose support widens with the downscale factor (antialiased), weights normalised
 * then turned into 22-bit fixed point, a horizontal pass into an 8-bit image, then a
 * vertical pass, each rounding as Pillow does. A Python chain's Image.crop + resize and this
 * give the same bytes on the same decoded pixels. */
#define EH_PREC 22

typedef struct {
    int32_t *start, *len; /* source window of output i (crop coordinates) */
    int32_t *w;           /* len[i] fixed-point weights of output i at w[i * k] */
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
    a->w = malloc(sizeof(int32_t) * n_out * (size_t)a->k);
    double *tmp = malloc(sizeof(double) * (size_t)a->k);
    if (!a->start || !a->len || !a->w || !tmp) {
        free(tmp);
        return -1;
    }
    for (uint32_t i = 0; i < n_out; i++) {
        double c = ((double)i + 0.5) * scale;
        int32_t lo = (int32_t)(c - support + 0.5), hi = (int32_t)(c + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_src) hi = n_src;
        if (hi - lo > a->k) hi = lo + a->k;
        double sum = 0;
        for (int32_t x = lo; x < hi; x++) {
            double t = ((double)x - c + 0.5) / fs;
            if (t < 0) t = -t;
            tmp[x - lo] = t < 1 ? 1 - t : 0;
            sum += tmp[x - lo];
        }
        int32_t *w = a->w + (size_t)i * a->k;
        for (int32_t x = lo; x < hi; x++) {
            double v = sum != 0 ? tmp[x - lo] / sum : 0;
            w[x - lo] = v < 0 ? (int32_t)(-0.5 + v * (1 << EH_PREC)) : (int32_t)(0.5 + v * (1 << EH_PREC));
        }
        a->start[i] = lo;
        a->len[i] = hi - lo;
    }
    free(tmp);
    return 0;
}

static inline uint8_t clip8(int32_t v) {
    v >>= EH_PREC;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

#ifdef __wasm_simd128__
/* The horizontal pass in Wasm SIMD128, 4 source pixels (12 bytes) per step: one 16-byte load
 * widened to three 32-bit vectors (bytes R G B R, G B R G, B R G B), multiplied by the same
 * layout of the output's weights, prepared once per output column (hw_init), and summed per
 * channel at the end. Integer sums: the same bytes as the scalar loop. */
typedef struct {
    v128_t *w;     /* per output column, ng[x] groups of 3 weight vectors (zero past the window) */
    int32_t *off;  /* first group of column x */
    int32_t *ng;   /* groups of column x */
} hweights;

static void hw_free(hweights *hw) {
    free(hw->w);
    free(hw->off);
    free(hw->ng);
}

static int hw_init(hweights *hw, const axis *ax, const int32_t *padk, int32_t cx0, uint32_t W) {
    hw->off = malloc(sizeof(int32_t) * W);
    hw->ng = malloc(sizeof(int32_t) * W);
    hw->w = NULL;
    if (!hw->off || !hw->ng) return -1;
    int32_t total = 0;
    for (uint32_t x = 0; x < W; x++) {
        hw->off[x] = total;
        hw->ng[x] = (padk[3 * x + 1] - padk[3 * x] + 3) / 4;
        total += hw->ng[x];
    }
    hw->w = calloc((size_t)total * 3 + 1, sizeof(v128_t));
    if (!hw->w) return -1;
    for (uint32_t x = 0; x < W; x++) {
        int32_t *wv = (int32_t *)(hw->w + (size_t)hw->off[x] * 3);
        const int32_t *wt = ax->w + (size_t)x * ax->k;
        int32_t lo = cx0 + ax->start[x], clo = padk[3 * x], chi = padk[3 * x + 1];
        for (int32_t c = clo; c < chi; c++) /* pixel j of group g: bytes 12 g + 3 j + 0..2 */
            for (int ch = 0; ch < 3; ch++) wv[12 * ((c - clo) / 4) + 3 * ((c - clo) % 4) + ch] = wt[c - lo];
    }
    return 0;
}

/* One row of the horizontal pass; end: one past the image's last byte (no load reaches past
 * it: a column whose last load would is left to the scalar loop). */
static void hpass_row(const hweights *hw, const int32_t *padk, const uint8_t *row, const uint8_t *end, uint32_t W,
                      const axis *ax, int32_t cx0, uint8_t *o) {
    for (uint32_t x = 0; x < W; x++) {
        int32_t clo = padk[3 * x], ng = hw->ng[x];
        const uint8_t *p = row + (size_t)clo * 3;
        int32_t base = (1 << (EH_PREC - 1)) + padk[3 * x + 2];
        if (p + 12 * ng + 4 > end) { /* the scalar loop */
            const int32_t *wt = ax->w + (size_t)x * ax->k;
            int32_t lo = cx0 + ax->start[x], chi = padk[3 * x + 1], r = base, g = base, b = base;
            for (int32_t c = clo; c < chi; c++, p += 3) {
                int32_t q = wt[c - lo];
                r += q * p[0];
                g += q * p[1];
                b += q * p[2];
            }
            o[3 * x] = clip8(r), o[3 * x + 1] = clip8(g), o[3 * x + 2] = clip8(b);
            continue;
        }
        const v128_t *wv = hw->w + (size_t)hw->off[x] * 3;
        v128_t a0 = wasm_i32x4_splat(0), a1 = a0, a2 = a0;
        for (int32_t k = 0; k < ng; k++, p += 12, wv += 3) {
            v128_t v = wasm_v128_load(p);
            v128_t lo16 = wasm_u16x8_extend_low_u8x16(v), hi16 = wasm_u16x8_extend_high_u8x16(v);
            a0 = wasm_i32x4_add(a0, wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(lo16), wv[0]));
            a1 = wasm_i32x4_add(a1, wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(lo16), wv[1]));
            a2 = wasm_i32x4_add(a2, wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(hi16), wv[2]));
        }
        /* a0 = R G B R, a1 = G B R G, a2 = B R G B: lanes 0..2 of the sum are R, G, B */
        v128_t s = wasm_i32x4_add(wasm_i32x4_add(a0, wasm_i32x4_shuffle(a0, a1, 3, 4, 5, 0)),
                                  wasm_i32x4_add(wasm_i32x4_shuffle(a1, a2, 2, 3, 4, 0), wasm_i32x4_shuffle(a2, a2, 1, 2, 3, 0)));
        s = wasm_i32x4_shr(wasm_i32x4_add(s, wasm_i32x4_splat(base)), EH_PREC);
        v128_t px = wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(s, s), wasm_i16x8_splat(0)); /* clip8 */
        o[3 * x] = (uint8_t)wasm_u8x16_extract_lane(px, 0), o[3 * x + 1] = (uint8_t)wasm_u8x16_extract_lane(px, 1);
        o[3 * x + 2] = (uint8_t)wasm_u8x16_extract_lane(px, 2);
    }
}
#endif

int eh_crop_resize_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, double x0, double y0, double x1, double y1,
                       eh_tensor *t, float mean, float std, uint8_t pad) {
    if (t->ndims != 4 || t->dims[0] != 1 || t->dims[3] != 3 || t->dims[1] <= 0 || t->dims[2] <= 0 ||
        eh_tensor_count(t) == 0)
        return eh_fail(EH_UNSUPPORTED, "crop: want an NHWC tensor 1 x H x W x 3");
    if (t->dtype != EH_UINT8 && t->dtype != EH_INT8 && t->dtype != EH_FLOAT32)
        return eh_fail(EH_UNSUPPORTED, "crop: tensor type %s", eh_dtype_name(t->dtype));
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || fabs(x0) > 1e6 || fabs(y0) > 1e6 ||
        fabs(x1) > 1e6 || fabs(y1) > 1e6)
        return eh_fail(EH_BAD_INPUT, "crop: invalid box");
    /* Whole pixels, rounded half to even as Python's round(): [cx0, cx0 + cw) x [cy0, cy0 + ch). */
    int32_t cx0 = (int32_t)nearbyint(x0), cy0 = (int32_t)nearbyint(y0);
    int32_t cw = (int32_t)nearbyint(x1) - cx0, ch = (int32_t)nearbyint(y1) - cy0;
    if (cw < 1 || ch < 1) return eh_fail(EH_BAD_INPUT, "crop: empty box");
    uint32_t H = (uint32_t)t->dims[1], W = (uint32_t)t->dims[2];
    axis ax = {0}, ay = {0};
    uint8_t *tmp = NULL;
    int32_t *padk = NULL;
    if (axis_init(&ax, W, cw) != 0 || axis_init(&ay, H, ch) != 0) goto nomem;
    /* The crop rows the vertical pass reads. */
    int32_t r0 = ay.start[0], r1 = ay.start[H - 1] + ay.len[H - 1];
    tmp = malloc((size_t)(r1 - r0) * W * 3);
    padk = malloc(sizeof(int32_t) * W * 3); /* per output column: in-image window, and pad's share */
    if (!tmp || !padk) goto nomem;
    for (uint32_t x = 0; x < W; x++) {
        int32_t lo = cx0 + ax.start[x], hi = lo + ax.len[x];
        int32_t clo = lo < 0 ? 0 : lo, chi = hi > (int32_t)w ? (int32_t)w : hi;
        if (chi < clo) chi = clo;
        int32_t out = 0;
        const int32_t *wt = ax.w + (size_t)x * ax.k;
        for (int32_t k = 0; k < ax.len[x]; k++)
            if (lo + k < clo || lo + k >= chi) out += wt[k];
        padk[3 * x] = clo, padk[3 * x + 1] = chi, padk[3 * x + 2] = out * pad;
    }
    /* Horizontal pass into an 8-bit image, as Pillow does. */
#ifdef __wasm_simd128__
    hweights hw = {0};
    if (hw_init(&hw, &ax, padk, cx0, W) != 0) {
        hw_free(&hw);
        goto nomem;
    }
#endif
    for (int32_t y = r0; y < r1; y++) {
        int32_t iy = cy0 + y;
        uint8_t *o = tmp + (size_t)(y - r0) * W * 3;
        int inside = iy >= 0 && (uint32_t)iy < h;
        const uint8_t *row = inside ? rgb + (size_t)iy * w * 3 : NULL;
#ifdef __wasm_simd128__
        if (inside) {
            hpass_row(&hw, padk, row, rgb + (size_t)w * h * 3, W, &ax, cx0, o);
            continue;
        }
#endif
        for (uint32_t x = 0; x < W; x++) {
            const int32_t *wt = ax.w + (size_t)x * ax.k;
            int32_t lo = cx0 + ax.start[x], clo = padk[3 * x], chi = padk[3 * x + 1];
            int32_t base = (1 << (EH_PREC - 1)) + padk[3 * x + 2];
            int32_t r = base, g = base, b = base;
            if (inside) {
                const uint8_t *p = row + (size_t)clo * 3;
                for (int32_t c = clo; c < chi; c++, p += 3) {
                    int32_t q = wt[c - lo];
                    r += q * p[0];
                    g += q * p[1];
                    b += q * p[2];
                }
            } else {
                int32_t all = 0;
                for (int32_t k = 0; k < ax.len[x]; k++) all += wt[k];
                r = g = b = (1 << (EH_PREC - 1)) + all * pad;
            }
            o[3 * x] = clip8(r), o[3 * x + 1] = clip8(g), o[3 * x + 2] = clip8(b);
        }
    }
#ifdef __wasm_simd128__
    hw_free(&hw);
#endif
    /* Vertical pass into the tensor. */
    uint8_t *u8 = eh_tensor_data(t);
    int8_t *i8 = eh_tensor_data(t);
    float *f32 = eh_tensor_data(t);
    float inv = 1.0f / std;
    const uint32_t n3 = W * 3;
    int32_t *acc = padk; /* W * 3 ints: reuse */
    for (uint32_t y = 0; y < H; y++) {
        const int32_t *wt = ay.w + (size_t)y * ay.k;
        uint32_t x0 = 0; /* the columns done by the SIMD loop */
#ifdef __wasm_simd128__
        /* 16 bytes of the row at a time, the sums in four 32-bit vectors, clip8 by saturating
         * narrowings; the float conversion is the scalar one's ((v - mean) * inv, no FMA). */
        const uint8_t *src0 = tmp + (size_t)(ay.start[y] - r0) * n3;
        for (; x0 + 16 <= n3; x0 += 16) {
            v128_t s0 = wasm_i32x4_splat(1 << (EH_PREC - 1)), s1 = s0, s2 = s0, s3 = s0;
            const uint8_t *src = src0 + x0;
            for (int32_t k = 0; k < ay.len[y]; k++, src += n3) {
                v128_t v = wasm_v128_load(src), c = wasm_i32x4_splat(wt[k]);
                v128_t lo = wasm_u16x8_extend_low_u8x16(v), hi = wasm_u16x8_extend_high_u8x16(v);
                s0 = wasm_i32x4_add(s0, wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(lo), c));
                s1 = wasm_i32x4_add(s1, wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(lo), c));
                s2 = wasm_i32x4_add(s2, wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(hi), c));
                s3 = wasm_i32x4_add(s3, wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(hi), c));
            }
            v128_t px = wasm_u8x16_narrow_i16x8(
                wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(s0, EH_PREC), wasm_i32x4_shr(s1, EH_PREC)),
                wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(s2, EH_PREC), wasm_i32x4_shr(s3, EH_PREC)));
            size_t o = (size_t)y * n3 + x0;
            if (t->dtype == EH_UINT8) wasm_v128_store(u8 + o, px);
            else if (t->dtype == EH_INT8) wasm_v128_store(i8 + o, wasm_v128_xor(px, wasm_i8x16_splat((int8_t)0x80)));
            else {
                v128_t m = wasm_f32x4_splat(mean), q = wasm_f32x4_splat(inv);
                v128_t lo = wasm_u16x8_extend_low_u8x16(px), hi = wasm_u16x8_extend_high_u8x16(px);
                v128_t f[4] = {wasm_u32x4_extend_low_u16x8(lo), wasm_u32x4_extend_high_u16x8(lo),
                               wasm_u32x4_extend_low_u16x8(hi), wasm_u32x4_extend_high_u16x8(hi)};
                for (int i = 0; i < 4; i++)
                    wasm_v128_store(f32 + o + 4 * i, wasm_f32x4_mul(wasm_f32x4_sub(wasm_f32x4_convert_i32x4(f[i]), m), q));
            }
        }
#endif
        for (uint32_t x = x0; x < n3; x++) acc[x] = 1 << (EH_PREC - 1);
        for (int32_t k = 0; k < ay.len[y]; k++) {
            const uint8_t *src = tmp + (size_t)(ay.start[y] + k - r0) * n3;
            int32_t c = wt[k];
            for (uint32_t x = x0; x < n3; x++) acc[x] += c * (int32_t)src[x];
        }
        size_t o = (size_t)y * n3;
        for (uint32_t x = x0; x < n3; x++) {
            uint8_t v = clip8(acc[x]);
            if (t->dtype == EH_FLOAT32) f32[o + x] = ((float)v - mean) * inv;
            else if (t->dtype == EH_UINT8) u8[o + x] = v;
            else i8[o + x] = (int8_t)((int)v - 128);
        }
    }
    free(tmp);
    free(padk);
    axis_free(&ax);
    axis_free(&ay);
    return EH_OK;
nomem:
    free(tmp);
    free(padk);
    axis_free(&ax);
    axis_free(&ay);
    return eh_fail(EH_TOO_LARGE, "crop: no memory");
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

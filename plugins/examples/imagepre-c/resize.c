/*
 * resize.c - bilinear resize of a decoded image into a model input tensor (NHWC, C = 3 or 1),
 * uint8, int8 (pixel - 128) or float32 ((pixel - mean) / std). No edgehost dependency, so the
 * native tests and benchmarks under test/ build it too.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

typedef uint16_t u16x4 __attribute__((vector_size(8)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
typedef uint8_t u8x4 __attribute__((vector_size(4)));

typedef img_tap tap;

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

static int resize_taps(const img *im, const tap *tx, const tap *ty, void *dst, int kind, uint32_t H, uint32_t W,
                       uint32_t C, const float mean[3], const float std[3]);

/* Resize im to H x W x C and store it at dst as kind (IMG_OUT_*).
 *
 * Separable and in fixed point: each output row first blends its two source rows (weights of
 * 256, 16-bit sums) over the source columns the horizontal taps use, then blends columns
 * (32-bit sums) and rounds once. The value is the bilinear sample to 1/65536, so uint8 and
 * int8 outputs equal the float computation's rounding except at exact halves. Per output
 * row this costs one pass over the source row and one over the output row, with no float
 * arithmetic for the quantised dtypes. */
int img_resize(const img *im, void *dst, int kind, uint32_t H, uint32_t W, uint32_t C, const float mean[3],
               const float std[3]) {
    tap *tx = malloc(sizeof(tap) * W), *ty = malloc(sizeof(tap) * H);
    int rc = IMG_NOMEM;
    if (tx && ty) {
        make_taps(tx, W, im->w);
        make_taps(ty, H, im->h);
        rc = resize_taps(im, tx, ty, dst, kind, H, W, C, mean, std);
    }
    free(tx);
    free(ty);
    return rc;
}

/* img_resize with the taps given (their indices into im). */
static int resize_taps(const img *im, const tap *tx, const tap *ty, void *dst, int kind, uint32_t H, uint32_t W,
                       uint32_t C, const float mean[3], const float std[3]) {
    uint16_t *row = malloc(sizeof(uint16_t) * ((size_t)im->w * 3 + 1)); /* + 1: the vector loads' 4th lane */
    if (!row) return IMG_NOMEM;
    uint8_t *u8 = dst;
    int8_t *i8 = dst;
    float *f32 = dst;
    float scale[3], offset[3]; /* float32: v/65536 * (1/std) - mean/std */
    for (int c = 0; c < 3; c++) {
        scale[c] = 1.0f / (65536.0f * std[c]);
        offset[c] = -mean[c] / std[c];
    }
    size_t stride = (size_t)im->w * 3, k = 0;
    for (uint32_t y = 0; y < H; y++) {
        const uint8_t *r0 = im->pix + ty[y].i0 * stride, *r1 = im->pix + ty[y].i1 * stride;
        uint32_t wy = ty[y].w, vy = 256 - wy;
        for (size_t i = 0; i < stride; i++) row[i] = (uint16_t)(r0[i] * vy + r1[i] * wy);
        if (C == 3 && kind == IMG_OUT_U8) { /* the common case, without per-pixel branches */
            uint32_t x = 0;
            /* One pixel's three channels in the lanes of a 4-wide vector (Wasm SIMD128, SSE
             * natively): the same arithmetic; the 4th byte stored lands on the next pixel's
             * first, written after it, so the row's last pixel is left to the scalar loop. */
            for (; x + 1 < W; x++, k += 3) {
                u16x4 a4, b4;
                memcpy(&a4, row + (size_t)tx[x].i0 * 3, sizeof a4);
                memcpy(&b4, row + (size_t)tx[x].i1 * 3, sizeof b4);
                i32x4 a = __builtin_convertvector(a4, i32x4), b = __builtin_convertvector(b4, i32x4);
                u8x4 o = __builtin_convertvector(((a << 8) + (b - a) * (int32_t)tx[x].w + 32768) >> 16, u8x4);
                memcpy(u8 + k, &o, sizeof o);
            }
            for (; x < W; x++, k += 3) {
                const uint16_t *a = row + (size_t)tx[x].i0 * 3, *b = row + (size_t)tx[x].i1 * 3;
                uint32_t wx = tx[x].w;
                /* a * (256 - wx) + b * wx = 256 a + (b - a) wx: one multiply per channel */
                u8[k] = (uint8_t)((((int32_t)a[0] << 8) + ((int32_t)b[0] - a[0]) * (int32_t)wx + 32768) >> 16);
                u8[k + 1] = (uint8_t)((((int32_t)a[1] << 8) + ((int32_t)b[1] - a[1]) * (int32_t)wx + 32768) >> 16);
                u8[k + 2] = (uint8_t)((((int32_t)a[2] << 8) + ((int32_t)b[2] - a[2]) * (int32_t)wx + 32768) >> 16);
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
            switch (kind) {
            case IMG_OUT_U8:
                for (uint32_t c = 0; c < C; c++) u8[k++] = (uint8_t)((px[c] + 32768) >> 16);
                break;
            case IMG_OUT_I8:
                for (uint32_t c = 0; c < C; c++) i8[k++] = (int8_t)((int)((px[c] + 32768) >> 16) - 128);
                break;
            default:
                for (uint32_t c = 0; c < C; c++) f32[k++] = (float)px[c] * scale[c] + offset[c];
                break;
            }
        }
    }
    free(row);
    return IMG_OK;
}

/* The distinct source indices the taps read, ascending, into list (room for 2 n); each tap's
 * indices rewritten to positions in the list. Returns the count. */
static uint32_t distinct(tap *t, uint32_t n, uint32_t *list) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) list[k++] = t[i].i0, list[k++] = t[i].i1;
    for (uint32_t i = 1; i < k; i++) { /* insertion sort: the list is almost sorted */
        uint32_t v = list[i], j = i;
        for (; j > 0 && list[j - 1] > v; j--) list[j] = list[j - 1];
        list[j] = v;
    }
    uint32_t m = 0;
    for (uint32_t i = 0; i < k; i++)
        if (m == 0 || list[m - 1] != list[i]) list[m++] = list[i];
    for (uint32_t i = 0; i < n; i++) {
        t[i].i0 = img_find(list, m, t[i].i0);
        t[i].i1 = img_find(list, m, t[i].i1);
    }
    return m;
}

uint32_t img_find(const uint32_t *list, uint32_t n, uint32_t v) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (list[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && list[lo] == v ? lo : UINT32_MAX;
}

int img_sampler_init(img_sampler *sp, uint32_t w, uint32_t h, uint32_t W, uint32_t H) {
    memset(sp, 0, sizeof *sp);
    sp->tx = malloc(sizeof(tap) * W), sp->ty = malloc(sizeof(tap) * H);
    sp->cols = malloc(sizeof(uint32_t) * 2 * (size_t)W), sp->rows = malloc(sizeof(uint32_t) * 2 * (size_t)H);
    if (!sp->tx || !sp->ty || !sp->cols || !sp->rows) {
        img_sampler_free(sp);
        return IMG_NOMEM;
    }
    sp->W = W, sp->H = H;
    make_taps(sp->tx, W, w);
    make_taps(sp->ty, H, h);
    sp->ncols = distinct(sp->tx, W, sp->cols);
    sp->nrows = distinct(sp->ty, H, sp->rows);
    sp->s.w = sp->ncols, sp->s.h = sp->nrows;
    sp->s.pix = calloc((size_t)sp->ncols * sp->nrows, 3);
    if (!sp->s.pix) {
        img_sampler_free(sp);
        return IMG_NOMEM;
    }
    return IMG_OK;
}

int img_sampler_resize(const img_sampler *sp, void *dst, int kind, uint32_t C, const float mean[3],
                       const float std[3]) {
    return resize_taps(&sp->s, sp->tx, sp->ty, dst, kind, sp->H, sp->W, C, mean, std);
}

void img_sampler_free(img_sampler *sp) {
    free(sp->tx);
    free(sp->ty);
    free(sp->cols);
    free(sp->rows);
    free(sp->s.pix);
    memset(sp, 0, sizeof *sp);
}


/* Resize a YCbCr image given as planes and convert only the output pixels to RGB (C = 3).
 *
 * Bilinear resampling is linear, and so is YCbCr -> RGB before its clamp, so resampling the
 * planes and converting afterwards equals converting and then resampling, up to rounding and
 * the clamp: the RGB intermediate of the whole image is never built, and only H x W pixels
 * are converted. Chroma stays at its own resolution: sample (x, y) of the full-resolution
 * image reads chroma (x >> shx, y >> shy) (replication, as the decoder's own upsampling), so
 * a chroma tap is the luma tap's two positions shifted, with the same weight. The resampled
 * values keep 8 fractional bits into the conversion (Go's color.YCbCrToRGB coefficients, in
 * units of 2^-22, truncated at the end as that function truncates; float32 takes off the 1/2 that
 * truncation loses on average). */
#ifdef __wasm_simd128__
/* Interleave 4 R, 4 G, 4 B (32-bit lanes) as R0 G0 B0 R1 | G1 B1 R2 G2 | B2 R3 G3 B3. */
static inline void interleave3(v128_t r, v128_t g, v128_t b, v128_t o[3]) {
    v128_t rg = wasm_i32x4_shuffle(r, g, 0, 4, 1, 5); /* R0 G0 R1 G1 */
    o[0] = wasm_i32x4_shuffle(rg, b, 0, 1, 4, 2);    /* R0 G0 B0 R1 */
    v128_t gr = wasm_i32x4_shuffle(g, r, 1, 6, 2, 7); /* G1 R2 G2 R3 */
    o[1] = wasm_i32x4_shuffle(gr, b, 0, 5, 1, 2);    /* G1 B1 R2 G2 */
    v128_t bg = wasm_i32x4_shuffle(b, g, 2, 7, 3, 3); /* B2 G3 B3 . */
    o[2] = wasm_i32x4_shuffle(bg, r, 0, 7, 1, 2);    /* B2 R3 G3 B3 */
}

/* 4 lanes of ry (or rb, rr) at the given indices. */
static inline v128_t gather16(const uint16_t *p, const uint32_t *i) {
    v128_t v = wasm_i32x4_splat(0);
    v = wasm_v128_load16_lane(p + i[0], v, 0);
    v = wasm_v128_load16_lane(p + i[1], v, 2);
    v = wasm_v128_load16_lane(p + i[2], v, 4);
    v = wasm_v128_load16_lane(p + i[3], v, 6);
    return v; /* u16 in the low half of each 32-bit lane */
}

/* The blend of two taps of 4 outputs, as the scalar loop: 256 a + (b - a) w, + 128, >> 8. */
static inline v128_t blend4(const uint16_t *row, const uint32_t *i0, const uint32_t *i1, v128_t wx) {
    v128_t a = gather16(row, i0), b = gather16(row, i1);
    v128_t v = wasm_i32x4_add(wasm_i32x4_shl(a, 8), wasm_i32x4_mul(wasm_i32x4_sub(b, a), wx));
    return wasm_u32x4_shr(wasm_i32x4_add(v, wasm_i32x4_splat(128)), 8);
}

/* img_resize_ycc's output columns x0.. of one row, 4 at a time (Wasm SIMD128); cols holds, per
 * output column, i0 and i1 of luma, i0 and i1 of chroma and the weight, each in its own array
 * of W. The same integer arithmetic as the scalar loop, lane by lane; returns the columns done. */
static uint32_t ycc_cols4(const uint16_t *ry, const uint16_t *rb, const uint16_t *rr, const uint32_t *cols,
                          uint32_t W, int kind, const float scale[3], const float offset[3], void *dst, size_t k) {
    const uint32_t *yi0 = cols, *yi1 = cols + W, *ci0 = cols + 2 * W, *ci1 = cols + 3 * W, *wxs = cols + 4 * W;
    const v128_t zero = wasm_i32x4_splat(0), top = wasm_i32x4_splat(255 << 22);
    uint32_t x = 0;
    for (; x + 4 <= W; x += 4, k += 12) {
        v128_t wx = wasm_v128_load(wxs + x);
        v128_t yy = wasm_i32x4_mul(blend4(ry, yi0 + x, yi1 + x, wx), wasm_i32x4_splat(16448));
        v128_t cb = wasm_i32x4_sub(blend4(rb, ci0 + x, ci1 + x, wx), wasm_i32x4_splat(32768));
        v128_t cr = wasm_i32x4_sub(blend4(rr, ci0 + x, ci1 + x, wx), wasm_i32x4_splat(32768));
        v128_t c[3] = {wasm_i32x4_add(yy, wasm_i32x4_mul(cr, wasm_i32x4_splat(22970))),
                       wasm_i32x4_sub(wasm_i32x4_sub(yy, wasm_i32x4_mul(cb, wasm_i32x4_splat(5639))),
                                      wasm_i32x4_mul(cr, wasm_i32x4_splat(11700))),
                       wasm_i32x4_add(yy, wasm_i32x4_mul(cb, wasm_i32x4_splat(29033)))};
        /* the scalar loop's clamp: all three channels, in the pixels where one is outside 0..255.x */
        v128_t out = wasm_i32x4_ne(wasm_v128_and(wasm_v128_or(wasm_v128_or(c[0], c[1]), c[2]), wasm_i32x4_splat(~((256 << 22) - 1))), zero);
        for (int i = 0; i < 3; i++) c[i] = wasm_v128_bitselect(wasm_i32x4_min(wasm_i32x4_max(c[i], zero), top), c[i], out);
        v128_t o[3];
        if (kind == IMG_OUT_F32) {
            v128_t f[3];
            for (int i = 0; i < 3; i++) {
                v128_t t = wasm_i32x4_min(wasm_i32x4_max(wasm_i32x4_sub(c[i], wasm_i32x4_splat(1 << 21)), zero), top);
                f[i] = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(t), wasm_f32x4_splat(scale[i])),
                                      wasm_f32x4_splat(offset[i]));
            }
            interleave3(f[0], f[1], f[2], o);
            float *f32 = (float *)dst + k;
            wasm_v128_store(f32, o[0]), wasm_v128_store(f32 + 4, o[1]), wasm_v128_store(f32 + 8, o[2]);
            continue;
        }
        for (int i = 0; i < 3; i++) c[i] = wasm_i32x4_shr(c[i], 22);
        interleave3(c[0], c[1], c[2], o);
        v128_t px = wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(o[0], o[1]), wasm_i16x8_narrow_i32x4(o[2], zero));
        if (kind == IMG_OUT_I8) px = wasm_v128_xor(px, wasm_i8x16_splat((int8_t)0x80)); /* v - 128 */
        uint8_t *u8 = (uint8_t *)dst + k;
        wasm_v128_store64_lane(u8, px, 0);
        wasm_v128_store32_lane(u8 + 8, px, 2);
    }
    return x;
}
#endif

int img_resize_ycc(const img_plane pl[3], uint32_t w, uint32_t h, void *dst, int kind, uint32_t H, uint32_t W,
                   const float mean[3], const float std[3]) {
    const uint32_t shx = pl[1].shx, shy = pl[1].shy; /* both chroma planes alike (checked by the caller) */
    uint32_t wc = (w + (1u << shx) - 1) >> shx;
    tap *tx = malloc(sizeof(tap) * W * 2), *ty = malloc(sizeof(tap) * H);
    uint16_t *ry = malloc(sizeof(uint16_t) * ((size_t)w + 2 * (size_t)wc));
    if (!tx || !ty || !ry) {
        free(tx);
        free(ty);
        free(ry);
        return IMG_NOMEM;
    }
    tap *tc = tx + W; /* chroma column taps */
    make_taps(tx, W, w);
    make_taps(ty, H, h);
    for (uint32_t x = 0; x < W; x++) tc[x] = (tap){tx[x].i0 >> shx, tx[x].i1 >> shx, tx[x].w};
#ifdef __wasm_simd128__
    uint32_t *cols = malloc(sizeof(uint32_t) * 5 * (size_t)W); /* the taps as arrays (ycc_cols4) */
    if (!cols) {
        free(tx);
        free(ty);
        free(ry);
        return IMG_NOMEM;
    }
    for (uint32_t x = 0; x < W; x++)
        cols[x] = tx[x].i0, cols[W + x] = tx[x].i1, cols[2 * W + x] = tc[x].i0, cols[3 * W + x] = tc[x].i1,
        cols[4 * W + x] = tx[x].w;
#endif
    uint16_t *rb = ry + w, *rr = rb + wc;
    uint8_t *u8 = dst;
    int8_t *i8 = dst;
    float *f32 = dst;
    float scale[3], offset[3]; /* float32: v/2^22 * (1/std) - mean/std */
    for (int c = 0; c < 3; c++) {
        scale[c] = 1.0f / (4194304.0f * std[c]);
        offset[c] = -mean[c] / std[c];
    }
    size_t k = 0;
    for (uint32_t y = 0; y < H; y++) {
        uint32_t wy = ty[y].w, vy = 256 - wy;
        const uint8_t *y0 = pl[0].p + ty[y].i0 * pl[0].stride, *y1 = pl[0].p + ty[y].i1 * pl[0].stride;
        for (uint32_t i = 0; i < w; i++) ry[i] = (uint16_t)(y0[i] * vy + y1[i] * wy);
        size_t c0 = (ty[y].i0 >> shy) * pl[1].stride, c1 = (ty[y].i1 >> shy) * pl[1].stride;
        const uint8_t *b0 = pl[1].p + c0, *b1 = pl[1].p + c1, *r0 = pl[2].p + c0, *r1 = pl[2].p + c1;
        for (uint32_t i = 0; i < wc; i++) {
            rb[i] = (uint16_t)(b0[i] * vy + b1[i] * wy);
            rr[i] = (uint16_t)(r0[i] * vy + r1[i] * wy);
        }
        uint32_t x = 0;
#ifdef __wasm_simd128__
        x = ycc_cols4(ry, rb, rr, cols, W, kind, scale, offset, dst, k);
        k += 3 * (size_t)x;
#endif
        for (; x < W; x++) {
            int32_t wx = (int32_t)tx[x].w; /* a * (256 - wx) + b * wx = 256 a + (b - a) wx */
            int32_t ya = ry[tx[x].i0], ba = rb[tc[x].i0], ra = rr[tc[x].i0];
            uint32_t yv = (uint32_t)((ya << 8) + (ry[tx[x].i1] - ya) * wx);
            uint32_t bv = (uint32_t)((ba << 8) + (rb[tc[x].i1] - ba) * wx);
            uint32_t rv = (uint32_t)((ra << 8) + (rr[tc[x].i1] - ra) * wx);
            /* 8 fractional bits: y 0..65280, cb and cr -32768..32512 */
            int32_t yy = (int32_t)((yv + 128) >> 8) * 16448; /* 0x10101 / 4 */
            int32_t cb = (int32_t)((bv + 128) >> 8) - 32768, cr = (int32_t)((rv + 128) >> 8) - 32768;
            int32_t v[3] = {yy + 22970 * cr, yy - 5639 * cb - 11700 * cr, yy + 29033 * cb};
            /* clamp to 0..255 when some channel is outside 0..255.x */
            if (((v[0] | v[1] | v[2]) & ~((256 << 22) - 1)) != 0)
                for (int c = 0; c < 3; c++) v[c] = v[c] < 0 ? 0 : v[c] > (255 << 22) ? 255 << 22 : v[c];
            switch (kind) {
            case IMG_OUT_U8:
                u8[k] = (uint8_t)(v[0] >> 22), u8[k + 1] = (uint8_t)(v[1] >> 22), u8[k + 2] = (uint8_t)(v[2] >> 22);
                break;
            case IMG_OUT_I8:
                for (int c = 0; c < 3; c++) i8[k + c] = (int8_t)((v[c] >> 22) - 128);
                break;
            default:
                /* Minus 1/2: the truncation above (and Go's, in the RGB path) loses 1/2 on
                 * average, which float32 would not otherwise lose. */
                for (int c = 0; c < 3; c++) {
                    int32_t t = v[c] - (1 << 21);
                    t = t < 0 ? 0 : t > (255 << 22) ? 255 << 22 : t;
                    f32[k + c] = (float)t * scale[c] + offset[c];
                }
                break;
            }
            k += 3;
        }
    }
#ifdef __wasm_simd128__
    free(cols);
#endif
    free(tx);
    free(ty);
    free(ry);
    return IMG_OK;
}

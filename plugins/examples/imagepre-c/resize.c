/*
 * resize.c - bilinear resize of a decoded image into a model input tensor (NHWC, C = 3 or 1),
 * uint8, int8 (pixel - 128) or float32 ((pixel - mean) / std). No edgehost dependency, so the
 * native tests and benchmarks under test/ build it too.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

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
        for (uint32_t x = 0; x < W; x++) {
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
    free(tx);
    free(ty);
    free(ry);
    return IMG_OK;
}

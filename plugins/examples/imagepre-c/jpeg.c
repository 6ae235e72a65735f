/*
 * jpeg.c - baseline JPEG decoder written from ITU-T T.81 (ISO/IEC 10918-1) and JFIF.
 *
 * Supports: baseline and extended sequential DCT with Huffman coding (SOF0, SOF1) and
 * progressive DCT with Huffman coding (SOF2: spectral selection, successive approximation,
 * EOB runs), 8-bit precision, 1 component (greyscale), 3 (YCbCr, or RGB when an Adobe
 * APP14 marker says transform 0 or the component ids are 'R','G','B') or 4 (CMYK or YCCK
 * with an Adobe APP14 marker, in Adobe's inverted convention: cmyk_pixel), any sampling
 * factors 1..4, interleaved and non-interleaved scans, restart intervals, 8- and 16-bit
 * quantisation tables. Refused with IMG_UNSUPPORTED: lossless, hierarchical and arithmetic
 * coded JPEGs, 12-bit precision, 4 components without an Adobe marker, DNL-defined heights.
 *
 * A progressive JPEG's scans each refine every block, so its coefficients are held until the
 * last scan (T.81 G.1.2): per block only the N x N that the chosen scale reads (int16), and a
 * 64-bit mask of which coefficients are non-zero, since a refinement scan's bits depend on
 * that for all 64. With the block's N x N samples, that is 11 bytes a block at 1/8 (a 12 Mpx
 * 4:2:0 frame: 3 MiB) and 200 at full size (55 MiB: over the shipped 32 MiB budget, refused
 * with IMG_TOO_LARGE). The N x N
 * transform after the last scan is the sequential path's, so a progressive file decodes to
 * exactly the bytes of its sequential twin (the same coefficients) at every scale.
 *
 * Chroma is upsampled by replication and YCbCr is converted to RGB with the same fixed-point
 * formula as Go's image/color, so output differs from Go's image/jpeg only by IDCT rounding.
 *
 * Scaled decoding (jpeg_decode_scaled): when the caller needs no more than 1/2, 1/4 or 1/8 of
 * the image's size, each 8x8 block is transformed straight to 4x4, 2x2 or 1x1 samples by an
 * N-point IDCT of its N x N lowest-frequency coefficients, as libjpeg's scaled IDCT and
 * Pillow's draft() do: no full-resolution plane is ever built, and a block whose only
 * coefficient is DC (most blocks at 1/8) costs a fill. Every coefficient is still entropy-
 * decoded, so corrupt data is detected the same way at every scale; past the last one that
 * reaches the output, a skip table consumes several whole symbols per look-up. 1/8 and 1/4
 * scale have their own block functions (decode_block_dc, decode_block_2) with no coefficient
 * array; the 8- and 4-point IDCTs are separable butterflies on 4-wide float vectors (idct8,
 * idct4; Wasm SIMD128 with -msimd128), and with -msimd128 the stores to bytes and the YCbCr
 * to RGB conversion use SIMD128 intrinsics (scalar loops otherwise, giving the same bytes).
 * Every read is bounds-checked; corrupt or truncated data returns IMG_BAD.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

int jpeg_sniff(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff; }

/* Natural (row-major) index of the k-th coefficient in zig-zag order (T.81 figure A.6). */
static const uint8_t zigzag[64] = {0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
                                   12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
                                   35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
                                   58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

#define FAST 10

/* 4-wide vectors (GCC/clang vector extensions): Wasm SIMD128 with -msimd128, SSE natively. */
typedef float f4 __attribute__((vector_size(16)));
#define SKIP 13
#define MAX_SCANS 500 /* progressive scans refused beyond this many */

/* Huffman table (T.81 annex C and F.2.2.3), MSB-first codes. */
typedef struct {
    int present;
    uint8_t fast_len[1 << FAST]; /* code length for a FAST-bit prefix, 0 if longer */
    uint8_t fast_val[1 << FAST];
    /* AC tables: for a FAST-bit prefix holding both the code and its magnitude bits, the
     * decoded coefficient: value << 16 | run << 8 | bits consumed; 0 when it does not fit. */
    int32_t fast_ac[1 << FAST];
    int32_t maxcode[17], mincode[17], valptr[17];
    uint8_t vals[256];
    uint8_t counts[16]; /* the DHT definition, counts then nvals values: the skip cache's key */
    int nvals;
} jhuff;

/* AC skip tables (see jdec.skip) for table slots 0..3, kept from call to call with the DHT
 * definition they were built from: a camera or encoder sends the same tables in every frame,
 * and building one costs about as much as decoding a few thousand blocks' AC symbols. */
static struct {
    int valid;
    uint8_t counts[16];
    uint8_t vals[256];
    int nvals;
    uint16_t skip[1 << SKIP];
} skip_cache[4];
static uint16_t skip_lvl[1 << SKIP]; /* scratch for build_skip */

typedef struct {
    int id, h, v, tq;  /* frame header: id, sampling factors, quantisation table */
    int td, ta;        /* scan header: DC and AC table */
    int bw, bh;        /* plane size in blocks */
    uint8_t *plane;    /* bw*8 x bh*8 samples */
    int dcpred, scanned;
    /* Progressive JPEG: per block, the K = N x N coefficients the chosen scale reads (not
     * dequantised, row-major in N x N), and a mask of the zig-zag indices whose coefficient is
     * non-zero (all 64: refinement scans depend on the history of those outside N x N too). */
    int16_t *coef;
    uint64_t *nz;
} jcomp;

/* The tensor jpeg_decode_tensor resizes into. */
typedef struct jtensor {
    void *dst;
    int kind;
    uint32_t H, W, C;
    const float *mean, *std;
} jtensor;

typedef struct {
    const uint8_t *data, *end;
    const uint8_t *p; /* scan bit reader position */
    uint64_t acc;     /* pending bits, the next one at bit n-1 */
    int n;
    unsigned pad;     /* zero bits appended past the end of the scan data */
    int marker;       /* reached a marker: feed zeros */

    jhuff dc[4], ac[4];
    uint16_t q[4][64]; /* zig-zag order */
    float qf[4][64];   /* q as float; at full size (N = 8) times the AAN scale factors (scale_q) */
    int qset[4];
    int frame, ncomp, w, h, hmax, vmax, mcux, mcuy, restart;
    int adobe, adobe_transform;
    jcomp comp[4];
    int N;            /* samples per block side at the chosen scale: 8, 4, 2 or 1 */
    int klast;        /* last zig-zag index inside N x N */
    uint8_t zpos[64]; /* zig-zag index -> position in N x N (row stride 8; at N = 8 transposed:
                       * u * 8 + v, as idct8 reads it), 64 if outside */
    uint8_t zrow[64]; /* zig-zag index -> 1 << row inside N x N, 0 if outside */
    int progressive;  /* SOF2 */
    int K;            /* coefficients kept per block of a progressive JPEG: N x N */
    uint8_t kslot[64]; /* zig-zag index -> slot in the kept N x N (v * N + u), 255 if outside */
    uint8_t kzig[64];  /* slot -> zig-zag index */
    uint64_t kmask;    /* bit k set: zig-zag index k is kept */
    int eobrun;        /* progressive AC scans: blocks left in the current EOB run */
    int scans;         /* progressive scans so far (at most MAX_SCANS) */
    /* AC skip tables, built per scan for N < 8: for a SKIP-bit prefix, the whole symbols it
     * holds: coefficients advanced << 5 | ends with EOB << 4 | bits; 0 when none fits. */
    const uint16_t *skip[4];      /* into skip_cache */
    float unused[65];             /* where decode_block_dc's coefficients go (never read) */
    /* decode_block's coefficients (slot 64: those outside N x N, never read), zero between
     * blocks: idct8 and idct4 clear what they read, so no block pays for a memset (in Wasm a
     * memory.fill, which wazero runs as a chain of copies). */
    float blk[65] __attribute__((aligned(16)));
    img_err *e;
    const struct jtensor *t;      /* jpeg_decode_tensor's tensor, or NULL: return the RGB image */
} jdec;

static int bad(jdec *j, const char *what) { return img_fail(j->e, IMG_BAD, "jpeg: %s", what); }

static int be16(const uint8_t *p) { return p[0] << 8 | p[1]; }

/* ---- Huffman tables -------------------------------------------------------------------- */

static int build_huff(jhuff *t, const uint8_t counts[16], const uint8_t *vals, int nvals) {
    memset(t, 0, sizeof *t);
    memcpy(t->vals, vals, (size_t)nvals);
    memcpy(t->counts, counts, 16);
    t->nvals = nvals;
    int code = 0, k = 0;
    for (int len = 1; len <= 16; len++) {
        int c = counts[len - 1];
        t->valptr[len] = k;
        t->mincode[len] = code;
        t->maxcode[len] = c ? code + c - 1 : -1;
        for (int i = 0; i < c; i++, k++, code++) {
            if (code >= (1 << len)) return -1; /* over-subscribed */
            if (len <= FAST) {
                int shift = FAST - len;
                for (int f = code << shift; f < (code + 1) << shift; f++) {
                    t->fast_len[f] = (uint8_t)len;
                    t->fast_val[f] = vals[k];
                }
            }
        }
        code <<= 1;
    }
    for (int f = 0; f < (1 << FAST); f++) {
        int len = t->fast_len[f], rs = t->fast_val[f], run = rs >> 4, sz = rs & 15;
        if (len == 0 || sz == 0 || len + sz > FAST) continue;
        int bits = (f >> (FAST - len - sz)) & ((1 << sz) - 1);
        int v = bits < (1 << (sz - 1)) ? bits - (1 << sz) + 1 : bits;
        t->fast_ac[f] = (int32_t)((uint32_t)v << 16) | run << 8 | (len + sz);
    }
    t->present = 1;
    return 0;
}

/* ---- Entropy-coded data ---------------------------------------------------------------- */

/* Top up the bit buffer to more than 56 bits, undoing FF00 stuffing, stopping at a marker. */
static void fill(jdec *j) {
    /* Fast path: the next 8 bytes hold no 0xFF (no stuffing, no marker), so the whole bytes
     * that fit go in with one big-endian load. */
    if (!j->marker && j->end - j->p >= 8 && j->n <= 56) {
        uint64_t v;
        memcpy(&v, j->p, 8);
        uint64_t x = ~v; /* a 0xFF byte of v is a zero byte of x */
        if (((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull) == 0) {
            int nb = (63 - j->n) >> 3; /* 1..7 bytes keep n + 8*nb <= 63 */
            j->acc = (j->acc << (8 * nb)) | (__builtin_bswap64(v) >> (64 - 8 * nb));
            j->p += nb;
            j->n += 8 * nb;
            return;
        }
    }
    while (j->n <= 56) {
        unsigned b = 0;
        if (!j->marker && j->p < j->end) {
            b = *j->p;
            if (b == 0xff) {
                if (j->p + 1 < j->end && j->p[1] == 0x00) j->p += 2;
                else { j->marker = 1; b = 0; j->pad += 8; }
            } else {
                j->p++;
            }
        } else {
            j->pad += 8;
        }
        j->acc = j->acc << 8 | b;
        j->n += 8;
    }
}

static inline int overrun(const jdec *j) { return j->pad > (unsigned)j->n; }

static inline unsigned getbits(jdec *j, int n) {
    if (n == 0) return 0;
    if (j->n < n) fill(j);
    j->n -= n;
    return (unsigned)(j->acc >> j->n) & ((1u << n) - 1);
}

/* Codes longer than FAST bits: the canonical-code walk (T.81 F.2.2.3). */
static int decode_huff_slow(jdec *j, const jhuff *t) {
    for (int len = FAST + 1; len <= 16; len++) {
        int code = (int)((j->acc >> (j->n - len)) & ((1u << len) - 1));
        if (code <= t->maxcode[len]) {
            j->n -= len;
            int idx = t->valptr[len] + code - t->mincode[len];
            return idx >= 0 && idx < 256 ? t->vals[idx] : -1;
        }
    }
    return -1;
}

/* One Huffman symbol: a table look-up for codes of up to FAST bits (inlined: most are). */
static inline int decode_huff(jdec *j, const jhuff *t) {
    if (j->n < 16) fill(j);
    unsigned peek = (unsigned)(j->acc >> (j->n - FAST)) & ((1u << FAST) - 1);
    if (t->fast_len[peek]) {
        j->n -= t->fast_len[peek];
        return t->fast_val[peek];
    }
    return decode_huff_slow(j, t);
}

/* T.81 F.2.2.1: the s-bit value v as a signed coefficient. */
static inline int extend(unsigned v, int s) {
    return s == 0 ? 0 : (v < (1u << (s - 1)) ? (int)v - (1 << s) + 1 : (int)v);
}

/* Build the AC skip table of t (see jdec.skip): for every SKIP-bit prefix, the whole symbols
 * (code and magnitude bits) it holds, up to and including an EOB. Built bottom-up over the
 * number r of bits left, so each entry costs one look-up: lvl[(1 << r) | g] is the entry for
 * the r-bit string g, and an entry is its first symbol plus the entry of the bits after it. */
static void build_skip(const jhuff *t, uint16_t *skip, uint16_t *lvl) {
    lvl[1] = 0; /* r = 0: nothing */
    for (int r = 1; r <= SKIP; r++) {
        uint16_t *dst = r == SKIP ? skip : lvl + (1u << r);
        for (unsigned g = 0; g < (1u << r); g++) {
            unsigned p = r >= FAST ? g >> (r - FAST) : g << (FAST - r);
            int len = t->fast_len[p], e = 0;
            if (len != 0 && len <= r) {
                int rs = t->fast_val[p], run = rs >> 4, sz = rs & 15;
                if (sz == 0 && run != 15) e = 16 | len; /* EOB */
                else if (len + sz <= r) {
                    int used = len + sz, rest = lvl[(1u << (r - used)) | (g & ((1u << (r - used)) - 1))];
                    int adv = (sz == 0 ? 16 : run + 1) + (rest >> 5); /* ZRL or one coefficient */
                    e = adv << 5 | (rest & 16) | (used + (rest & 15));
                }
            }
            dst[g] = (uint16_t)e;
        }
    }
}

/* One AC symbol decoded the long way (codes or magnitudes past the fast tables): returns the
 * new k, 64 after EOB, or -1 on bad data; stores the coefficient when it is inside N x N. */
static int ac_symbol(jdec *j, const jhuff *ac, int k, float *coef, const float *q, unsigned *rows) {
    int rs = decode_huff(j, ac);
    if (rs < 0) return bad(j, "invalid AC Huffman code"), -1;
    int r = rs >> 4, sz = rs & 15;
    if (sz == 0) return r == 15 ? k + 16 : 64; /* ZRL, EOB */
    k += r;
    if (k > 63) return bad(j, "AC coefficient index out of range"), -1;
    int v = extend(getbits(j, sz), sz);
    coef[j->zpos[k]] = (float)v * q[k];
    *rows |= j->zrow[k];
    return k + 1;
}

/* ac_symbol without a coefficient array: returns value << 7 | new k (value 0 for ZRL; k = 64
 * and value 0 after EOB), or AC_BAD on bad data. */
#define AC_BAD 0x7fffffff
static int ac_symbol_value(jdec *j, const jhuff *ac, int k) {
    int rs = decode_huff(j, ac);
    if (rs < 0) return bad(j, "invalid AC Huffman code"), AC_BAD;
    int r = rs >> 4, sz = rs & 15;
    if (sz == 0) return r == 15 ? k + 16 : 64; /* ZRL (k + 16 <= 79 fits), EOB */
    k += r;
    if (k > 63) return bad(j, "AC coefficient index out of range"), AC_BAD;
    int v = extend(getbits(j, sz), sz);
    return (int)((unsigned)v << 7) | (k + 1);
}

/* AAN scale factors (Arai, Agui, Nakajima): aan[0] = 1, aan[k] = sqrt(2) cos(k pi / 16). */
static const float aan[8] = {1.0f,         1.387039845f, 1.306562965f, 1.175875602f,
                             1.0f,         0.785694958f, 0.541196100f, 0.275899379f};

/* j->qf for the scan about to be decoded: the quantisation tables as floats, and at full size
 * each entry (v, u) times aan[v] aan[u] / 8, the prescaling idct8's butterflies expect. */
static void scale_q(jdec *j) {
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < 64; k++) {
            int z = zigzag[k];
            j->qf[t][k] = (float)j->q[t][k] * (j->N == 8 ? aan[z >> 3] * aan[z & 7] * 0.125f : 1.0f);
        }
}

/* One 8-point IDCT on 4 lanes at once: the AAN butterflies (libjpeg's jidctflt.c): 5
 * multiplies and 29 adds per 8 samples, against 64 multiply-adds for the matrix product. The
 * inputs are prescaled (scale_q). */
static inline __attribute__((always_inline)) void idct8_1d(const f4 *in, f4 *out) {
    f4 t10 = in[0] + in[4], t11 = in[0] - in[4];
    f4 t13 = in[2] + in[6], t12 = (in[2] - in[6]) * 1.414213562f - t13;
    f4 e0 = t10 + t13, e3 = t10 - t13, e1 = t11 + t12, e2 = t11 - t12;
    f4 z13 = in[5] + in[3], z10 = in[5] - in[3], z11 = in[1] + in[7], z12 = in[1] - in[7];
    f4 o7 = z11 + z13, o11 = (z11 - z13) * 1.414213562f;
    f4 z5 = (z10 + z12) * 1.847759065f;
    f4 o10 = z5 - z12 * 1.082392200f, o12 = z5 - z10 * 2.613125930f;
    f4 o6 = o12 - o7, o5 = o11 - o6, o4 = o10 - o5;
    out[0] = e0 + o7, out[7] = e0 - o7, out[1] = e1 + o6, out[6] = e1 - o6;
    out[2] = e2 + o5, out[5] = e2 - o5, out[3] = e3 + o4, out[4] = e3 - o4;
}

/* Transpose the 4 x 4 matrix whose rows are a, b, c, d into d0..d3. */
#define TRANSPOSE4(a, b, c, d, d0, d1, d2, d3)                                                         \
    do {                                                                                               \
        f4 t0_ = __builtin_shufflevector(a, b, 0, 4, 1, 5), t1_ = __builtin_shufflevector(a, b, 2, 6, 3, 7); \
        f4 t2_ = __builtin_shufflevector(c, d, 0, 4, 1, 5), t3_ = __builtin_shufflevector(c, d, 2, 6, 3, 7); \
        d0 = __builtin_shufflevector(t0_, t2_, 0, 1, 4, 5), d1 = __builtin_shufflevector(t0_, t2_, 2, 3, 6, 7); \
        d2 = __builtin_shufflevector(t1_, t3_, 0, 1, 4, 5), d3 = __builtin_shufflevector(t1_, t3_, 2, 3, 6, 7); \
    } while (0)

/* Store 8 samples (lo: x = 0..3, hi: x = 4..7; 128.5 already added) truncated and clamped to
 * 0..255: in Wasm two saturating narrowings (i32 -> i16 -> u8) and one 8-byte store. */
static inline __attribute__((always_inline)) void store8(uint8_t *out, f4 lo, f4 hi) {
#ifdef __wasm_simd128__
    v128_t a = wasm_i32x4_trunc_sat_f32x4((v128_t)lo), b = wasm_i32x4_trunc_sat_f32x4((v128_t)hi);
    v128_t h = wasm_i16x8_narrow_i32x4(a, b);
    wasm_v128_store64_lane(out, wasm_u8x16_narrow_i16x8(h, h), 0);
#else
    for (int i = 0; i < 8; i++) {
        float f = i < 4 ? lo[i] : hi[i - 4];
        out[i] = f <= 0 ? 0 : f >= 255 ? 255 : (uint8_t)f;
    }
#endif
}

/* The full-size (N = 8) IDCT of coefficients prescaled by scale_q and stored transposed
 * (coef[u * 8 + v], j->zpos), rows: bit v set when row v has a non-zero coefficient. Pass 1
 * transforms along u with the 4 lanes holding v (rows 4..7 skipped when all zero, the common
 * case), one 8 x 8 transpose, pass 2 along v with the lanes holding x, so that the output
 * comes out in rows: no second transpose. */
static void idct8(float *coef, unsigned rows, uint8_t *out, size_t stride) {
    f4 in[8], xl[8], xh[8], p[8], o[8], ol[8];
    const f4 zero = {0, 0, 0, 0};
    for (int u = 0; u < 8; u++) in[u] = *(f4 *)(coef + u * 8), *(f4 *)(coef + u * 8) = zero; /* left zero */
    idct8_1d(in, xl); /* xl[x]: lanes v = 0..3 */
    if (rows & 0xf0) { /* else rows 4..7 were never written: still zero */
        for (int u = 0; u < 8; u++) in[u] = *(f4 *)(coef + u * 8 + 4), *(f4 *)(coef + u * 8 + 4) = zero;
        idct8_1d(in, xh); /* lanes v = 4..7 */
    } else {
        for (int x = 0; x < 8; x++) xh[x] = zero;
    }
    const f4 bias = {128.5f, 128.5f, 128.5f, 128.5f}; /* + 128, and + 0.5 to round by truncation */
    /* x = 0..3: p[v] holds lanes x = 0..3 */
    TRANSPOSE4(xl[0], xl[1], xl[2], xl[3], p[0], p[1], p[2], p[3]);
    TRANSPOSE4(xh[0], xh[1], xh[2], xh[3], p[4], p[5], p[6], p[7]);
    p[0] += bias; /* a DC offset reaches every output once */
    idct8_1d(p, ol);
    TRANSPOSE4(xl[4], xl[5], xl[6], xl[7], p[0], p[1], p[2], p[3]);
    TRANSPOSE4(xh[4], xh[5], xh[6], xh[7], p[4], p[5], p[6], p[7]);
    p[0] += bias;
    idct8_1d(p, o);
    for (int y = 0; y < 8; y++, out += stride) store8(out, ol[y], o[y]);
}

/* One 4-point IDCT (the half-size transform: C(u)/2 cos((2x+1) u pi / 8)) on 4 lanes at once. */
static inline __attribute__((always_inline)) void idct4_1d(const f4 *in, f4 *out) {
    f4 e0 = (in[0] + in[2]) * 0.353553391f, e1 = (in[0] - in[2]) * 0.353553391f;
    f4 o0 = in[1] * 0.461939766f + in[3] * 0.191341716f, o1 = in[1] * 0.191341716f - in[3] * 0.461939766f;
    out[0] = e0 + o0, out[3] = e0 - o0, out[1] = e1 + o1, out[2] = e1 - o1;
}

/* The half-size (N = 4) IDCT, laid out as idct8 (coef[u * 8 + v], not prescaled): pass 1
 * along u, a 4 x 4 transpose, pass 2 along v, the four 4-sample rows narrowed to bytes at once. */
static void idct4(float *coef, uint8_t *out, size_t stride) {
    f4 in[4], x[4], p[4], o[4];
    const f4 zero = {0, 0, 0, 0};
    for (int u = 0; u < 4; u++) in[u] = *(f4 *)(coef + u * 8), *(f4 *)(coef + u * 8) = zero; /* left zero */
    idct4_1d(in, x);
    TRANSPOSE4(x[0], x[1], x[2], x[3], p[0], p[1], p[2], p[3]);
    const f4 bias = {363.452881f, 363.452881f, 363.452881f, 363.452881f}; /* 128.5 / C(0)/2: in[0] is scaled by 1/(2 sqrt 2) */
    p[0] += bias;
    idct4_1d(p, o);
#ifdef __wasm_simd128__
    v128_t a = wasm_i16x8_narrow_i32x4(wasm_i32x4_trunc_sat_f32x4((v128_t)o[0]), wasm_i32x4_trunc_sat_f32x4((v128_t)o[1]));
    v128_t b = wasm_i16x8_narrow_i32x4(wasm_i32x4_trunc_sat_f32x4((v128_t)o[2]), wasm_i32x4_trunc_sat_f32x4((v128_t)o[3]));
    v128_t px = wasm_u8x16_narrow_i16x8(a, b);
    wasm_v128_store32_lane(out, px, 0);
    wasm_v128_store32_lane(out + stride, px, 1);
    wasm_v128_store32_lane(out + 2 * stride, px, 2);
    wasm_v128_store32_lane(out + 3 * stride, px, 3);
#else
    for (int y = 0; y < 4; y++, out += stride)
        for (int i = 0; i < 4; i++) {
            float f = o[y][i];
            out[i] = f <= 0 ? 0 : f >= 255 ? 255 : (uint8_t)f;
        }
#endif
}

/* The decoding loops keep the bit buffer in locals acc and n (registers; in Wasm, locals
 * instead of bounds-checked loads and stores of j->acc and j->n): BITS_OUT / BITS_IN sync
 * them with j around the slow paths, REFILL tops them up with fill's common case inline. */
#define BITS_OUT() (j->acc = acc, j->n = n)
#define BITS_IN() (acc = j->acc, n = j->n)
#define REFILL()                                                                              \
do {                                                                                      \
    if (n < 16) {                                                                         \
        uint64_t v_, x_;                                                                  \
        if (!j->marker && j->end - j->p >= 8 && (memcpy(&v_, j->p, 8), x_ = ~v_,          \
            ((x_ - 0x0101010101010101ull) & ~x_ & 0x8080808080808080ull) == 0)) {         \
            int nb_ = (63 - n) >> 3; /* no 0xFF in the next 8 bytes: one load */           \
            acc = (acc << (8 * nb_)) | (__builtin_bswap64(v_) >> (64 - 8 * nb_));          \
            j->p += nb_, n += 8 * nb_;                                                    \
        } else {                                                                          \
            BITS_OUT(), fill(j), BITS_IN();                                               \
        }                                                                                 \
    }                                                                                     \
} while (0)

/* Fill the N x N block at out with px: constant-size stores (a memset of N bytes would be a
 * memory.fill in Wasm, a chain of copies in wazero). */
static inline void fill_block(uint8_t *out, size_t stride, int N, uint8_t px) {
    uint64_t v = px * 0x0101010101010101ull;
    for (int y = 0; y < N; y++, out += stride) switch (N) {
        case 8: memcpy(out, &v, 8); break;
        case 4: memcpy(out, &v, 4); break;
        case 2: memcpy(out, &v, 2); break;
        default: *out = px;
        }
}

/* Decode one 8x8 block of component c and write its N x N samples at block (bx, by); N = 8 or 4
 * (1/4 and 1/8 scale have their own functions, decode_block_2 and decode_block_dc).
 *
 * Coefficients are decoded in two phases: up to j->klast (the last zig-zag index inside
 * N x N) each one is reconstructed and stored (j->zpos sends those outside N x N to a dummy
 * slot, without a branch); after it, only their positions matter, so the skip table consumes
 * several whole symbols per look-up. Every symbol is still decoded and checked. */
static int decode_block(jdec *j, jcomp *c, int bx, int by) {
    const int N = j->N;
    float *coef = j->blk; /* zero (see jdec.blk); only N x N is read */
    const float *q = j->qf[c->tq];
    int s = decode_huff(j, &j->dc[c->td]);
    if (s < 0 || s > 11) return bad(j, "invalid DC Huffman code");
    int pred = c->dcpred + extend(getbits(j, s), s);
    if (pred > 32767) pred = 32767; /* only corrupt data gets here; keep the sum bounded */
    if (pred < -32768) pred = -32768;
    c->dcpred = pred;
    unsigned rows = 1; /* bit v set: row v of coef has a non-zero coefficient (u, v < N) */
    const jhuff *ac = &j->ac[c->ta];
    const int klast = j->klast;
    uint64_t acc = j->acc;
    int n = j->n, k = 1;
    while (k <= klast) {
        REFILL();
        int32_t fa = ac->fast_ac[(unsigned)(acc >> (n - FAST)) & ((1u << FAST) - 1)];
        if (fa) { /* short code and magnitude: one table look-up */
            n -= fa & 255;
            k += (fa >> 8) & 15;
            if (k > 63) return bad(j, "AC coefficient index out of range");
            coef[j->zpos[k]] = (float)(fa >> 16) * q[k];
            rows |= j->zrow[k++];
            continue;
        }
        BITS_OUT();
        if ((k = ac_symbol(j, ac, k, coef, q, &rows)) < 0) return IMG_BAD;
        BITS_IN();
    }
    if (k < 64) {
        const uint16_t *skip = j->skip[c->ta];
        while (k < 64) {
            REFILL();
            unsigned e = skip[(unsigned)(acc >> (n - SKIP)) & ((1u << SKIP) - 1)];
            int adv = (int)(e >> 5);
            if (e & 16) { /* ends with EOB */
                if (k + adv < 64) { n -= e & 15; break; }
            } else if (e && k + adv <= 64) {
                n -= e & 15;
                k += adv;
                continue;
            }
            BITS_OUT();
            if ((k = ac_symbol(j, ac, k, coef, q, &rows)) < 0) return IMG_BAD;
            BITS_IN();
        }
    }
    BITS_OUT();
    if (overrun(j)) return bad(j, "truncated or corrupt scan data");

    size_t stride = (size_t)c->bw * N;
    uint8_t *out = c->plane + (size_t)by * N * stride + (size_t)bx * N;
    int only_dc = rows == 1; /* and row 0's coefficients (at u * 8: transposed) are zero */
    for (int u = 1; only_dc && u < N; u++) only_dc = coef[u * 8] == 0;
    if (only_dc) { /* flat block: DC/8 + 128 everywhere, rounded half up */
        int dc = (pred * j->q[c->tq][0] + 1028) >> 3;
        uint8_t px = dc <= 0 ? 0 : dc >= 255 ? 255 : (uint8_t)dc;
        fill_block(out, stride, N, px);
        return IMG_OK;
    }
    coef[0] = (float)pred * q[0];
    if (N == 8) {
        idct8(coef, rows, out, stride);
        return IMG_OK;
    }
    idct4(coef, out, stride);
    return IMG_OK;
}

/* The DC prediction of block component c plus its decoded difference (T.81 F.2.2.1), into
 * the caller's int pred and c->dcpred, with the bit buffer in the locals acc, n (as REFILL;
 * the caller has refilled). Returns from the caller on an invalid code. */
#define DECODE_DC(dc, pred)                                                                         \
    do {                                                                                            \
        pred = c->dcpred;                                                                           \
        unsigned peek = (unsigned)(acc >> (n - FAST)) & ((1u << FAST) - 1);                         \
        int32_t fd = dc->fast_ac[peek]; /* built for DC tables too: a valid DC symbol has run 0 */  \
        if (fd != 0 && (fd & 0xff00) == 0) { /* code and magnitude bits in one look-up */           \
            n -= fd & 255;                                                                          \
            pred += fd >> 16;                                                                       \
        } else {                                                                                    \
            if (dc->fast_len[peek]) {                                                               \
                n -= dc->fast_len[peek];                                                            \
                s = dc->fast_val[peek];                                                             \
            } else {                                                                                \
                BITS_OUT(), s = decode_huff_slow(j, dc), BITS_IN();                                 \
            }                                                                                       \
            if (s < 0 || s > 11) return bad(j, "invalid DC Huffman code");                          \
            if (s) {                                                                                \
                if (n < s) REFILL();                                                                \
                n -= s;                                                                             \
                pred += extend((unsigned)(acc >> n) & ((1u << s) - 1), s);                          \
            }                                                                                       \
        }                                                                                           \
        if (pred > 32767) pred = 32767; /* only corrupt data gets here; keep the sum bounded */     \
        if (pred < -32768) pred = -32768;                                                           \
        c->dcpred = pred;                                                                           \
    } while (0)

/* decode_block at 1/4 scale (N = 2): the four coefficients that reach the output (zig-zag
 * 0, 1, 2 and 4) in locals, no coefficient array (in Wasm, no shadow-stack frame per block),
 * the bit buffer in locals throughout, the closed-form 2-point IDCT. out is the block's
 * top-left sample in a plane of the given stride. Inlined into decode_scan, whose locals
 * *pacc, *pn hold the bit buffer from block to block (j->acc, j->n only around slow paths). */
static inline __attribute__((always_inline)) int decode_block_2(jdec *j, jcomp *c, uint8_t *out, size_t stride,
                                                                 uint64_t *pacc, int *pn) {
    uint64_t acc = *pacc;
    int n = *pn, s;
    REFILL();
    const jhuff *dc = &j->dc[c->td];
    int pred;
    DECODE_DC(dc, pred);
    const uint16_t *q = j->q[c->tq];
    const jhuff *ac = &j->ac[c->ta];
    int c01 = 0, c10 = 0, c11 = 0, k = 1; /* dequantised, natural positions 1, 8, 9 */
    while (k <= 4) {
        REFILL();
        int32_t fa = ac->fast_ac[(unsigned)(acc >> (n - FAST)) & ((1u << FAST) - 1)];
        int v;
        if (fa) {
            n -= fa & 255;
            k += (fa >> 8) & 15;
            v = fa >> 16;
        } else {
            BITS_OUT();
            int r = ac_symbol_value(j, ac, k);
            if (r == AC_BAD) return IMG_BAD;
            BITS_IN();
            k = r & 127, v = r >> 7;
            if (v == 0) continue; /* ZRL or EOB (k = 64) */
            k--;                  /* the coefficient's own index */
        }
        if (k > 63) return bad(j, "AC coefficient index out of range");
        if (k == 1) c01 = v * q[1];
        else if (k == 2) c10 = v * q[2];
        else if (k == 4) c11 = v * q[4];
        k++;
    }
    if (k < 64) {
        const uint16_t *skip = j->skip[c->ta];
        while (k < 64) {
            REFILL();
            unsigned e = skip[(unsigned)(acc >> (n - SKIP)) & ((1u << SKIP) - 1)];
            int adv = (int)(e >> 5);
            if (e & 16) {
                if (k + adv < 64) { n -= e & 15; break; }
            } else if (e && k + adv <= 64) {
                n -= e & 15;
                k += adv;
                continue;
            }
            BITS_OUT();
            int r = ac_symbol_value(j, ac, k);
            if (r == AC_BAD) return IMG_BAD;
            BITS_IN();
            k = r & 127;
        }
    }
    *pacc = acc, *pn = n;
    if (j->pad > (unsigned)n) return bad(j, "truncated or corrupt scan data");
    int c00 = pred * q[0];
    if ((c01 | c10 | c11) == 0) { /* flat block */
        int v = (c00 + 1028) >> 3;
        uint8_t px = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        out[0] = out[1] = out[stride] = out[stride + 1] = px;
        return IMG_OK;
    }
    /* Every entry of the 2-point table is +-1/(2 sqrt 2): 128 + (c00 +- c01 +- c10 +- c11) / 8,
     * rounded half up, in integers. */
    int s0 = c00 + c01, d0 = c00 - c01, s1 = c10 + c11, d1 = c10 - c11;
    int p0 = (s0 + s1 + 1028) >> 3, p1 = (d0 + d1 + 1028) >> 3, p2 = (s0 - s1 + 1028) >> 3, p3 = (d0 - d1 + 1028) >> 3;
    if (((p0 | p1 | p2 | p3) & ~255) == 0) { /* all four in 0..255: no clamping (the common case) */
        out[0] = (uint8_t)p0, out[1] = (uint8_t)p1, out[stride] = (uint8_t)p2, out[stride + 1] = (uint8_t)p3;
        return IMG_OK;
    }
    int px[4] = {p0, p1, p2, p3};
    for (int i = 0; i < 4; i++) out[(i >> 1) * stride + (i & 1)] = px[i] <= 0 ? 0 : px[i] >= 255 ? 255 : (uint8_t)px[i];
    return IMG_OK;
}

/* decode_block at 1/8 scale (N = 1), where only DC reaches the output: no coefficient
 * array, no IDCT, the bit buffer in locals throughout; the AC symbols go through the skip
 * table. out is the block's one sample. */
static int decode_block_dc(jdec *j, jcomp *c, uint8_t *out) {
    uint64_t acc = j->acc;
    int n = j->n, s;
    REFILL();
    const jhuff *dc = &j->dc[c->td];
    int pred;
    DECODE_DC(dc, pred);
    const jhuff *ac = &j->ac[c->ta];
    const uint16_t *skip = j->skip[c->ta];
    unsigned rows = 0;
    for (int k = 1; k < 64;) {
        REFILL();
        unsigned e = skip[(unsigned)(acc >> (n - SKIP)) & ((1u << SKIP) - 1)];
        int adv = (int)(e >> 5);
        if (e & 16) { /* ends with EOB */
            if (k + adv < 64) { n -= e & 15; break; }
        } else if (e && k + adv <= 64) {
            n -= e & 15;
            k += adv;
            continue;
        }
        BITS_OUT();
        if ((k = ac_symbol(j, ac, k, j->unused, j->qf[c->tq], &rows)) < 0) return IMG_BAD;
        BITS_IN();
    }
    BITS_OUT();
    if (overrun(j)) return bad(j, "truncated or corrupt scan data");
    int v = (pred * j->q[c->tq][0] + 1028) >> 3; /* DC/8 + 128, rounded half up */
    *out = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
    return IMG_OK;
}

/* Expect RSTn at a restart boundary and reset the decoder state (T.81 F.2.1.3). */
static int restart(jdec *j, int n) {
    j->acc = 0, j->n = 0, j->pad = 0, j->marker = 0;
    while (j->p < j->end && *j->p == 0xff && j->p + 1 < j->end && j->p[1] == 0xff) j->p++;
    if (j->end - j->p < 2 || j->p[0] != 0xff || j->p[1] != 0xd0 + (n & 7))
        return bad(j, "missing or wrong restart marker");
    j->p += 2;
    for (int i = 0; i < j->ncomp; i++) j->comp[i].dcpred = 0;
    return IMG_OK;
}

/* Decode one scan starting at p; on return j->p is at or before the next marker. */
static int decode_scan(jdec *j, jcomp **sc, int ns) {
    j->acc = 0, j->n = 0, j->pad = 0, j->marker = 0;
    scale_q(j);
    for (int i = 0; i < ns; i++) sc[i]->dcpred = 0;
    int rc, mcu = 0, rst = 0;
    uint64_t acc = 0; /* the bit buffer for decode_block_2 (N = 2) */
    int n = 0;
    if (ns == 1) {
        /* Non-interleaved: one block per MCU over the component's own extent. */
        jcomp *c = sc[0];
        int cw = (j->w * c->h + j->hmax - 1) / j->hmax, ch = (j->h * c->v + j->vmax - 1) / j->vmax;
        int nbx = (cw + 7) / 8, nby = (ch + 7) / 8, total = nbx * nby;
        for (int by = 0; by < nby; by++)
            for (int bx = 0; bx < nbx; bx++) {
                rc = j->N == 1   ? decode_block_dc(j, c, c->plane + (size_t)by * c->bw + bx)
                     : j->N == 2 ? decode_block_2(j, c, c->plane + (size_t)by * 4 * c->bw + 2 * (size_t)bx, 2 * (size_t)c->bw, &acc, &n)
                                 : decode_block(j, c, bx, by);
                if (rc != IMG_OK) return rc;
                if (j->restart && ++mcu % j->restart == 0 && mcu < total) {
                    if ((rc = restart(j, rst++)) != IMG_OK) return rc;
                    acc = 0, n = 0;
                }
            }
        return IMG_OK;
    }
    int total = j->mcux * j->mcuy;
    for (int my = 0; my < j->mcuy; my++)
        for (int mx = 0; mx < j->mcux; mx++) {
            for (int i = 0; i < ns; i++) {
                jcomp *c = sc[i];
                for (int v = 0; v < c->v; v++)
                    for (int h = 0; h < c->h; h++) {
                        int bx = mx * c->h + h, by = my * c->v + v;
                        rc = j->N == 1 ? decode_block_dc(j, c, c->plane + (size_t)by * c->bw + bx)
                             : j->N == 2
                                 ? decode_block_2(j, c, c->plane + (size_t)by * 4 * c->bw + 2 * (size_t)bx, 2 * (size_t)c->bw, &acc, &n)
                                 : decode_block(j, c, bx, by);
                        if (rc != IMG_OK) return rc;
                    }
            }
            if (j->restart && ++mcu % j->restart == 0 && mcu < total) {
                if ((rc = restart(j, rst++)) != IMG_OK) return rc;
                acc = 0, n = 0;
            }
        }
    return IMG_OK;
}

/* ---- Progressive JPEG (T.81 G.1.2) ----------------------------------------------------- */

/* A coefficient value scaled by 2^al, kept in int16 (only corrupt data reaches the clamp). */
static inline int16_t clamp16(int v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

/* Consume n bits (n <= 64) without looking at them. */
static inline void skipbits(jdec *j, int n) {
    while (n > 0) {
        int t = n > 24 ? 24 : n;
        if (j->n < t) fill(j);
        j->n -= t, n -= t;
    }
}

/* One block of a progressive scan: the coefficients ss..se of block (bx, by) of c, first
 * scan (ah = 0) or refinement (ah > 0) at bit al. Coefficients outside the kept N x N are
 * decoded all the same (the bit stream depends on them) but only their non-zero bit is kept. */
static int prog_block(jdec *j, jcomp *c, int bx, int by, int ss, int se, int ah, int al) {
    size_t b = (size_t)by * c->bw + bx;
    int16_t *kc = c->coef + b * (size_t)j->K;
    uint64_t *nz = c->nz + b;
    if (ss == 0) { /* DC: G.1.2.1 */
        if (ah == 0) {
            int s = decode_huff(j, &j->dc[c->td]);
            if (s < 0 || s > 11) return bad(j, "invalid DC Huffman code");
            int pred = c->dcpred + extend(getbits(j, s), s);
            if (pred > 32767) pred = 32767; /* only corrupt data gets here; keep the sum bounded */
            if (pred < -32768) pred = -32768;
            c->dcpred = pred;
            kc[0] = clamp16(pred * (1 << al));
        } else if (getbits(j, 1)) {
            kc[0] = (int16_t)(kc[0] | (1 << al)); /* the next bit of its two's complement value */
        }
        return overrun(j) ? bad(j, "truncated or corrupt scan data") : IMG_OK;
    }
    const jhuff *ac = &j->ac[c->ta];
    int k = ss;
    if (ah == 0) { /* AC first scan: G.1.2.2 */
        if (j->eobrun > 0) {
            j->eobrun--;
            return IMG_OK;
        }
        while (k <= se) {
            if (j->n < 16) fill(j);
            int32_t fa = ac->fast_ac[(unsigned)(j->acc >> (j->n - FAST)) & ((1u << FAST) - 1)];
            int v;
            if (fa) { /* short code and magnitude: one look-up (run, value, bits) */
                j->n -= fa & 255;
                k += (fa >> 8) & 15;
                v = fa >> 16;
            } else {
                int rs = decode_huff(j, ac);
                if (rs < 0) return bad(j, "invalid AC Huffman code");
                int r = rs >> 4, s = rs & 15;
                if (s == 0) {
                    if (r < 15) { /* EOBr: this block and 2^r - 1 + (r bits) more end here */
                        j->eobrun = (1 << r) - 1;
                        if (r) j->eobrun += (int)getbits(j, r);
                        break;
                    }
                    k += 16; /* ZRL */
                    continue;
                }
                k += r;
                v = extend(getbits(j, s), s);
            }
            if (k > se) return bad(j, "AC coefficient index out of range");
            *nz |= 1ull << k;
            if (j->kslot[k] != 255) kc[j->kslot[k]] = clamp16(v * (1 << al));
            k++;
        }
        return overrun(j) ? bad(j, "truncated or corrupt scan data") : IMG_OK;
    }
    /* AC refinement: G.1.2.3. Coefficients already non-zero get a correction bit each, in
     * order; a new coefficient (magnitude 1 << al) goes to the (r+1)-th zero-history position.
     * The masks walk the non-zero ones with count-trailing-zeros instead of one by one. */
    int p1 = 1 << al;
    uint64_t top = se == 63 ? ~0ull : (1ull << (se + 1)) - 1;
    /* The correction bits of the non-zero coefficients in mask m: one by one for those the
     * scale keeps, 24 at a time for the rest (at 1/8, every AC coefficient). */
#define REFINE(m)                                                                   \
    do {                                                                            \
        uint64_t m_ = (m);                                                          \
        for (uint64_t q_ = m_ & j->kmask; q_; q_ &= q_ - 1) {                       \
            int kk_ = __builtin_ctzll(q_);                                          \
            skipbits(j, __builtin_popcountll(m_ & ((1ull << kk_) - 1)));            \
            m_ &= ~((2ull << kk_) - 1);                                             \
            if (getbits(j, 1)) {                                                    \
                int16_t *x_ = &kc[j->kslot[kk_]];                                   \
                *x_ = clamp16(*x_ + (*x_ >= 0 ? p1 : -p1));                         \
            }                                                                       \
        }                                                                           \
        skipbits(j, __builtin_popcountll(m_));                                      \
    } while (0)
    if (j->eobrun <= 0) {
        while (k <= se) {
            int rs = decode_huff(j, ac);
            if (rs < 0) return bad(j, "invalid AC Huffman code");
            int r = rs >> 4, s = rs & 15, v = 0;
            if (s != 0) {
                if (s != 1) return bad(j, "invalid AC refinement symbol");
                v = getbits(j, 1) ? p1 : -p1;
            } else if (r != 15) { /* EOBr: the rest of this block is refined below */
                j->eobrun = 1 << r;
                if (r) j->eobrun += (int)getbits(j, r);
                break;
            } /* else ZRL: skip 16 zero-history coefficients */
            uint64_t from = top & ~((1ull << k) - 1); /* positions k..se */
            uint64_t z = ~*nz & from;
            for (int i = 0; i < r && z; i++) z &= z - 1; /* drop r zero-history positions */
            if (!z) return bad(j, "AC refinement runs past the end of the band");
            int p = __builtin_ctzll(z); /* where the new coefficient goes */
            REFINE(*nz & from & ((1ull << p) - 1));
            if (v) {
                *nz |= 1ull << p;
                if (j->kslot[p] != 255) kc[j->kslot[p]] = (int16_t)v;
            }
            k = p + 1;
        }
    }
    if (j->eobrun > 0) { /* in an EOB run: only correction bits for the non-zero ones */
        if (k <= se) REFINE(*nz & top & ~((1ull << k) - 1));
        j->eobrun--;
    }
#undef REFINE
    return overrun(j) ? bad(j, "truncated or corrupt scan data") : IMG_OK;
}

/* Decode one progressive scan starting at j->p (T.81 G.1.2): a DC scan may interleave
 * components (MCUs as in a sequential scan); an AC scan has one, block by block over its own
 * extent. Restart markers reset the DC predictions and the EOB run. */
static int decode_scan_prog(jdec *j, jcomp **sc, int ns, int ss, int se, int ah, int al) {
    j->acc = 0, j->n = 0, j->pad = 0, j->marker = 0, j->eobrun = 0;
    for (int i = 0; i < ns; i++) sc[i]->dcpred = 0;
    int rc, mcu = 0, rst = 0;
    if (ns == 1) {
        jcomp *c = sc[0];
        int cw = (j->w * c->h + j->hmax - 1) / j->hmax, ch = (j->h * c->v + j->vmax - 1) / j->vmax;
        int nbx = (cw + 7) / 8, nby = (ch + 7) / 8, total = nbx * nby;
        for (int by = 0; by < nby; by++)
            for (int bx = 0; bx < nbx; bx++) {
                if ((rc = prog_block(j, c, bx, by, ss, se, ah, al)) != IMG_OK) return rc;
                if (j->restart && ++mcu % j->restart == 0 && mcu < total) {
                    if ((rc = restart(j, rst++)) != IMG_OK) return rc;
                    j->eobrun = 0;
                }
            }
        return IMG_OK;
    }
    int total = j->mcux * j->mcuy;
    for (int my = 0; my < j->mcuy; my++)
        for (int mx = 0; mx < j->mcux; mx++) {
            for (int i = 0; i < ns; i++) {
                jcomp *c = sc[i];
                for (int v = 0; v < c->v; v++)
                    for (int h = 0; h < c->h; h++)
                        if ((rc = prog_block(j, c, mx * c->h + h, my * c->v + v, ss, se, ah, al)) != IMG_OK)
                            return rc;
            }
            if (j->restart && ++mcu % j->restart == 0 && mcu < total) {
                if ((rc = restart(j, rst++)) != IMG_OK) return rc;
                j->eobrun = 0;
            }
        }
    return IMG_OK;
}

/* After the last scan: dequantise each block's kept coefficients and transform them into
 * its N x N samples, as decode_block does for a sequential JPEG (a block with only DC is a
 * fill; N = 2 in integers as decode_block_2). The coefficients are freed as each component
 * is done. */
static void prog_output(jdec *j) {
    const int N = j->N, K = j->K;
    scale_q(j);
    for (int i = 0; i < j->ncomp; i++) {
        jcomp *c = &j->comp[i];
        const uint16_t *q = j->q[c->tq];
        size_t stride = (size_t)c->bw * N;
        for (int by = 0; by < c->bh; by++)
            for (int bx = 0; bx < c->bw; bx++) {
                const int16_t *kc = c->coef + ((size_t)by * c->bw + bx) * (size_t)K;
                uint8_t *out = c->plane + (size_t)by * N * stride + (size_t)bx * N;
                int flat = 1;
                for (int s = 1; s < K && flat; s++) flat = kc[s] == 0;
                if (flat) {
                    long long v = ((long long)kc[0] * q[0] + 1028) >> 3; /* DC/8 + 128, rounded half up */
                    uint8_t px = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
                    fill_block(out, stride, N, px);
                    continue;
                }
                if (N == 2) { /* slots 0, 1, 2, 3: natural (0,0), (0,1), (1,0), (1,1) */
                    long long c00 = (long long)kc[0] * q[0], c01 = (long long)kc[1] * q[j->kzig[1]],
                              c10 = (long long)kc[2] * q[j->kzig[2]], c11 = (long long)kc[3] * q[j->kzig[3]];
                    long long s0 = c00 + c01, d0 = c00 - c01, s1 = c10 + c11, d1 = c10 - c11;
                    long long px[4] = {(s0 + s1 + 1028) >> 3, (d0 + d1 + 1028) >> 3, (s0 - s1 + 1028) >> 3,
                                 (d0 - d1 + 1028) >> 3};
                    for (int m = 0; m < 4; m++)
                        out[(m >> 1) * stride + (m & 1)] = px[m] <= 0 ? 0 : px[m] >= 255 ? 255 : (uint8_t)px[m];
                    continue;
                }
                float coef[65] __attribute__((aligned(16)));
                unsigned rows = 0;
                const float *qf = j->qf[c->tq];
                for (int v = 0; v < N; v++)
                    for (int u = 0; u < N; u++) {
                        int s = v * N + u;
                        coef[u * 8 + v] = (float)kc[s] * qf[j->kzig[s]];
                        if (kc[s]) rows |= 1u << v;
                    }
                if (N == 8) idct8(coef, rows | 1, out, stride);
                else idct4(coef, out, stride);
            }
        free(c->coef), c->coef = NULL;
        free(c->nz), c->nz = NULL;
    }
}

/* ---- Marker segments ------------------------------------------------------------------- */

static int parse_dqt(jdec *j, const uint8_t *d, int len) {
    while (len > 0) {
        int pq = d[0] >> 4, tq = d[0] & 15, n = pq ? 129 : 65;
        if (pq > 1 || tq > 3 || len < n) return bad(j, "invalid DQT segment");
        for (int k = 0; k < 64; k++) j->q[tq][k] = (uint16_t)(pq ? be16(d + 1 + 2 * k) : d[1 + k]);
        j->qset[tq] = 1;
        d += n, len -= n;
    }
    return IMG_OK;
}

static int parse_dht(jdec *j, const uint8_t *d, int len) {
    while (len > 0) {
        if (len < 17) return bad(j, "invalid DHT segment");
        int tc = d[0] >> 4, th = d[0] & 15, total = 0;
        if (tc > 1 || th > 3) return bad(j, "invalid DHT table class or id");
        for (int i = 0; i < 16; i++) total += d[1 + i];
        if (total > 256 || len < 17 + total) return bad(j, "invalid DHT segment length");
        if (build_huff(tc ? &j->ac[th] : &j->dc[th], d + 1, d + 17, total) != 0)
            return bad(j, "invalid Huffman table");
        d += 17 + total, len -= 17 + total;
    }
    return IMG_OK;
}

/* Read the frame size from a SOF segment and check it against max_pixels. */
static int parse_size(jdec *j, const uint8_t *d, int len, uint64_t max_pixels) {
    if (j->frame) return bad(j, "more than one frame header");
    if (len < 6) return bad(j, "invalid SOF segment");
    if (d[0] != 8) return img_fail(j->e, IMG_UNSUPPORTED, "unsupported: %d-bit JPEG", d[0]);
    j->h = be16(d + 1), j->w = be16(d + 3), j->ncomp = d[5];
    if (j->h == 0) return img_fail(j->e, IMG_UNSUPPORTED, "unsupported: JPEG with the height in a DNL marker");
    if (j->w == 0) return bad(j, "image width is 0");
    if ((uint64_t)j->w * (uint64_t)j->h > max_pixels)
        return img_fail(j->e, IMG_UNSUPPORTED, "jpeg: image %dx%d is larger than the limit of %llu pixels",
                        j->w, j->h, (unsigned long long)max_pixels);
    return IMG_OK;
}

/* The smallest scale N/8 (N = 8, 4, 2, 1) whose output is still at least min_w x min_h. */
static void choose_scale(jdec *j, uint32_t min_w, uint32_t min_h) {
    j->N = 8;
    while (j->N > 1 && (uint32_t)((j->w * (j->N / 2) + 7) / 8) >= min_w &&
           (uint32_t)((j->h * (j->N / 2) + 7) / 8) >= min_h && min_w > 0 && min_h > 0)
        j->N /= 2;
    j->klast = 0;
    j->K = j->N * j->N;
    j->kmask = 0;
    for (int k = 0; k < 64; k++) {
        int z = zigzag[k], in = (z & 7) < j->N && (z >> 3) < j->N;
        j->zpos[k] = in ? (uint8_t)(j->N >= 4 ? (z & 7) * 8 + (z >> 3) : z) : 64;
        j->zrow[k] = in ? (uint8_t)(1u << (z >> 3)) : 0;
        j->kslot[k] = in ? (uint8_t)((z >> 3) * j->N + (z & 7)) : 255;
        if (in) j->kzig[j->kslot[k]] = (uint8_t)k, j->kmask |= 1ull << k;
        if (in) j->klast = k;
    }
}

static int parse_sof(jdec *j, const uint8_t *d, int len) {
    j->h = be16(d + 1), j->w = be16(d + 3), j->ncomp = d[5];
    if (j->ncomp != 1 && j->ncomp != 3 && j->ncomp != 4) return bad(j, "invalid number of components");
    if (len < 6 + 3 * j->ncomp) return bad(j, "invalid SOF segment");
    j->hmax = j->vmax = 1;
    for (int i = 0; i < j->ncomp; i++) {
        jcomp *c = &j->comp[i];
        const uint8_t *p = d + 6 + 3 * i;
        c->id = p[0], c->h = p[1] >> 4, c->v = p[1] & 15, c->tq = p[2];
        if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3)
            return bad(j, "invalid component sampling factors or table");
        for (int k = 0; k < i; k++)
            if (j->comp[k].id == c->id) return bad(j, "duplicate component id");
        if (j->ncomp == 1) c->h = c->v = 1; /* a single component is never interleaved */
        if (c->h > j->hmax) j->hmax = c->h;
        if (c->v > j->vmax) j->vmax = c->v;
    }
    j->mcux = (j->w + 8 * j->hmax - 1) / (8 * j->hmax);
    j->mcuy = (j->h + 8 * j->vmax - 1) / (8 * j->vmax);
    size_t blocks_all = 0;
    for (int i = 0; i < j->ncomp; i++) {
        jcomp *c = &j->comp[i];
        c->bw = j->mcux * c->h, c->bh = j->mcuy * c->v;
        blocks_all += (size_t)c->bw * c->bh;
    }
    for (int i = 0; i < j->ncomp; i++) {
        jcomp *c = &j->comp[i];
        c->plane = calloc((size_t)c->bw * j->N * j->N, (size_t)c->bh);
        if (!c->plane)
            return img_fail(j->e, IMG_TOO_LARGE, "jpeg: out of memory for the planes of a %dx%d image decoded at %d/8",
                            j->w, j->h, j->N);
        if (j->progressive) {
            size_t blocks = (size_t)c->bw * c->bh;
            c->coef = calloc(blocks * (size_t)j->K, sizeof *c->coef);
            c->nz = calloc(blocks, sizeof *c->nz);
            if (!c->coef || !c->nz) {
                /* per block: K coefficients, the mask, K samples */
                size_t need = blocks_all * (3 * (size_t)j->K + 8);
                return img_fail(j->e, IMG_TOO_LARGE,
                                "jpeg: a %dx%d progressive JPEG decoded at %d/8 did not fit: its coefficients and "
                                "samples need %zu MiB",
                                j->w, j->h, j->N, (need + (1u << 20) - 1) >> 20);
            }
        }
    }
    j->frame = 1;
    return IMG_OK;
}

/* The scan header. ss, se, ah, al: spectral selection and successive approximation (T.81
 * B.2.3; a sequential scan has 0, 63, 0, 0). */
static int parse_sos(jdec *j, const uint8_t *d, int len, jcomp **sc, int *ns, int *ss, int *se, int *ah, int *al) {
    if (!j->frame) return bad(j, "scan before frame header");
    if (len < 1) return bad(j, "invalid SOS segment");
    *ns = d[0];
    if (*ns < 1 || *ns > j->ncomp || len != 4 + 2 * *ns) return bad(j, "invalid SOS segment");
    const uint8_t *p = d + 1 + 2 * *ns;
    *ss = p[0], *se = p[1], *ah = p[2] >> 4, *al = p[2] & 15;
    if (!j->progressive) {
        if (*ss != 0 || *se != 63 || *ah != 0 || *al != 0)
            return bad(j, "invalid spectral selection for a sequential scan");
    } else if (*se > 63 || *ss > *se || (*ss == 0) != (*se == 0) || *ah > 13 || *al > 13 ||
               (*ss > 0 && *ns != 1)) {
        return bad(j, "invalid spectral selection or successive approximation in a progressive scan");
    }
    /* The Huffman tables a scan reads: a sequential scan both; a progressive DC scan the DC
     * table (none to refine), an AC scan the AC table. */
    int need_dc = !j->progressive || (*ss == 0 && *ah == 0), need_ac = !j->progressive || *ss > 0;
    int blocks = 0;
    for (int i = 0; i < *ns; i++) {
        int id = d[1 + 2 * i], t = d[2 + 2 * i];
        jcomp *c = NULL;
        for (int k = 0; k < j->ncomp; k++)
            if (j->comp[k].id == id) c = &j->comp[k];
        if (!c) return bad(j, "scan names an unknown component");
        for (int k = 0; k < i; k++)
            if (sc[k] == c) return bad(j, "scan names a component twice");
        c->td = t >> 4, c->ta = t & 15;
        if (c->td > 3 || c->ta > 3 || (need_dc && !j->dc[c->td].present) || (need_ac && !j->ac[c->ta].present))
            return bad(j, "scan uses an undefined Huffman table");
        if (!j->qset[c->tq]) return bad(j, "component uses an undefined quantisation table");
        if (!j->progressive || (*ss == 0 && *ah == 0)) c->scanned = 1; /* progressive: has its DC */
        sc[i] = c;
        blocks += c->h * c->v;
    }
    if (*ns > 1 && blocks > 10) return bad(j, "too many blocks per MCU");
    return IMG_OK;
}

/* Go's color.YCbCrToRGB (16.16 fixed point, JFIF coefficients) on one output row whose chroma
 * samples repeat 1 << shb and 1 << shr times. */
#ifdef __wasm_simd128__
typedef uint8_t u8x16 __attribute__((vector_size(16)));

/* 16 chroma samples for the pixels x..x+15 of a row subsampled by 2^sh (0 or 1): each sample
 * of a 2:1 row twice. */
static inline v128_t chroma16(const uint8_t *c, int x, int sh) {
    if (sh == 0) return wasm_v128_load(c + x);
    return wasm_i8x16_shuffle(wasm_v128_load64_zero(c + (x >> 1)), wasm_i8x16_splat(0), 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5,
                              5, 6, 6, 7, 7);
}

/* ycc_row's arithmetic on 4 pixels (32-bit lanes), the results >> 16: clamping to 0..255 is
 * left to the saturating narrowings. */
static inline void ycc4(v128_t y, v128_t b, v128_t r, v128_t *v0, v128_t *v1, v128_t *v2) {
    v128_t yy = wasm_i32x4_mul(y, wasm_i32x4_splat(0x10101));
    *v0 = wasm_i32x4_shr(wasm_i32x4_add(yy, wasm_i32x4_mul(r, wasm_i32x4_splat(91881))), 16);
    *v1 = wasm_i32x4_shr(wasm_i32x4_sub(wasm_i32x4_sub(yy, wasm_i32x4_mul(b, wasm_i32x4_splat(22554))),
                                        wasm_i32x4_mul(r, wasm_i32x4_splat(46802))),
                         16);
    *v2 = wasm_i32x4_shr(wasm_i32x4_add(yy, wasm_i32x4_mul(b, wasm_i32x4_splat(116130))), 16);
}

/* ycc_row for 16 pixels at once (Wasm SIMD128): the same integer arithmetic in 32-bit lanes,
 * clamped by two saturating narrowings (i32 -> i16 -> u8, as the scalar test-and-clamp), the
 * R, G, B vectors interleaved by shuffles. Returns the pixels done (a multiple of 16). */
static int ycc_row16(const uint8_t *y, const uint8_t *cb, const uint8_t *cr, int shb, int shr, int W, uint8_t *o) {
    const v128_t c128 = wasm_i16x8_splat(128);
    int x = 0;
    for (; x + 16 <= W; x += 16, o += 48) {
        v128_t Y = wasm_v128_load(y + x), B = chroma16(cb, x, shb), R = chroma16(cr, x, shr);
        v128_t yh[2] = {wasm_u16x8_extend_low_u8x16(Y), wasm_u16x8_extend_high_u8x16(Y)};
        v128_t bh[2] = {wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(B), c128), wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(B), c128)};
        v128_t rh[2] = {wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(R), c128), wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(R), c128)};
        v128_t ch[3][2]; /* per channel, pixels 0..7 and 8..15 as i16 */
        for (int h = 0; h < 2; h++) {
            v128_t a0, a1, a2, b0, b1, b2;
            ycc4(wasm_u32x4_extend_low_u16x8(yh[h]), wasm_i32x4_extend_low_i16x8(bh[h]), wasm_i32x4_extend_low_i16x8(rh[h]), &a0, &a1, &a2);
            ycc4(wasm_u32x4_extend_high_u16x8(yh[h]), wasm_i32x4_extend_high_i16x8(bh[h]), wasm_i32x4_extend_high_i16x8(rh[h]), &b0, &b1, &b2);
            ch[0][h] = wasm_i16x8_narrow_i32x4(a0, b0);
            ch[1][h] = wasm_i16x8_narrow_i32x4(a1, b1);
            ch[2][h] = wasm_i16x8_narrow_i32x4(a2, b2);
        }
        u8x16 r = (u8x16)wasm_u8x16_narrow_i16x8(ch[0][0], ch[0][1]);
        u8x16 g = (u8x16)wasm_u8x16_narrow_i16x8(ch[1][0], ch[1][1]);
        u8x16 b = (u8x16)wasm_u8x16_narrow_i16x8(ch[2][0], ch[2][1]);
        u8x16 t0 = __builtin_shufflevector(r, g, 0, 16, 0, 1, 17, 0, 2, 18, 0, 3, 19, 0, 4, 20, 0, 5);
        u8x16 t1 = __builtin_shufflevector(r, g, 21, 0, 6, 22, 0, 7, 23, 0, 8, 24, 0, 9, 25, 0, 10, 26);
        u8x16 t2 = __builtin_shufflevector(r, g, 0, 11, 27, 0, 12, 28, 0, 13, 29, 0, 14, 30, 0, 15, 31, 0);
        wasm_v128_store(o, (v128_t)__builtin_shufflevector(t0, b, 0, 1, 16, 3, 4, 17, 6, 7, 18, 9, 10, 19, 12, 13, 20, 15));
        wasm_v128_store(o + 16, (v128_t)__builtin_shufflevector(t1, b, 0, 21, 2, 3, 22, 5, 6, 23, 8, 9, 24, 11, 12, 25, 14, 15));
        wasm_v128_store(o + 32, (v128_t)__builtin_shufflevector(t2, b, 26, 1, 2, 27, 4, 5, 28, 7, 8, 29, 10, 11, 30, 13, 14, 31));
    }
    return x;
}
#endif

static void ycc_row(const uint8_t *y, const uint8_t *cb, const uint8_t *cr, int shb, int shr, int W, uint8_t *o) {
    int x = 0;
#ifdef __wasm_simd128__
    if (shb <= 1 && shr <= 1) {
        x = ycc_row16(y, cb, cr, shb, shr, W, o);
        o += 3 * x;
    }
#endif
    for (; x < W; x++, o += 3) {
        int32_t yy = y[x] * 0x10101, b = cb[x >> shb] - 128, r = cr[x >> shr] - 128;
        int32_t v0 = yy + 91881 * r, v1 = yy - 22554 * b - 46802 * r, v2 = yy + 116130 * b;
        o[0] = ((uint32_t)v0 & 0xff000000u) == 0 ? (uint8_t)(v0 >> 16) : v0 < 0 ? 0 : 255;
        o[1] = ((uint32_t)v1 & 0xff000000u) == 0 ? (uint8_t)(v1 >> 16) : v1 < 0 ? 0 : 255;
        o[2] = ((uint32_t)v2 & 0xff000000u) == 0 ? (uint8_t)(v2 >> 16) : v2 < 0 ? 0 : 255;
    }
}

/* One pixel of a 4-component JPEG (Adobe APP14) as RGB. Adobe's convention, which libjpeg,
 * Pillow and Go's image/jpeg follow: the stored C, M, Y, K samples are inverted (255 - ink);
 * with transform 2 (YCCK) the first three are YCbCr whose RGB is the ink itself (Go:
 * "invert the RGB to get CMY"), so the inverted sample is 255 - R. Then each colour is
 * (255 - ink) (255 - black) / 255, in Go's color.CMYK arithmetic (16-bit, truncated). */
static inline void cmyk_pixel(const jdec *j, int s0, int s1, int s2, int k, uint8_t *o) {
    int c[3] = {s0, s1, s2};
    if (j->adobe_transform != 0) { /* YCCK */
        int32_t yy = s0 * 0x10101, cb = s1 - 128, cr = s2 - 128;
        int32_t v[3] = {yy + 91881 * cr, yy - 22554 * cb - 46802 * cr, yy + 116130 * cb};
        for (int i = 0; i < 3; i++)
            c[i] = 255 - (((uint32_t)v[i] & 0xff000000u) == 0 ? (v[i] >> 16) : v[i] < 0 ? 0 : 255);
    }
    uint32_t w = (uint32_t)k * 0x101;
    for (int i = 0; i < 3; i++) o[i] = (uint8_t)(((uint32_t)c[i] * 0x101 * w / 0xffff) >> 8);
}

/* Convert the component planes to RGB, at the chosen scale: ceil(w*N/8) x ceil(h*N/8). */
static int to_rgb(jdec *j, img *out) {
    int W = (j->w * j->N + 7) / 8, H = (j->h * j->N + 7) / 8;
    if (j->ncomp == 4 && !j->adobe)
        return img_fail(j->e, IMG_UNSUPPORTED,
                        "unsupported: 4-component JPEG without an Adobe APP14 marker (CMYK or YCCK unknown)");
    uint8_t *rgb = malloc((size_t)W * H * 3);
    if (!rgb) return img_fail(j->e, IMG_TOO_LARGE, "jpeg: out of memory for a %dx%d RGB image", W, H);
    int is_rgb = j->ncomp == 3 && ((j->adobe && j->adobe_transform == 0) ||
                                   (j->comp[0].id == 'R' && j->comp[1].id == 'G' && j->comp[2].id == 'B'));
    /* Column of each output x in each component's plane (chroma replication), computed once
     * instead of a division per pixel. */
    uint32_t *cols = malloc(sizeof(uint32_t) * (size_t)W * (size_t)j->ncomp);
    if (!cols) {
        free(rgb);
        return img_fail(j->e, IMG_TOO_LARGE, "jpeg: out of memory for a %dx%d RGB image", W, H);
    }
    for (int i = 0; i < j->ncomp; i++)
        for (int x = 0; x < W; x++) cols[(size_t)i * W + x] = (uint32_t)(x * j->comp[i].h / j->hmax);
    /* Per component, log2 of hmax / h when that is a power of two (4:4:4, 4:2:2, 4:2:0, 4:1:1),
     * else -1: those rows take ycc_row, without the column table. */
    int sh[4] = {-1, -1, -1, -1};
    for (int i = 0; i < j->ncomp; i++)
        for (int k = 0; k <= 2; k++)
            if (j->comp[i].h << k == j->hmax) sh[i] = k;
    uint8_t *o = rgb;
    for (int y = 0; y < H; y++) {
        const uint8_t *row[4];
        for (int i = 0; i < j->ncomp; i++) {
            jcomp *c = &j->comp[i];
            row[i] = c->plane + (size_t)(y * c->v / j->vmax) * c->bw * j->N;
        }
        if (j->ncomp == 1) {
            for (int x = 0; x < W; x++, o += 3) o[0] = o[1] = o[2] = row[0][x];
            continue;
        }
        if (j->ncomp == 3 && !is_rgb && sh[0] == 0 && sh[1] >= 0 && sh[2] >= 0) {
            ycc_row(row[0], row[1], row[2], sh[1], sh[2], W, o);
            o += (size_t)W * 3;
            continue;
        }
        const uint32_t *c0 = cols, *c1 = cols + W, *c2 = cols + 2 * (size_t)W, *c3 = cols + 3 * (size_t)W;
        if (j->ncomp == 4) {
            for (int x = 0; x < W; x++, o += 3) cmyk_pixel(j, row[0][c0[x]], row[1][c1[x]], row[2][c2[x]], row[3][c3[x]], o);
            continue;
        }
        for (int x = 0; x < W; x++, o += 3) {
            int s[3] = {row[0][c0[x]], row[1][c1[x]], row[2][c2[x]]};
            if (is_rgb) {
                o[0] = (uint8_t)s[0], o[1] = (uint8_t)s[1], o[2] = (uint8_t)s[2];
                continue;
            }
            /* Go's color.YCbCrToRGB: 16.16 fixed point, JFIF coefficients. */
            int32_t yy = s[0] * 0x10101, cb = s[1] - 128, cr = s[2] - 128;
            int32_t v[3] = {yy + 91881 * cr, yy - 22554 * cb - 46802 * cr, yy + 116130 * cb};
            for (int i = 0; i < 3; i++)
                o[i] = ((uint32_t)v[i] & 0xff000000u) == 0 ? (uint8_t)(v[i] >> 16) : v[i] < 0 ? 0 : 255;
        }
    }
    free(cols);
    out->w = (uint32_t)W;
    out->h = (uint32_t)H;
    out->pix = rgb;
    return IMG_OK;
}

/* The end of decoding: the RGB image, or (jpeg_decode_tensor) the resized tensor, with out
 * holding only the decoded size. */
static int finish(jdec *j, img *out) {
    const jtensor *t = j->t;
    if (!t) return to_rgb(j, out);
    uint32_t W = (uint32_t)(j->w * j->N + 7) / 8, H = (uint32_t)(j->h * j->N + 7) / 8;
    int is_rgb = j->ncomp == 3 && ((j->adobe && j->adobe_transform == 0) ||
                                   (j->comp[0].id == 'R' && j->comp[1].id == 'G' && j->comp[2].id == 'B'));
    int shx = -1, shy = -1;
    if (j->ncomp == 3 && j->comp[1].h == j->comp[2].h && j->comp[1].v == j->comp[2].v)
        for (int k = 0; k <= 2; k++) {
            if (j->comp[1].h << k == j->hmax) shx = k;
            if (j->comp[1].v << k == j->vmax) shy = k;
        }
    int rc;
    if (t->C == 3 && j->ncomp == 3 && !is_rgb && shx >= 0 && shy >= 0 && j->comp[0].h == j->hmax &&
        j->comp[0].v == j->vmax) {
        img_plane pl[3];
        for (int i = 0; i < 3; i++) {
            pl[i].p = j->comp[i].plane;
            pl[i].stride = (size_t)j->comp[i].bw * j->N;
            pl[i].shx = i ? (unsigned)shx : 0, pl[i].shy = i ? (unsigned)shy : 0;
        }
        rc = img_resize_ycc(pl, W, H, t->dst, t->kind, t->H, t->W, t->mean, t->std);
    } else {
        img im;
        if ((rc = to_rgb(j, &im)) != IMG_OK) return rc;
        rc = img_resize(&im, t->dst, t->kind, t->H, t->W, t->C, t->mean, t->std);
        img_free(&im);
    }
    if (rc != IMG_OK) return img_fail(j->e, IMG_TOO_LARGE, "jpeg: out of memory resizing a %ux%u image", W, H);
    out->w = W, out->h = H;
    return IMG_OK;
}

static const char *sof_name(int m) {
    switch (m) {
    case 0xc3: return "lossless JPEG";
    case 0xc5: case 0xc6: case 0xc7: return "hierarchical JPEG";
    default: return "arithmetic-coded JPEG";
    }
}

static int decode(jdec *j, uint64_t max_pixels, uint32_t min_w, uint32_t min_h, img *out) {
    const uint8_t *p = j->data + 2; /* after SOI */
    for (;;) {
        /* Find the next marker: FF, optional FF fill bytes, then the code. */
        if (j->end - p < 2) {
            /* Tolerate a missing EOI once every component has been decoded (a sequential JPEG;
             * a progressive one may have lost scans, so it needs its EOI). */
            if (j->progressive) return bad(j, "truncated file (progressive JPEG without its EOI)");
            int done = j->frame;
            for (int i = 0; i < j->ncomp; i++) done = done && j->comp[i].scanned;
            if (done) return finish(j, out);
            return bad(j, "truncated file");
        }
        if (p[0] != 0xff) return bad(j, "expected a marker");
        int m = p[1];
        p += 2;
        if (m == 0xff) { p--; continue; } /* fill byte */
        if (m == 0xd9) {                   /* EOI */
            if (!j->frame) return bad(j, "no frame header before EOI");
            for (int i = 0; i < j->ncomp; i++)
                if (!j->comp[i].scanned) return bad(j, j->progressive ? "a component has no DC scan" : "a component has no scan");
            if (j->progressive) prog_output(j);
            return finish(j, out);
        }
        if (m == 0xd8) return bad(j, "unexpected SOI marker");
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01) continue; /* no payload */
        if (j->end - p < 2) return bad(j, "truncated marker segment");
        int len = be16(p);
        if (len < 2 || len > j->end - p) return bad(j, "truncated marker segment");
        const uint8_t *d = p + 2;
        int n = len - 2, rc = IMG_OK;
        p += len;
        switch (m) {
        case 0xc0: case 0xc1: case 0xc2:
            j->progressive = m == 0xc2;
            if ((rc = parse_size(j, d, n, max_pixels)) != IMG_OK) return rc;
            choose_scale(j, min_w, min_h);
            rc = parse_sof(j, d, n);
            break;
        case 0xc3: case 0xc5: case 0xc6: case 0xc7: case 0xc9: case 0xca: case 0xcb:
        case 0xcd: case 0xce: case 0xcf:
            return img_fail(j->e, IMG_UNSUPPORTED, "unsupported: %s (only Huffman-coded baseline and progressive JPEGs are decoded)",
                            sof_name(m));
        case 0xc4: rc = parse_dht(j, d, n); break;
        case 0xcc: return img_fail(j->e, IMG_UNSUPPORTED, "unsupported: arithmetic-coded JPEG");
        case 0xdb: rc = parse_dqt(j, d, n); break;
        case 0xdd:
            if (n != 2) return bad(j, "invalid DRI segment");
            j->restart = be16(d);
            break;
        case 0xee: /* APP14 "Adobe": colour transform flag */
            if (n >= 12 && memcmp(d, "Adobe", 5) == 0) j->adobe = 1, j->adobe_transform = d[11];
            break;
        case 0xda: {
            jcomp *sc[4];
            int ns = 0, ss = 0, se = 63, ah = 0, al = 0;
            if ((rc = parse_sos(j, d, n, sc, &ns, &ss, &se, &ah, &al)) != IMG_OK) return rc;
            if (j->progressive) {
                /* Each scan visits every block of its components: a small file of many empty
                 * scans would cost scans x blocks. libjpeg's own scripts use 6-10; TurboJPEG's
                 * scan limit is 500. */
                if (++j->scans > MAX_SCANS)
                    return img_fail(j->e, IMG_UNSUPPORTED, "unsupported: progressive JPEG with more than %d scans",
                                    MAX_SCANS);
                j->p = p;
                if ((rc = decode_scan_prog(j, sc, ns, ss, se, ah, al)) != IMG_OK) return rc;
            } else {
                if (j->N < 8) /* the skip tables of the AC tables the scan uses, from the cache if built */
                    for (int i = 0; i < ns; i++) {
                        int ta = sc[i]->ta;
                        const jhuff *t = &j->ac[ta];
                        if (!skip_cache[ta].valid || skip_cache[ta].nvals != t->nvals ||
                            memcmp(skip_cache[ta].counts, t->counts, 16) != 0 ||
                            memcmp(skip_cache[ta].vals, t->vals, (size_t)t->nvals) != 0) {
                            skip_cache[ta].valid = 0;
                            build_skip(t, skip_cache[ta].skip, skip_lvl);
                            memcpy(skip_cache[ta].counts, t->counts, 16);
                            memcpy(skip_cache[ta].vals, t->vals, (size_t)t->nvals);
                            skip_cache[ta].nvals = t->nvals;
                            skip_cache[ta].valid = 1;
                        }
                        j->skip[ta] = skip_cache[ta].skip;
                    }
                j->p = p;
                if ((rc = decode_scan(j, sc, ns)) != IMG_OK) return rc;
            }
            /* Skip to the marker after the scan data: past stuffed FF00s and RSTn. */
            p = j->p;
            while (p < j->end && !(p[0] == 0xff && p + 1 < j->end && p[1] != 0 && !(p[1] >= 0xd0 && p[1] <= 0xd7)))
                p++;
            break;
        }
        default: break; /* APPn, COM, DHP, EXP, ... : skipped */
        }
        if (rc != IMG_OK) return rc;
    }
}

int jpeg_decode(const uint8_t *data, size_t len, uint64_t max_pixels, img *out, img_err *e) {
    return jpeg_decode_scaled(data, len, max_pixels, 0, 0, out, e);
}

static int decode_to(const uint8_t *data, size_t len, uint64_t max_pixels, uint32_t min_w, uint32_t min_h,
                     img *out, img_err *e, const jtensor *t) {
    memset(out, 0, sizeof *out);
    if (!jpeg_sniff(data, len)) return img_fail(e, IMG_BAD, "jpeg: bad signature");
    if (len > 0x7fffffff) return img_fail(e, IMG_UNSUPPORTED, "jpeg: file too large");
    jdec *j = calloc(1, sizeof *j);
    if (!j) return img_fail(e, IMG_NOMEM, "jpeg: out of memory");
    j->data = data, j->end = data + len, j->e = e, j->t = t;
    int rc = decode(j, max_pixels, min_w, min_h, out);
    for (int i = 0; i < 4; i++) free(j->comp[i].plane), free(j->comp[i].coef), free(j->comp[i].nz);
    free(j);
    return rc;
}

int jpeg_decode_scaled(const uint8_t *data, size_t len, uint64_t max_pixels, uint32_t min_w, uint32_t min_h,
                       img *out, img_err *e) {
    return decode_to(data, len, max_pixels, min_w, min_h, out, e, NULL);
}

int jpeg_decode_tensor(const uint8_t *data, size_t len, uint64_t max_pixels, void *dst, int kind, uint32_t H,
                       uint32_t W, uint32_t C, const float mean[3], const float std[3], uint32_t *w, uint32_t *h,
                       img_err *e) {
    jtensor t = {dst, kind, H, W, C, mean, std};
    img out;
    int rc = decode_to(data, len, max_pixels, W, H, &out, e, &t);
    *w = out.w, *h = out.h;
    return rc;
}

/* ---- EXIF orientation ------------------------------------------------------------------ */

int jpeg_exif_orientation(const uint8_t *d, size_t n) {
    if (!jpeg_sniff(d, n)) return 1;
    for (size_t p = 2; p + 4 <= n;) {
        if (d[p] != 0xff) return 1;
        uint8_t m = d[p + 1];
        if (m == 0xff) { p++; continue; }
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) { p += 2; continue; }
        if (m == 0xda || m == 0xd9) return 1; /* the scan: no EXIF before it */
        size_t len = (size_t)d[p + 2] << 8 | d[p + 3];
        if (len < 2 || len > n - p - 2) return 1;
        const uint8_t *s = d + p + 4;
        size_t sl = len - 2;
        if (m == 0xe1 && sl >= 14 && memcmp(s, "Exif\0\0", 6) == 0) {
            const uint8_t *t = s + 6; /* the TIFF header: byte order, 42, offset of IFD0 */
            size_t tl = sl - 6;
            int le;
            if (memcmp(t, "II*\0", 4) == 0) le = 1;
            else if (memcmp(t, "MM\0*", 4) == 0) le = 0;
            else return 1;
#define U16(q) (le ? (uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 : (uint32_t)(q)[0] << 8 | (q)[1])
#define U32(q) (le ? U16(q) | U16((q) + 2) << 16 : U16(q) << 16 | U16((q) + 2))
            uint32_t ifd = U32(t + 4);
            if (ifd > tl || tl - ifd < 2) return 1;
            uint32_t count = U16(t + ifd);
            for (uint32_t i = 0; i < count; i++) {
                size_t e = ifd + 2 + (size_t)i * 12;
                if (e + 12 > tl) return 1;
                if (U16(t + e) == 0x0112) { /* Orientation: SHORT, count 1, value in the entry */
                    uint32_t v = U16(t + e + 8);
                    return U16(t + e + 2) == 3 && U32(t + e + 4) == 1 && v >= 1 && v <= 8 ? (int)v : 1;
                }
            }
#undef U16
#undef U32
            return 1;
        }
        p += 2 + len;
    }
    return 1;
}

void img_orient(const uint8_t *src, uint8_t *dst, uint32_t H, uint32_t W, size_t elem, int o) {
    /* src: the resized stored image, Hr x Wr (W x H transposed for 5-8); dst: H x W. */
    uint32_t Wr = o >= 5 ? H : W, Hr = o >= 5 ? W : H;
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++) {
            uint32_t sx, sy;
            switch (o) {
            case 2: sx = Wr - 1 - x, sy = y; break;
            case 3: sx = Wr - 1 - x, sy = Hr - 1 - y; break;
            case 4: sx = x, sy = Hr - 1 - y; break;
            case 5: sx = y, sy = x; break;
            case 6: sx = y, sy = Hr - 1 - x; break;
            case 7: sx = Wr - 1 - y, sy = Hr - 1 - x; break;
            case 8: sx = Wr - 1 - y, sy = x; break;
            default: sx = x, sy = y; break;
            }
            memcpy(dst + ((size_t)y * W + x) * elem, src + ((size_t)sy * Wr + sx) * elem, elem);
        }
}

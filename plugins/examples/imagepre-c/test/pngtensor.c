/*
 * pngtensor.c - png_decode_tensor (row by row, the plugin's PNG path) against png_decode +
 * img_resize (the whole image, then the resize) (not part of the plugin).
 *
 *   pngtensor [-n RANDOM_PNGS] [FILE...]
 *
 * For each FILE (PngSuite, peacock.png, ...) and for RANDOM_PNGS generated PNGs (every colour
 * type and bit depth, interlaced or not, 1 to 300 pixels a side, random filter bytes and
 * pixels, the zlib stream at a random level cut into IDAT chunks of random sizes, some of 0
 * and 1 bytes), both paths run at several output sizes, dtypes and channel counts (smaller,
 * larger, 1x1, odd): the tensors must be equal byte for byte, and where one path refuses the
 * image the other must too. Then truncations of some PNGs: the same agreement. Exit 0 when
 * all agree. Built by test/run.sh with AddressSanitizer + UBSan, linked with -lz.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zlib_min.h"

#include "../image.h"
#include "testutil.h"

static uint64_t rng = 0x243f6a8885a308d3u;
static uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static unsigned long checks, failures;

static const uint32_t sizes[][4] = {/* W, H, C, kind */
                                    {224, 224, 3, IMG_OUT_U8}, {7, 5, 3, IMG_OUT_F32}, {300, 300, 1, IMG_OUT_I8},
                                    {1, 1, 3, IMG_OUT_U8},     {33, 2, 1, IMG_OUT_F32}, {2, 61, 3, IMG_OUT_I8}};

/* Both paths on one PNG at one output size. */
static void compare(const char *what, const uint8_t *png, size_t n, const uint32_t sz[4]) {
    static const float mean[3] = {127.5f, 120, 100}, std[3] = {127.5f, 60, 30};
    uint32_t W = sz[0], H = sz[1], C = sz[2];
    int kind = (int)sz[3];
    size_t bytes = (size_t)W * H * C * (kind == IMG_OUT_F32 ? 4 : 1);
    uint8_t *a = calloc(bytes, 1), *b = calloc(bytes, 1);
    img im;
    img_err ea = {{0}}, eb = {{0}};
    int ra = png_decode(png, n, 1u << 26, &im, &ea);
    if (ra == IMG_OK) {
        if (img_resize(&im, a, kind, H, W, C, mean, std) != IMG_OK) ra = IMG_NOMEM;
        img_free(&im);
    }
    uint32_t w = 0, h = 0;
    int rb = png_decode_tensor(png, n, 1u << 26, b, kind, H, W, C, mean, std, &w, &h, &eb);
    checks++;
    const char *why = NULL;
    if ((ra == IMG_OK) != (rb == IMG_OK)) why = "one path refuses what the other decodes";
    else if (ra == IMG_OK && memcmp(a, b, bytes) != 0) why = "tensors differ";
    if (why) {
        failures++;
        if (failures <= 20)
            printf("FAIL %s -> %ux%ux%u kind %d: %s (whole image: %d %s; row by row: %d %s)\n", what, W, H, C, kind,
                   why, ra, ra ? ea.msg : "", rb, rb ? eb.msg : "");
    }
    free(a);
    free(b);
}

static void compare_all(const char *what, const uint8_t *png, size_t n) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) compare(what, png, n, sizes[i]);
}

/* ---- A PNG writer with random contents ------------------------------------------------- */

static uint8_t *put32(uint8_t *q, uint32_t v) {
    q[0] = (uint8_t)(v >> 24), q[1] = (uint8_t)(v >> 16), q[2] = (uint8_t)(v >> 8), q[3] = (uint8_t)v;
    return q + 4;
}

static uint8_t *chunk(uint8_t *q, const char *type, const uint8_t *body, uint32_t len) {
    q = put32(q, len);
    memcpy(q, type, 4);
    if (len) memcpy(q + 4, body, len);
    return put32(q + 4 + len, crc(q, len + 4));
}

static const uint8_t adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                    {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};

/* A random valid PNG; its length in *n. */
static uint8_t *random_png(size_t *n, char *what, size_t what_len) {
    static const uint8_t types[] = {0, 2, 3, 4, 6};
    static const uint8_t depths[5][5] = {{1, 2, 4, 8, 16}, {8, 16}, {1, 2, 4, 8}, {8, 16}, {8, 16}};
    static const int ndepths[5] = {5, 2, 4, 2, 2};
    int ti = (int)(rnd() % 5);
    uint8_t ctype = types[ti], depth = depths[ti][rnd() % ndepths[ti]];
    unsigned channels = ctype == 2 ? 3 : ctype == 4 ? 2 : ctype == 6 ? 4 : 1;
    uint32_t w = 1 + rnd() % (rnd() % 4 ? 40 : 300), h = 1 + rnd() % (rnd() % 4 ? 40 : 300);
    int interlace = (int)(rnd() % 2);
    snprintf(what, what_len, "random %ux%u type %u depth %u%s", w, h, ctype, depth, interlace ? " Adam7" : "");
    /* the inflated data: per pass, rows of a filter byte and random bytes */
    size_t raw_len = 0;
    for (int p = 0; p < (interlace ? 7 : 1); p++) {
        const uint8_t *a = interlace ? adam7[p] : (const uint8_t[]){0, 0, 1, 1};
        uint32_t pw = w > a[0] ? (w - a[0] + a[2] - 1) / a[2] : 0, ph = h > a[1] ? (h - a[1] + a[3] - 1) / a[3] : 0;
        if (pw && ph) raw_len += (size_t)ph * (1 + ((size_t)pw * channels * depth + 7) / 8);
    }
    uint8_t *raw = malloc(raw_len ? raw_len : 1);
    int smooth = rnd() % 2; /* small values compress, and exercise the predictors' sums */
    for (size_t i = 0; i < raw_len; i++) raw[i] = (uint8_t)(smooth ? rnd() % 4 : rnd());
    /* filter bytes 0-4 at the start of each row */
    size_t off = 0;
    for (int p = 0; p < (interlace ? 7 : 1); p++) {
        const uint8_t *a = interlace ? adam7[p] : (const uint8_t[]){0, 0, 1, 1};
        uint32_t pw = w > a[0] ? (w - a[0] + a[2] - 1) / a[2] : 0, ph = h > a[1] ? (h - a[1] + a[3] - 1) / a[3] : 0;
        if (!pw || !ph) continue;
        size_t rb = 1 + ((size_t)pw * channels * depth + 7) / 8;
        for (uint32_t y = 0; y < ph; y++, off += rb) raw[off] = (uint8_t)(rnd() % 5);
    }
    uLongf zn = compressBound(raw_len);
    uint8_t *z = malloc(zn);
    compress2(z, &zn, raw, raw_len, (int)(rnd() % 10));
    free(raw);
    size_t cap = 8 + 25 + 12 + 780 + zn + 12 * (2 * zn + 4) + 12; /* every chunk of 0, 1 or more bytes */
    uint8_t *png = malloc(cap), *q = png;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(q, sig, 8), q += 8;
    uint8_t ihdr[13] = {0};
    put32(ihdr, w), put32(ihdr + 4, h);
    ihdr[8] = depth, ihdr[9] = ctype, ihdr[12] = (uint8_t)interlace;
    q = chunk(q, "IHDR", ihdr, 13);
    if (ctype == 3) {
        uint8_t pal[768];
        uint32_t np = 1 + rnd() % 256;
        for (uint32_t i = 0; i < np * 3; i++) pal[i] = (uint8_t)rnd();
        q = chunk(q, "PLTE", pal, np * 3);
    }
    int tiny = rnd() % 4 == 0;
    size_t empty = 0; /* empty IDAT chunks, at most zn + 2 (the room reserved above) */
    for (size_t o = 0; o < zn;) {
        size_t k = tiny ? rnd() % 3 : 1 + rnd() % 20000;
        if (k == 0 && empty++ >= zn + 1) k = 1;
        if (k > zn - o) k = zn - o;
        q = chunk(q, "IDAT", z + o, (uint32_t)k);
        o += k;
    }
    q = chunk(q, "IEND", NULL, 0);
    free(z);
    *n = (size_t)(q - png);
    return png;
}

int main(int argc, char **argv) {
    int nrand = 300, a = 1;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) nrand = atoi(argv[2]), a = 3;
    unsigned long files = 0;
    for (; a < argc; a++) {
        size_t n;
        uint8_t *png = read_file(argv[a], &n);
        if (!png) return 1;
        const char *base = strrchr(argv[a], '/');
        compare_all(base ? base + 1 : argv[a], png, n);
        files++;
        free(png);
    }
    char what[128];
    for (int i = 0; i < nrand; i++) {
        size_t n;
        uint8_t *png = random_png(&n, what, sizeof what);
        compare_all(what, png, n);
        if (i % 10 == 0) { /* some truncations and corruptions (CRCs kept valid by the writer) */
            for (int t = 0; t < 8; t++) {
                size_t cut = rnd() % n;
                uint8_t *c = malloc(cut ? cut : 1);
                memcpy(c, png, cut);
                compare(what, c, cut, sizes[t % 6]);
                free(c);
            }
        }
        free(png);
    }
    printf("%lu files and %d random PNGs: %lu comparisons, %lu failures\n", files, nrand, checks, failures);
    return failures ? 1 : 0;
}

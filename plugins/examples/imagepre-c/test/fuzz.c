/*
 * fuzz.c - robustness test for the imagepre-c decoders (not part of the plugin).
 *
 *   fuzz ITERATIONS FILE...
 *
 * For each file: decodes every truncation (all lengths for files up to 64 KiB, else 4096
 * random ones), then ITERATIONS random corruptions. For PNG inputs the chunk CRCs are fixed
 * up after corrupting, so that the damage reaches the zlib and filter code instead of being
 * stopped by the CRC check. Build with -fsanitize=address,undefined: any out-of-bounds
 * access or undefined behaviour aborts. Prints a count of results per status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../image.h"
#include "testutil.h"

static unsigned long counts[6];

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void decode(const uint8_t *d, size_t n) {
    /* Copy into an exact-size heap block so that ASan sees any overread. */
    uint8_t *b = malloc(n ? n : 1);
    memcpy(b, d, n);
    img im;
    img_err e;
    /* JPEGs: full size and the scaled paths in turn (1/8, 1/4 and 1/2 for a 1920x1280 frame:
     * the skip tables and the vector IDCT run only there). */
    static const uint32_t min_side[4] = {0, 1, 300, 600};
    static unsigned turn;
    uint32_t ms = min_side[turn++ % 4];
    /* Every other JPEG through jpeg_decode_tensor (the plugin's path: planar resize), into a
     * tensor of side ms (8 for 0), u8 / i8 / f32 in turn; every other PNG through
     * png_decode_tensor (the plugin's path: row by row), the others decoded then resized. */
    static const float mean[3] = {127.5f, 127.5f, 127.5f}, std[3] = {127.5f, 127.5f, 127.5f};
    static uint8_t tensor[600 * 600 * 3 * 4];
    uint32_t side = ms ? ms : 8, tw, th;
    int kind = (int)(turn / 4 % 3), rc;
    int o = jpeg_exif_orientation(b, n); /* bounds-checked on every input */
    if (o < 1 || o > 8) abort();
    if (png_sniff(b, n) && (turn / 4) % 2) { /* every other PNG row by row (the plugin's path) */
        rc = png_decode_tensor(b, n, 1u << 24, tensor, kind, 37, 29, 1 + 2 * (turn & 1), mean, std, &tw, &th, &e);
    } else if (png_sniff(b, n)) {
        rc = png_decode(b, n, 1u << 24, &im, &e);
        if (rc == IMG_OK && img_resize(&im, tensor, kind, 37, 29, 1 + 2 * (turn & 1), mean, std) != IMG_OK) abort();
        if (rc == IMG_OK) img_free(&im);
    } else if (jpeg_sniff(b, n) && (turn / 4) % 2) {
        rc = jpeg_decode_tensor(b, n, 1u << 24, tensor, kind, side, side, 3, mean, std, &tw, &th, &e);
    } else if (jpeg_sniff(b, n)) {
        rc = jpeg_decode_scaled(b, n, 1u << 24, ms, ms, &im, &e);
        if (rc == IMG_OK) img_free(&im);
    } else {
        rc = IMG_UNSUPPORTED;
    }
    if (rc < 0 || rc > 5 || rc == 4) abort(); /* only decoder statuses */
    counts[rc]++;
    free(b);
}


/* Recompute the CRC of every complete chunk of a PNG. */
static void fix_crcs(uint8_t *d, size_t n) {
    size_t pos = 8;
    while (n - pos >= 12) {
        uint32_t len = (uint32_t)d[pos] << 24 | d[pos + 1] << 16 | d[pos + 2] << 8 | d[pos + 3];
        if (len > n - pos - 12) return;
        uint32_t c = crc(d + pos + 4, len + 4);
        uint8_t *q = d + pos + 8 + len;
        q[0] = (uint8_t)(c >> 24), q[1] = (uint8_t)(c >> 16), q[2] = (uint8_t)(c >> 8), q[3] = (uint8_t)c;
        pos += 12 + len;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fuzz ITERATIONS FILE...\n");
        return 1;
    }
    long iters = atol(argv[1]);
    for (int a = 2; a < argc; a++) {
        size_t n;
        uint8_t *d = read_file(argv[a], &n), *m = malloc(n ? n : 1);
        if (!d || !m) return 1;
        int png = png_sniff(d, n);
        /* The file itself through every path of decode() (scales x tensor or image x dtype). */
        for (int k = 0; k < 24; k++) decode(d, n);
        /* Truncations. */
        if (n <= 65536)
            for (size_t k = 0; k < n; k++) decode(d, k);
        else
            for (int k = 0; k < 256; k++) decode(d, rnd() % n);
        /* Corruptions: 1..8 random bytes set to random values, sometimes also truncated. */
        for (long i = 0; i < iters; i++) {
            memcpy(m, d, n);
            int k = 1 + (int)(rnd() % 8);
            for (int j = 0; j < k; j++) {
                size_t at = png ? 8 + rnd() % (n - 8) : rnd() % n;
                m[at] = (rnd() & 3) ? (uint8_t)rnd() : (uint8_t)(m[at] ^ (1u << (rnd() % 8)));
            }
            if (png) fix_crcs(m, n);
            size_t len = (rnd() % 4 == 0) ? rnd() % n : n;
            decode(m, len);
        }
        free(d);
        free(m);
    }
    printf("ok=%lu bad_input=%lu internal=%lu unsupported=%lu too_large=%lu\n", counts[0], counts[1], counts[2], counts[3],
           counts[5]);
    return 0;
}

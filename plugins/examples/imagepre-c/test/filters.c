/*
 * filters.c - PNG filter round trip (not part of the plugin).
 *
 * Builds 8-bit RGB and RGBA PNGs of random pixels in memory, each row with filter type
 * y % 5 (None, Sub, Up, Average, Paeth) applied by a plain reference encoder, the zlib
 * stream in stored blocks; decodes them with png_decode and checks every pixel. Covers the
 * vector Average and Paeth paths for 3- and 4-byte pixels, including rows of 1 and 2 pixels.
 * Exit 0 when all match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../image.h"
#include "testutil.h"

static uint32_t rng = 99;
static uint32_t rnd(void) { rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5; return rng; }


static uint8_t *put32(uint8_t *q, uint32_t v) {
    q[0] = (uint8_t)(v >> 24), q[1] = (uint8_t)(v >> 16), q[2] = (uint8_t)(v >> 8), q[3] = (uint8_t)v;
    return q + 4;
}

static uint8_t *chunk(uint8_t *q, const char *type, const uint8_t *body, uint32_t len) {
    q = put32(q, len);
    memcpy(q, type, 4);
    if (len) memcpy(q + 4, body, len);
    q = put32(q + 4 + len, crc(q, len + 4));
    return q;
}

static int ref_paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

static int one(uint32_t w, uint32_t h, unsigned bpp) {
    size_t rb = (size_t)w * bpp, rawn = (1 + rb) * h;
    uint8_t *px = malloc(rb * h), *raw = malloc(rawn);
    for (size_t i = 0; i < rb * h; i++) px[i] = (uint8_t)(rnd() % 7 == 0 ? rnd() : (i / bpp) * 3 + (i % bpp) * 50);
    for (uint32_t y = 0; y < h; y++) {
        unsigned ft = y % 5;
        uint8_t *o = raw + y * (1 + rb);
        const uint8_t *cur = px + y * rb, *up = y ? cur - rb : NULL;
        o[0] = (uint8_t)ft;
        for (size_t i = 0; i < rb; i++) {
            int a = i >= bpp ? cur[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= bpp ? up[i - bpp] : 0;
            int pred = ft == 1 ? a : ft == 2 ? b : ft == 3 ? (a + b) / 2 : ft == 4 ? ref_paeth(a, b, c) : 0;
            o[1 + i] = (uint8_t)(cur[i] - pred);
        }
    }
    /* zlib: header, stored blocks of up to 65535 bytes, Adler-32 */
    size_t zn = 2 + rawn + 5 * (rawn / 65535 + 1) + 4;
    uint8_t *z = malloc(zn), *q = z;
    *q++ = 0x78, *q++ = 0x01;
    for (size_t off = 0; off < rawn || off == 0;) {
        size_t k = rawn - off < 65535 ? rawn - off : 65535;
        *q++ = off + k == rawn;
        q[0] = (uint8_t)k, q[1] = (uint8_t)(k >> 8), q[2] = (uint8_t)~k, q[3] = (uint8_t)(~k >> 8);
        memcpy(q + 4, raw + off, k);
        q += 4 + k, off += k;
        if (k == 0) break;
    }
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < rawn; i++) a = (a + raw[i]) % 65521, b = (b + a) % 65521;
    q = put32(q, b << 16 | a);
    uint8_t *png = malloc(8 + 25 + 12 + (size_t)(q - z) + 12), *p = png;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13];
    put32(ihdr, w), put32(ihdr + 4, h);
    ihdr[8] = 8, ihdr[9] = bpp == 4 ? 6 : 2, ihdr[10] = ihdr[11] = ihdr[12] = 0;
    p = chunk(p + 8, "IHDR", ihdr, 13);
    p = chunk(p, "IDAT", z, (uint32_t)(q - z));
    p = chunk(p, "IEND", NULL, 0);
    img im;
    img_err e;
    int bad = 0;
    if (png_decode(png, (size_t)(p - png), 1u << 24, &im, &e) != IMG_OK) {
        printf("FAIL %ux%u bpp %u: %s\n", w, h, bpp, e.msg);
        bad = 1;
    } else {
        for (size_t i = 0; i < (size_t)w * h && !bad; i++)
            if (memcmp(im.pix + 3 * i, px + bpp * i, 3) != 0) {
                printf("FAIL %ux%u bpp %u: pixel %zu (row %zu, filter %zu) differs\n", w, h, bpp, i, i / w, i / w % 5);
                bad = 1;
            }
        img_free(&im);
    }
    free(px), free(raw), free(z), free(png);
    return bad;
}

int main(void) {
    static const uint32_t ws[] = {1, 2, 3, 5, 64, 133};
    int bad = 0;
    for (unsigned bpp = 3; bpp <= 4; bpp++)
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) bad |= one(ws[i], 23, bpp);
    if (!bad) printf("ok\n");
    return bad;
}

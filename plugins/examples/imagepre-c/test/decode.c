/*
 * decode.c - native test harness for the imagepre-c decoders (not part of the plugin).
 *
 *   decode IN [OUT.rgb]
 *   decode -scales IN.jpg
 *
 * Decodes IN (PNG or JPEG), prints "ok WxH" or "error STATUS: message", and writes the raw
 * RGB bytes to OUT.rgb when given. Exit code: 0 ok, 10 + status on a decoder error, 1 on a
 * harness error. Built by test/run.sh with -fsanitize=address,undefined.
 *
 * -scales decodes a JPEG at full size and at 1/2, 1/4 and 1/8 (the DCT-domain paths) and
 * prints, per scale, the PSNR against the full decode box-filtered to the same size; it
 * exits 2 when a scale is below 30 dB (a decoder that loses its place in the entropy-coded
 * data, or a wrong IDCT, lands far below that).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../image.h"
#include "testutil.h"

/* PSNR of the scaled decode s (factor f) against the box-filtered full decode.
 * Edge blocks of the scaled image average what of the full image exists. */
static double psnr(const img *full, const img *s, int f) {
    double se = 0;
    size_t cnt = 0;
    for (uint32_t y = 0; y < s->h; y++)
        for (uint32_t x = 0; x < s->w; x++)
            for (int c = 0; c < 3; c++) {
                double sum = 0;
                int m = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) {
                        uint32_t fx = x * f + dx, fy = y * f + dy;
                        if (fx < full->w && fy < full->h) sum += full->pix[((size_t)fy * full->w + fx) * 3 + c], m++;
                    }
                double d = sum / m - s->pix[((size_t)y * s->w + x) * 3 + c];
                se += d * d, cnt++;
            }
    return se == 0 ? 99 : 10 * log10(255.0 * 255.0 * cnt / se);
}

static int scales(const unsigned char *buf, size_t n) {
    img full, s;
    img_err e = {{0}};
    if (jpeg_decode(buf, n, 1u << 26, &full, &e) != IMG_OK) { printf("error: %s\n", e.msg); return 1; }
    int rc = 0;
    for (int f = 2; f <= 8; f *= 2) {
        uint32_t mw = (full.w + f - 1) / f, mh = (full.h + f - 1) / f;
        if (jpeg_decode_scaled(buf, n, 1u << 26, mw, mh, &s, &e) != IMG_OK) { printf("error 1/%d: %s\n", f, e.msg); return 1; }
        if (s.w != mw || s.h != mh) { printf("1/%d: got %ux%u, want %ux%u\n", f, s.w, s.h, mw, mh); return 1; }
        double p = psnr(&full, &s, f);
        printf("1/%d %ux%u %.1f dB\n", f, s.w, s.h, p);
        if (p < 30) rc = 2;
        img_free(&s);
    }
    img_free(&full);
    return rc;
}

int main(int argc, char **argv) {
    int scale_mode = argc > 2 && strcmp(argv[1], "-scales") == 0;
    if (scale_mode) argv++, argc--;
    if (argc < 2) {
        fprintf(stderr, "usage: decode IN [OUT.rgb]\n");
        return 1;
    }
    size_t n;
    unsigned char *buf = read_file(argv[1], &n);
    if (!buf) return 1;

    if (scale_mode) {
        int r = scales(buf, (size_t)n);
        free(buf);
        return r;
    }
    img im;
    img_err e = {{0}};
    int rc;
    if (png_sniff(buf, (size_t)n)) rc = png_decode(buf, (size_t)n, 1u << 26, &im, &e);
    else if (jpeg_sniff(buf, (size_t)n)) rc = jpeg_decode(buf, (size_t)n, 1u << 26, &im, &e);
    else rc = img_fail(&e, IMG_UNSUPPORTED, "unknown image format");
    free(buf);
    if (rc != IMG_OK) {
        printf("error %d: %s\n", rc, e.msg);
        return 10 + rc;
    }
    printf("ok %ux%u\n", im.w, im.h);
    if (argc > 2) {
        FILE *o = fopen(argv[2], "wb");
        if (!o || fwrite(im.pix, 1, (size_t)im.w * im.h * 3, o) != (size_t)im.w * im.h * 3) {
            perror(argv[2]);
            return 1;
        }
        fclose(o);
    }
    img_free(&im);
    return 0;
}

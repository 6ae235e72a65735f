/*
 * bench.c - the plugin's whole pre stage natively (decode + img_resize), for instruction
 * counts under valgrind --tool=callgrind and for dumping the tensor (not part of the plugin).
 *
 *   bench IN H W [u8|i8|f32] [REPEAT] [OUT.tensor]
 *
 * Decodes IN as the plugin does (JPEG at the smallest DCT scale still >= W x H, through
 * jpeg_decode_tensor; PNG row by row through png_decode_tensor; with BENCH_RGB set, both
 * through the RGB image and img_resize) and resizes it into an H x W x 3 tensor, REPEAT
 * times; writes the last tensor to OUT when given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../image.h"
#include "testutil.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench IN H W [u8|i8|f32] [REPEAT] [OUT]\n");
        return 1;
    }
    size_t n;
    unsigned char *buf = read_file(argv[1], &n);
    if (!buf) return 1;
    uint32_t H = (uint32_t)atoi(argv[2]), W = (uint32_t)atoi(argv[3]);
    int kind = IMG_OUT_U8;
    size_t esz = 1;
    if (argc > 4 && strcmp(argv[4], "i8") == 0) kind = IMG_OUT_I8;
    if (argc > 4 && strcmp(argv[4], "f32") == 0) kind = IMG_OUT_F32, esz = 4;
    int rep = argc > 5 ? atoi(argv[5]) : 1;
    const float mean[3] = {127.5f, 127.5f, 127.5f}, std[3] = {127.5f, 127.5f, 127.5f};
    void *t = malloc((size_t)H * W * 3 * esz);
    for (int r = 0; r < rep; r++) {
        img im;
        img_err e = {{0}};
        int rc;
        if (jpeg_sniff(buf, (size_t)n) && !getenv("BENCH_RGB")) { /* as the plugin does */
            uint32_t w, h;
            rc = jpeg_decode_tensor(buf, (size_t)n, 1u << 26, t, kind, H, W, 3, mean, std, &w, &h, &e);
            if (rc != IMG_OK) { printf("error %d: %s\n", rc, e.msg); return 10 + rc; }
            continue;
        }
        if (png_sniff(buf, (size_t)n) && !getenv("BENCH_RGB")) { /* as the plugin does */
            uint32_t w, h;
            rc = png_decode_tensor(buf, (size_t)n, 1u << 26, t, kind, H, W, 3, mean, std, &w, &h, &e);
            if (rc != IMG_OK) { printf("error %d: %s\n", rc, e.msg); return 10 + rc; }
            continue;
        }
        /* BENCH_RGB set: through the RGB image and img_resize, as before the *_decode_tensor paths */
        rc = png_sniff(buf, (size_t)n) ? png_decode(buf, (size_t)n, 1u << 26, &im, &e)
                                       : jpeg_decode_scaled(buf, (size_t)n, 1u << 26, W, H, &im, &e);
        if (rc != IMG_OK) { printf("error %d: %s\n", rc, e.msg); return 10 + rc; }
        if (img_resize(&im, t, kind, H, W, 3, mean, std) != IMG_OK) return 1;
        img_free(&im);
    }
    if (argc > 6) {
        FILE *o = fopen(argv[6], "wb");
        fwrite(t, esz, (size_t)H * W * 3, o);
        fclose(o);
    }
    free(t);
    free(buf);
    return 0;
}

/*
 * simd.c - one line per decode, for comparing builds (not part of the plugin).
 *
 *   simd IN...
 *
 * For each IN (PNG or JPEG): the image decoded at full size and, for a JPEG, at 1/2, 1/4 and
 * 1/8 (jpeg_decode_scaled), and resized into u8, i8 and f32 tensors (the plugin's
 * jpeg_decode_tensor and png_decode_tensor paths); each result printed as its size and an
 * FNV-1a hash of its bytes. host/plugin's TestDecoderSIMDMatchesScalar builds it natively
 * (the scalar loops) and for wasm32 with -msimd128 (the Wasm SIMD128 loops: IDCT stores,
 * colour conversion) and requires the same lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../image.h"
#include "testutil.h"

static uint64_t fnv(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 14695981039346656037ull;
    while (n--) h = (h ^ *b++) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv) {
    static const uint32_t tsize[][2] = {{300, 300}, {128, 128}, {257, 257}, {224, 224}};
    const float mean[3] = {127.5f, 127.5f, 127.5f}, std[3] = {127.5f, 127.5f, 127.5f};
    for (int a = 1; a < argc; a++) {
        size_t n;
        unsigned char *buf = read_file(argv[a], &n);
        if (!buf) return 1;
        int jpeg = jpeg_sniff(buf, n);
        const char *name = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
        for (int s = 0; s < (jpeg ? 4 : 1); s++) {
            img im;
            img_err e = {{0}};
            uint32_t w = 0, h = 0;
            img_header_size(buf, n, &w, &h);
            /* the smallest size still at 1/2^s */
            uint32_t mw = s ? (w >> s) : 0, mh = s ? (h >> s) : 0;
            int rc = jpeg ? jpeg_decode_scaled(buf, n, 1u << 26, mw, mh, &im, &e) : png_decode(buf, n, 1u << 26, &im, &e);
            if (rc != IMG_OK) {
                printf("%s 1/%d: error %d %s\n", name, 1 << s, rc, e.msg);
                continue;
            }
            printf("%s 1/%d: %ux%u %016llx\n", name, 1 << s, im.w, im.h,
                   (unsigned long long)fnv(im.pix, (size_t)im.w * im.h * 3));
            img_free(&im);
        }
        for (size_t t = 0; t < sizeof tsize / sizeof tsize[0]; t++)
            for (int kind = IMG_OUT_U8; kind <= IMG_OUT_F32; kind++) {
                uint32_t H = tsize[t][0], W = tsize[t][1], w, h;
                size_t bytes = (size_t)H * W * 3 * (kind == IMG_OUT_F32 ? 4 : 1);
                void *dst = malloc(bytes);
                img_err e = {{0}};
                int rc = jpeg ? jpeg_decode_tensor(buf, n, 1u << 26, dst, kind, H, W, 3, mean, std, &w, &h, &e)
                              : png_decode_tensor(buf, n, 1u << 26, dst, kind, H, W, 3, mean, std, &w, &h, &e);
                if (rc != IMG_OK) printf("%s -> %ux%u kind %d: error %d %s\n", name, W, H, kind, rc, e.msg);
                else printf("%s -> %ux%u kind %d: from %ux%u %016llx\n", name, W, H, kind, w, h, (unsigned long long)fnv(dst, bytes));
                free(dst);
            }
        free(buf);
    }
    return 0;
}

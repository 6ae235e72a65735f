/*
 * decode.c - native test harness for the imagepre-c decoders (not part of the plugin).
 *
 *   decode IN [OUT.rgb]
 *
 * Decodes IN (PNG or JPEG), prints "ok WxH" or "error STATUS: message", and writes the raw
 * RGB bytes to OUT.rgb when given. Exit code: 0 ok, 10 + status on a decoder error, 1 on a
 * harness error. Built by test/run.sh with -fsanitize=address,undefined.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../image.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: decode IN [OUT.rgb]\n");
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    /* Exact-size heap buffer, so ASan catches any read past the end of the input. */
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "read failed\n"); return 1; }
    fclose(f);

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

/*
 * progressive.c - progressive JPEG tests for the imagepre-c decoder (not part of the plugin).
 *
 *   progressive BASE.jpg PROG.jpg...      each PROG must decode exactly as BASE
 *   progressive -trunc PROG.jpg           every truncation must be refused as bad input
 *   progressive -status N TEXT FILE...    each FILE must fail with status N, TEXT in the message
 *   progressive -scans                    500 scans decode, 501 are refused (status 3)
 *
 * BASE is a sequential JPEG and each PROG a lossless transcode of it (jpegtran -progressive
 * or -scans keeps the quantised coefficients; CMYK and YCCK included), so their decodes must be byte for byte equal:
 * as RGB at full size and at 1/2, 1/4 and 1/8 (jpeg_decode_scaled), and as the plugin's
 * tensors (jpeg_decode_tensor: uint8 at a third of the size, float32 at 61x37). Exit 0 when
 * every check holds, 2 otherwise. Built by test/run.sh with -fsanitize=address,undefined.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../image.h"
#include "testutil.h"

static int decode_at(const unsigned char *b, size_t n, int f, uint32_t w, uint32_t h, img *im, img_err *e) {
    if (f == 1) return jpeg_decode(b, n, 1u << 26, im, e);
    return jpeg_decode_scaled(b, n, 1u << 26, (w + f - 1) / f, (h + f - 1) / f, im, e);
}

static int same(const char *base, const char *prog) {
    size_t nb, np;
    unsigned char *b = read_file(base, &nb), *p = read_file(prog, &np);
    if (!b || !p) return 1;
    img full;
    img_err e = {{0}};
    if (jpeg_decode(b, nb, 1u << 26, &full, &e) != IMG_OK) { printf("%s: %s\n", base, e.msg); free(b), free(p); return 1; }
    int rc = 0;
    for (int f = 1; f <= 8; f *= 2) {
        img ib, ip;
        int rb = decode_at(b, nb, f, full.w, full.h, &ib, &e);
        if (rb != IMG_OK) { printf("%s at 1/%d: %s\n", base, f, e.msg); exit(1); }
        int rp = decode_at(p, np, f, full.w, full.h, &ip, &e);
        if (rp != IMG_OK) {
            printf("FAIL %s at 1/%d: status %d: %s\n", prog, f, rp, e.msg);
            rc = 2;
        } else if (ip.w != ib.w || ip.h != ib.h || memcmp(ip.pix, ib.pix, (size_t)ib.w * ib.h * 3) != 0) {
            size_t diff = 0;
            if (ip.w == ib.w && ip.h == ib.h)
                for (size_t i = 0; i < (size_t)ib.w * ib.h * 3; i++) diff += ip.pix[i] != ib.pix[i];
            printf("FAIL %s at 1/%d: %ux%u, %zu bytes differ from %s (%ux%u)\n", prog, f, ip.w, ip.h, diff, base, ib.w, ib.h);
            rc = 2;
        }
        img_free(&ib), img_free(&ip);
    }
    /* The plugin's path: decode at the scale the tensor needs, resize, encode. */
    static const float mean[3] = {127.5f, 127.5f, 127.5f}, sd[3] = {127.5f, 127.5f, 127.5f};
    struct { uint32_t H, W, C; int kind; } ts[] = {{(full.h + 2) / 3, (full.w + 2) / 3, 3, IMG_OUT_U8},
                                                   {37, 61, 3, IMG_OUT_F32}, {full.h / 5 + 1, full.w / 9 + 1, 1, IMG_OUT_I8}};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        size_t bytes = (size_t)ts[i].H * ts[i].W * ts[i].C * (ts[i].kind == IMG_OUT_F32 ? 4 : 1);
        unsigned char *tb = malloc(bytes), *tp = malloc(bytes);
        uint32_t w, h, w2, h2;
        int rb = jpeg_decode_tensor(b, nb, 1u << 26, tb, ts[i].kind, ts[i].H, ts[i].W, ts[i].C, mean, sd, &w, &h, &e);
        int rp = rb == IMG_OK ? jpeg_decode_tensor(p, np, 1u << 26, tp, ts[i].kind, ts[i].H, ts[i].W, ts[i].C, mean, sd,
                                                   &w2, &h2, &e)
                              : -1;
        if (rb != IMG_OK || rp != IMG_OK || w != w2 || h != h2 || memcmp(tb, tp, bytes) != 0) {
            printf("FAIL %s: tensor %ux%ux%u kind %d differs from %s's (status %d, %d: %s)\n", prog, ts[i].H, ts[i].W,
                   ts[i].C, ts[i].kind, base, rb, rp, e.msg);
            rc = 2;
        }
        free(tb), free(tp);
    }
    if (rc == 0) printf("same: %s = %s (%ux%u) at 1/1, 1/2, 1/4, 1/8 and as 3 tensors\n", prog, base, full.w, full.h);
    img_free(&full);
    free(b), free(p);
    return rc;
}

/* Proper prefixes of the file must be refused with status 1 (bad input), at full size and at
 * 1/8: every prefix within 1 KiB of either end, every 7th in between. A progressive JPEG cut
 * between two scans is refused too (no EOI): it may have lost any number of scans. */
static int truncations(const char *path) {
    size_t n;
    unsigned char *b = read_file(path, &n);
    if (!b) return 1;
    img full;
    img_err e = {{0}};
    if (jpeg_decode(b, n, 1u << 26, &full, &e) != IMG_OK) { printf("%s: %s\n", path, e.msg); free(b); return 1; }
    int rc = 0;
    size_t cnt = 0;
    for (size_t len = 3; len < n; len += len < 1024 || n - len <= 1024 ? 1 : 7) {
        unsigned char *c = malloc(len); /* exact size: ASan sees any read past the end */
        memcpy(c, b, len);
        for (int f = 1; f <= 8; f *= 7) {
            img im;
            int r = decode_at(c, len, f, full.w, full.h, &im, &e);
            if (r != IMG_BAD) {
                printf("FAIL %s cut to %zu of %zu bytes at 1/%d: status %d (%s), want 1 (bad input)\n", path, len, n,
                       f, r, r == IMG_OK ? "decoded" : e.msg);
                rc = 2;
            }
            if (r == IMG_OK) img_free(&im);
            cnt++;
        }
        free(c);
        if (rc) break;
    }
    if (rc == 0) printf("refused: %zu truncations of %s (last: %s)\n", cnt, path, e.msg);
    img_free(&full);
    free(b);
    return rc;
}

static int status(int want, const char *text, const char *path) {
    size_t n;
    unsigned char *b = read_file(path, &n);
    if (!b) return 1;
    img im;
    img_err e = {{0}};
    int r = jpeg_decode(b, n, 1u << 26, &im, &e);
    free(b);
    if (r == IMG_OK) img_free(&im);
    if (r != want || !strstr(e.msg, text)) {
        printf("FAIL %s: status %d (%s), want %d naming \"%s\"\n", path, r, r == IMG_OK ? "decoded" : e.msg, want, text);
        return 2;
    }
    printf("status %d: %s: %s\n", r, path, e.msg);
    return 0;
}

/* A 16x16 greyscale progressive JPEG of n DC-first scans (the same scan again and again: each
 * one sets every block's DC to 0, a grey image). */
static unsigned char *many_scans(int n, size_t *len) {
    static const unsigned char sof[] = {0xff, 0xc2, 0x00, 0x0b, 0x08, 0x00, 0x10, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00};
    static const unsigned char scan[] = {0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, /* DC first */
                                         0x00}; /* 4 blocks, one 0 bit each */
    unsigned char dqt[69] = {0xff, 0xdb, 0x00, 0x43, 0x00}, dht[22] = {0xff, 0xc4, 0x00, 0x14, 0x00, 0x01};
    memset(dqt + 5, 1, 64); /* table 0: all ones */
    /* DC table 0: one 1-bit code ("0") for category 0; dht[6..20] = 0, dht[21] = 0 */
    *len = 2 + sizeof dqt + sizeof sof + sizeof dht + (size_t)n * sizeof scan + 2;
    unsigned char *b = malloc(*len), *p = b;
    p[0] = 0xff, p[1] = 0xd8, p += 2;
    memcpy(p, dqt, sizeof dqt), p += sizeof dqt;
    memcpy(p, sof, sizeof sof), p += sizeof sof;
    memcpy(p, dht, sizeof dht), p += sizeof dht;
    for (int i = 0; i < n; i++) memcpy(p, scan, sizeof scan), p += sizeof scan;
    p[0] = 0xff, p[1] = 0xd9;
    return b;
}

static int scan_limit(void) {
    int rc = 0;
    for (int n = 500; n <= 501; n++) {
        size_t len;
        unsigned char *b = many_scans(n, &len);
        img im;
        img_err e = {{0}};
        int r = jpeg_decode(b, len, 1u << 26, &im, &e), want = n <= 500 ? IMG_OK : IMG_UNSUPPORTED;
        if (r == IMG_OK) {
            if (im.w != 16 || im.h != 16 || im.pix[0] != 128) r = -1;
            img_free(&im);
        }
        if (r != want || (r != IMG_OK && !strstr(e.msg, "more than 500 scans"))) {
            printf("FAIL %d scans: status %d (%s), want %d\n", n, r, e.msg, want);
            rc = 2;
        } else {
            printf("%d scans: status %d %s\n", n, r, e.msg);
        }
        free(b);
    }
    return rc;
}

int main(int argc, char **argv) {
    int rc = 0;
    if (argc == 2 && strcmp(argv[1], "-scans") == 0) return scan_limit();
    if (argc == 3 && strcmp(argv[1], "-trunc") == 0) return truncations(argv[2]);
    if (argc >= 5 && strcmp(argv[1], "-status") == 0) {
        for (int i = 4; i < argc; i++) rc |= status(atoi(argv[2]), argv[3], argv[i]);
        return rc;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: progressive BASE.jpg PROG.jpg... | -trunc PROG.jpg | -status N TEXT FILE...\n");
        return 1;
    }
    for (int i = 2; i < argc; i++) rc |= same(argv[1], argv[i]);
    return rc;
}

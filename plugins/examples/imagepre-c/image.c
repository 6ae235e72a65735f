/*
 * image.c - helpers shared by the imagepre-c decoders.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "image.h"

int img_fail(img_err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void img_free(img *im) {
    free(im->pix);
    im->pix = NULL;
    im->w = im->h = 0;
}

/* See image.h. Both plugins (imagepre-c, people-c) call it. */
int img_header_size(const uint8_t *in, size_t n, uint32_t *w, uint32_t *h) {
    if (png_sniff(in, n) && n >= 24) {
        *w = (uint32_t)in[16] << 24 | (uint32_t)in[17] << 16 | (uint32_t)in[18] << 8 | in[19];
        *h = (uint32_t)in[20] << 24 | (uint32_t)in[21] << 16 | (uint32_t)in[22] << 8 | in[23];
        return 1;
    }
    if (!jpeg_sniff(in, n)) return 0;
    for (size_t p = 2; p + 9 <= n;) {
        if (in[p] != 0xff) return 0;
        uint8_t m = in[p + 1];
        if (m == 0xff) { p++; continue; }
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) { p += 2; continue; }
        size_t len = (size_t)in[p + 2] << 8 | in[p + 3];
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            *h = (uint32_t)in[p + 5] << 8 | in[p + 6];
            *w = (uint32_t)in[p + 7] << 8 | in[p + 8];
            return 1;
        }
        p += 2 + len;
    }
    return 0;
}

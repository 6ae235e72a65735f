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

/*
 * testutil.h - helpers shared by the native test programs (not part of the plugin).
 */
#ifndef IMAGEPRE_TESTUTIL_H
#define IMAGEPRE_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file in an exact-size heap buffer (so ASan catches any read past the end of the
 * input), its length in *len; NULL with a message on stderr when it cannot be read. */
static inline unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || n < 0 || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: read failed\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* CRC-32 of the PNG specification, bit by bit (the reference the decoder's tables must match). */
static inline uint32_t crc(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

#endif

/*
 * png.c - PNG decoder written from the PNG specification (ISO/IEC 15948, W3C PNG 2nd ed.).
 *
 * Supports every standard colour type and bit depth: greyscale (1/2/4/8/16 bits), truecolour
 * (8/16), indexed (1/2/4/8), greyscale+alpha (8/16), truecolour+alpha (8/16), non-interlaced
 * and Adam7-interlaced. Output is 8-bit RGB: 16-bit samples keep their high byte, low bit
 * depths are scaled to 0..255, alpha is dropped. Chunk CRCs and the zlib Adler-32 are
 * verified. Ancillary chunks (tRNS, gAMA, ...) are ignored.
 */
#include <stdlib.h>
#include <string.h>

#include "image.h"

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int png_sniff(const uint8_t *data, size_t len) {
    return len >= 8 && memcmp(data, png_sig, 8) == 0;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* CRC-32 (ISO 3309, PNG spec annex D), tables built on first use. Four bytes per step
 * ("slicing by 4"): crc_table[k][i] is the CRC register after byte i followed by k zero
 * bytes, so the four bytes' contributions are independent look-ups XORed together. */
static uint32_t crc_table[4][256];

static uint32_t crc32(const uint8_t *p, size_t n) {
    if (crc_table[0][1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            crc_table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
            for (int k = 1; k < 4; k++)
                crc_table[k][i] = crc_table[0][crc_table[k - 1][i] & 0xff] ^ (crc_table[k - 1][i] >> 8);
    }
    uint32_t c = 0xffffffffu;
    for (; n >= 4; n -= 4, p += 4) {
        c ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        c = crc_table[3][c & 0xff] ^ crc_table[2][(c >> 8) & 0xff] ^ crc_table[1][(c >> 16) & 0xff] ^
            crc_table[0][c >> 24];
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* Header fields and palette. */
typedef struct {
    uint32_t w, h;
    unsigned depth, ctype, interlace;
    unsigned channels; /* samples per pixel */
    unsigned bpp;      /* bytes per complete pixel for filtering, at least 1 */
    uint8_t pal[256][3];
    unsigned npal;
    size_t first_idat; /* offset of the first IDAT chunk */
} png_info;

static const char *ctype_name(unsigned t) {
    switch (t) {
    case 0: return "greyscale";
    case 2: return "truecolour";
    case 3: return "indexed";
    case 4: return "greyscale+alpha";
    case 6: return "truecolour+alpha";
    }
    return "unknown";
}

static int parse_ihdr(png_info *pi, const uint8_t *d, uint32_t len, uint64_t max_pixels, img_err *e) {
    if (len != 13) return img_fail(e, IMG_BAD, "png: IHDR has length %u, want 13", len);
    pi->w = be32(d);
    pi->h = be32(d + 4);
    pi->depth = d[8];
    pi->ctype = d[9];
    pi->interlace = d[12];
    if (pi->w == 0 || pi->h == 0 || pi->w > 0x7fffffff || pi->h > 0x7fffffff)
        return img_fail(e, IMG_BAD, "png: invalid size %ux%u", pi->w, pi->h);
    unsigned d_ = pi->depth;
    int ok;
    switch (pi->ctype) {
    case 0: pi->channels = 1; ok = d_ == 1 || d_ == 2 || d_ == 4 || d_ == 8 || d_ == 16; break;
    case 3: pi->channels = 1; ok = d_ == 1 || d_ == 2 || d_ == 4 || d_ == 8; break;
    case 2: pi->channels = 3; ok = d_ == 8 || d_ == 16; break;
    case 4: pi->channels = 2; ok = d_ == 8 || d_ == 16; break;
    case 6: pi->channels = 4; ok = d_ == 8 || d_ == 16; break;
    default: return img_fail(e, IMG_BAD, "png: invalid colour type %u", pi->ctype);
    }
    if (!ok) return img_fail(e, IMG_BAD, "png: invalid bit depth %u for %s", d_, ctype_name(pi->ctype));
    if (d[10] != 0) return img_fail(e, IMG_BAD, "png: invalid compression method %u", d[10]);
    if (d[11] != 0) return img_fail(e, IMG_BAD, "png: invalid filter method %u", d[11]);
    if (pi->interlace > 1) return img_fail(e, IMG_BAD, "png: invalid interlace method %u", pi->interlace);
    if ((uint64_t)pi->w * pi->h > max_pixels)
        return img_fail(e, IMG_UNSUPPORTED, "png: image %ux%u is larger than the limit of %llu pixels",
                        pi->w, pi->h, (unsigned long long)max_pixels);
    unsigned bits = pi->channels * pi->depth;
    pi->bpp = bits < 8 ? 1 : bits / 8;
    return IMG_OK;
}

/* Bytes in one filtered row of `w` pixels, without the filter-type byte. */
static uint64_t row_bytes(const png_info *pi, uint64_t w) {
    return (w * pi->channels * pi->depth + 7) / 8;
}

/* Adam7 passes: x0, y0, dx, dy. Non-interlaced images use the single pass {0,0,1,1}. */
static const uint8_t adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                    {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
static const uint8_t single[1][4] = {{0, 0, 1, 1}};

static void pass_size(const png_info *pi, const uint8_t p[4], uint32_t *pw, uint32_t *ph) {
    *pw = pi->w > p[0] ? (pi->w - p[0] + p[2] - 1) / p[2] : 0;
    *ph = pi->h > p[1] ? (pi->h - p[1] + p[3] - 1) / p[3] : 0;
}

/* The Paeth predictor (PNG spec §9.4), without branches on the data. */
static inline unsigned paeth(int a, int b, int c) {
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    int ab = pb < pa ? b : a;        /* a unless b is strictly closer */
    int pab = pb < pa ? pb : pa;
    return (unsigned)(pc < pab ? c : ab);
}

/* Paeth for 3- and 4-byte pixels (8-bit RGB, RGBA): one pixel's channels at once in 16-bit
 * vector lanes (Wasm SIMD128 with -msimd128, SSE natively), with the same selection as
 * paeth(). Each pixel depends on the one before it, so this is one pixel per step, not many;
 * it replaces three or four scalar predictor evaluations by one vector one. The loads read 4
 * bytes per pixel, so for bpp 3 the last pixel is left to the caller (no read past the row). */
typedef int16_t s16x8 __attribute__((vector_size(16)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef uint32_t u32x4 __attribute__((vector_size(16)));

static inline s16x8 load_px(const uint8_t *p) {
    uint32_t w;
    memcpy(&w, p, 4);
    u8x16 v = (u8x16)(u32x4){w, 0, 0, 0}, z = {0};
    return (s16x8)__builtin_shufflevector(v, z, 0, 16, 1, 16, 2, 16, 3, 16, 4, 16, 5, 16, 6, 16, 7, 16);
}

static inline s16x8 vabs(s16x8 v) {
    s16x8 m = v >> 15;
    return (v ^ m) - m;
}

/* Pixels from byte bpp up to byte end (a multiple of bpp past bpp), row and prev as in unfilter. */
static inline __attribute__((always_inline)) void paeth_px(uint8_t *row, const uint8_t *prev, size_t end,
                                                            unsigned bpp) {
    s16x8 a = load_px(row), c = load_px(prev); /* the first pixel: already done by the caller */
    for (size_t i = bpp; i < end; i += bpp) {
        s16x8 b = load_px(prev + i), x = load_px(row + i);
        s16x8 pa = vabs(b - c), pb = vabs(a - c), pc = vabs(a + b - c - c);
        s16x8 m1 = pb < pa;
        s16x8 ab = (b & m1) | (a & ~m1), pab = (pb & m1) | (pa & ~m1);
        s16x8 m2 = pc < pab;
        s16x8 r = (x + ((c & m2) | (ab & ~m2))) & 0xff;
        u8x16 rb = (u8x16)r;
        row[i] = rb[0], row[i + 1] = rb[2], row[i + 2] = rb[4];
        if (bpp == 4) row[i + 3] = rb[6];
        a = r, c = b;
    }
}

/* Average (filter 3) likewise, for rows with a previous row: x + (a + b) / 2. */
static inline __attribute__((always_inline)) void avg_px(uint8_t *row, const uint8_t *prev, size_t end,
                                                          unsigned bpp) {
    s16x8 a = load_px(row);
    for (size_t i = bpp; i < end; i += bpp) {
        s16x8 r = (load_px(row + i) + ((a + load_px(prev + i)) >> 1)) & 0xff;
        u8x16 rb = (u8x16)r;
        row[i] = rb[0], row[i + 1] = rb[2], row[i + 2] = rb[4];
        if (bpp == 4) row[i + 3] = rb[6];
        a = r;
    }
}

/* Undo the filter of one row in place (PNG spec §9). prev is the previous row of the same
 * pass, already unfiltered, or NULL for the first row. The first bpp bytes (no left
 * neighbour) are handled apart, so the loops over the rest carry no per-byte tests. */
static int unfilter(uint8_t *row, const uint8_t *prev, size_t n, unsigned bpp, unsigned ft, img_err *e) {
    size_t lead = bpp < n ? bpp : n;
    switch (ft) {
    case 0: break;
    case 1:
        for (size_t i = bpp; i < n; i++) row[i] += row[i - bpp];
        break;
    case 2:
        if (prev)
            for (size_t i = 0; i < n; i++) row[i] += prev[i];
        break;
    case 3:
        if (prev) {
            for (size_t i = 0; i < lead; i++) row[i] += (uint8_t)(prev[i] >> 1);
            size_t i = bpp;
            if ((bpp == 3 || bpp == 4) && n >= 2 * bpp) { /* as for Paeth below */
                i = bpp == 4 ? n : n - bpp;
                if (bpp == 3) avg_px(row, prev, i, 3);
                else avg_px(row, prev, i, 4);
            }
            for (; i < n; i++) row[i] += (uint8_t)(((unsigned)row[i - bpp] + prev[i]) >> 1);
        } else {
            for (size_t i = bpp; i < n; i++) row[i] += (uint8_t)(row[i - bpp] >> 1);
        }
        break;
    case 4:
        if (prev) { /* Paeth(0, b, 0) = b for the leading bytes */
            for (size_t i = 0; i < lead; i++) row[i] += prev[i];
            size_t i = bpp;
            if ((bpp == 3 || bpp == 4) && n >= 2 * bpp) { /* all but the last pixel when bpp is 3 */
                i = bpp == 4 ? n : n - bpp;
                if (bpp == 3) paeth_px(row, prev, i, 3); /* constant bpp: the stores unrolled */
                else paeth_px(row, prev, i, 4);
            }
            for (; i < n; i++) row[i] += (uint8_t)paeth(row[i - bpp], prev[i], prev[i - bpp]);
        } else { /* Paeth(a, 0, 0) = a */
            for (size_t i = bpp; i < n; i++) row[i] += row[i - bpp];
        }
        break;
    default: return img_fail(e, IMG_BAD, "png: invalid filter type %u", ft);
    }
    return IMG_OK;
}

/* Convert one unfiltered row of n pixels to RGB8. */
static void row_to_rgb(const png_info *pi, const uint8_t *row, uint32_t n, uint8_t *rgb) {
    unsigned d = pi->depth;
    if (d < 8) {
        /* Packed samples, most significant bits first. Grey is scaled to 0..255. */
        unsigned mask = (1u << d) - 1, scale = 255 / mask;
        for (uint32_t x = 0; x < n; x++) {
            size_t bit = (size_t)x * d;
            unsigned v = (row[bit >> 3] >> (8 - d - (bit & 7))) & mask;
            if (pi->ctype == 3) {
                /* Out-of-range indices read as black, as Go's image/png does. */
                const uint8_t *c = v < pi->npal ? pi->pal[v] : (const uint8_t *)"\0\0\0";
                rgb[0] = c[0], rgb[1] = c[1], rgb[2] = c[2];
            } else {
                rgb[0] = rgb[1] = rgb[2] = (uint8_t)(v * scale);
            }
            rgb += 3;
        }
        return;
    }
    unsigned step = d / 8;        /* bytes per sample: 1, or 2 with the high byte first */
    unsigned px = step * pi->channels;
    /* One loop per colour type, no per-pixel switch; 8-bit RGB is already the output layout. */
    switch (pi->ctype) {
    case 0: case 4: /* grey, grey+alpha */
        for (uint32_t x = 0; x < n; x++, row += px, rgb += 3) rgb[0] = rgb[1] = rgb[2] = row[0];
        break;
    case 2: case 6: /* RGB, RGBA */
        if (px == 3) {
            memcpy(rgb, row, (size_t)n * 3);
            break;
        }
        for (uint32_t x = 0; x < n; x++, row += px, rgb += 3) rgb[0] = row[0], rgb[1] = row[step], rgb[2] = row[2 * step];
        break;
    case 3:
        for (uint32_t x = 0; x < n; x++, row += px, rgb += 3) {
            const uint8_t *c = row[0] < pi->npal ? pi->pal[row[0]] : (const uint8_t *)"\0\0\0";
            rgb[0] = c[0], rgb[1] = c[1], rgb[2] = c[2];
        }
        break;
    }
}

/* Walk the chunks. With idat == NULL: validate structure and CRCs, parse IHDR/PLTE and sum
 * the IDAT lengths into *idat_len. With idat != NULL: copy the IDAT payloads into it. */
static int walk_chunks(const uint8_t *data, size_t len, png_info *pi, uint64_t max_pixels,
                       uint8_t *idat, size_t *idat_len, img_err *e) {
    size_t pos = 8, total = 0;
    int seen_ihdr = 0, seen_idat = 0, idat_done = 0, seen_plte = 0;
    for (;;) {
        if (len - pos < 12) return img_fail(e, IMG_BAD, "png: truncated file (no IEND chunk)");
        uint32_t clen = be32(data + pos);
        const uint8_t *type = data + pos + 4, *body = data + pos + 8;
        size_t start = pos;
        if (clen > 0x7fffffffu || clen > len - pos - 12)
            return img_fail(e, IMG_BAD, "png: truncated %.4s chunk (%u bytes declared)",
                            (const char *)type, clen);
        for (int i = 0; i < 4; i++) {
            uint8_t c = type[i] & ~0x20; /* letters only, either case */
            if (c < 'A' || c > 'Z') return img_fail(e, IMG_BAD, "png: invalid chunk type");
        }
        if (!idat && crc32(type, clen + 4) != be32(body + clen))
            return img_fail(e, IMG_BAD, "png: CRC mismatch in %.4s chunk", (const char *)type);
        pos += 12 + (size_t)clen;

        int is_idat = memcmp(type, "IDAT", 4) == 0;
        if (seen_idat && !is_idat) idat_done = 1;
        if (!seen_ihdr) {
            if (memcmp(type, "IHDR", 4) != 0) return img_fail(e, IMG_BAD, "png: first chunk is not IHDR");
            seen_ihdr = 1;
            if (!idat) {
                int rc = parse_ihdr(pi, body, clen, max_pixels, e);
                if (rc != IMG_OK) return rc;
            }
        } else if (is_idat) {
            if (idat_done) return img_fail(e, IMG_BAD, "png: IDAT chunks are not consecutive");
            if (pi->ctype == 3 && !seen_plte) return img_fail(e, IMG_BAD, "png: indexed image without PLTE before IDAT");
            if (!seen_idat) pi->first_idat = start;
            seen_idat = 1;
            if (idat) memcpy(idat + total, body, clen);
            total += clen;
        } else if (memcmp(type, "PLTE", 4) == 0) {
            if (seen_idat) return img_fail(e, IMG_BAD, "png: PLTE after IDAT");
            if (clen == 0 || clen % 3 != 0 || clen > 768)
                return img_fail(e, IMG_BAD, "png: invalid PLTE length %u", clen);
            seen_plte = 1;
            pi->npal = clen / 3;
            memcpy(pi->pal, body, clen);
        } else if (memcmp(type, "IEND", 4) == 0) {
            if (!seen_idat) return img_fail(e, IMG_BAD, "png: no IDAT chunk");
            *idat_len = total;
            return IMG_OK;
        } else if (memcmp(type, "IHDR", 4) == 0) {
            return img_fail(e, IMG_BAD, "png: duplicate IHDR");
        } else if (!(type[0] & 0x20)) {
            return img_fail(e, IMG_UNSUPPORTED, "png: unknown critical chunk %.4s", (const char *)type);
        }
        /* Other ancillary chunks are skipped. */
    }
}

int png_decode(const uint8_t *data, size_t len, uint64_t max_pixels, img *out, img_err *e) {
    memset(out, 0, sizeof *out);
    if (!png_sniff(data, len)) return img_fail(e, IMG_BAD, "png: bad signature");
    png_info pi;
    memset(&pi, 0, sizeof pi);
    size_t idat_len = 0;
    int rc = walk_chunks(data, len, &pi, max_pixels, NULL, &idat_len, e);
    if (rc != IMG_OK) return rc;

    const uint8_t(*passes)[4] = pi.interlace ? adam7 : single;
    int npass = pi.interlace ? 7 : 1;
    uint64_t raw_len = 0;
    for (int p = 0; p < npass; p++) {
        uint32_t pw, ph;
        pass_size(&pi, passes[p], &pw, &ph);
        if (pw && ph) raw_len += (uint64_t)ph * (1 + row_bytes(&pi, pw));
    }
    if (raw_len > SIZE_MAX / 2 || (uint64_t)pi.w * pi.h * 3 > SIZE_MAX / 2)
        return img_fail(e, IMG_TOO_LARGE, "png: out of memory for a %ux%u image: decoding it needs %llu MiB", pi.w,
                        pi.h, (unsigned long long)((raw_len + (uint64_t)pi.w * pi.h * 3) >> 20));

    uint8_t *idat = malloc(idat_len ? idat_len : 1);
    uint8_t *raw = malloc((size_t)raw_len);
    uint8_t *rgb = malloc((size_t)pi.w * pi.h * 3);
    uint8_t *line = malloc((size_t)pi.w * 3);
    if (!idat || !raw || !rgb || !line) {
        uint64_t need = idat_len + raw_len + (uint64_t)pi.w * pi.h * 3 + (uint64_t)pi.w * 3;
        rc = img_fail(e, IMG_TOO_LARGE, "png: out of memory for a %ux%u image: decoding it needs %llu MiB", pi.w,
                      pi.h, (unsigned long long)((need + (1u << 20) - 1) >> 20));
        goto fail;
    }
    walk_chunks(data, len, &pi, max_pixels, idat, &idat_len, e); /* validated above */
    rc = zlib_decode(idat, idat_len, raw, (size_t)raw_len, e);
    if (rc != IMG_OK) goto fail;

    uint8_t *r = raw;
    for (int p = 0; p < npass; p++) {
        uint32_t pw, ph;
        pass_size(&pi, passes[p], &pw, &ph);
        if (!pw || !ph) continue;
        size_t rb = (size_t)row_bytes(&pi, pw);
        const uint8_t *prev = NULL;
        for (uint32_t y = 0; y < ph; y++) {
            rc = unfilter(r + 1, prev, rb, pi.bpp, r[0], e);
            if (rc != IMG_OK) goto fail;
            uint32_t oy = passes[p][1] + y * passes[p][3];
            if (npass == 1) {
                row_to_rgb(&pi, r + 1, pw, rgb + (size_t)oy * pi.w * 3);
            } else {
                row_to_rgb(&pi, r + 1, pw, line);
                for (uint32_t x = 0; x < pw; x++) {
                    size_t ox = passes[p][0] + (size_t)x * passes[p][2];
                    memcpy(rgb + ((size_t)oy * pi.w + ox) * 3, line + (size_t)x * 3, 3);
                }
            }
            prev = r + 1;
            r += 1 + rb;
        }
    }
    free(idat);
    free(raw);
    free(line);
    out->w = pi.w;
    out->h = pi.h;
    out->pix = rgb;
    return IMG_OK;

fail:
    free(idat);
    free(raw);
    free(rgb);
    free(line);
    return rc;
}

/* ---- Row by row, straight into the model input ---------------------------------------- */

/* Pixel k of an unfiltered row as RGB8, as row_to_rgb converts it. */
static inline void pixel_rgb(const png_info *pi, const uint8_t *row, uint32_t k, uint8_t *o) {
    unsigned d = pi->depth;
    if (d < 8) {
        unsigned mask = (1u << d) - 1;
        size_t bit = (size_t)k * d;
        unsigned v = (row[bit >> 3] >> (8 - d - (bit & 7))) & mask;
        if (pi->ctype == 3) {
            const uint8_t *c = v < pi->npal ? pi->pal[v] : (const uint8_t *)"\0\0\0";
            o[0] = c[0], o[1] = c[1], o[2] = c[2];
        } else {
            o[0] = o[1] = o[2] = (uint8_t)(v * (255 / mask));
        }
        return;
    }
    unsigned step = d / 8;
    const uint8_t *p = row + (size_t)k * step * pi->channels;
    switch (pi->ctype) {
    case 0: case 4: o[0] = o[1] = o[2] = p[0]; break;
    case 2: case 6: o[0] = p[0], o[1] = p[step], o[2] = p[2 * step]; break;
    case 3: {
        const uint8_t *c = p[0] < pi->npal ? pi->pal[p[0]] : (const uint8_t *)"\0\0\0";
        o[0] = c[0], o[1] = c[1], o[2] = c[2];
        break;
    }
    }
}

/* The IDAT payloads after the first, for the inflater (walk_chunks checked the structure). */
typedef struct {
    const uint8_t *data;
    size_t pos; /* the chunk after the one returned last */
} idat_iter;

static int next_idat(void *ctx, const uint8_t **p, size_t *n) {
    idat_iter *it = ctx;
    uint32_t clen = be32(it->data + it->pos);
    if (memcmp(it->data + it->pos + 4, "IDAT", 4) != 0) return 0;
    *p = it->data + it->pos + 8, *n = clen;
    it->pos += 12 + (size_t)clen;
    return 1;
}

int png_decode_tensor(const uint8_t *data, size_t len, uint64_t max_pixels, void *dst, int kind, uint32_t H,
                      uint32_t W, uint32_t C, const float mean[3], const float std[3], uint32_t *w, uint32_t *h,
                      img_err *e) {
    if (!png_sniff(data, len)) return img_fail(e, IMG_BAD, "png: bad signature");
    png_info pi;
    memset(&pi, 0, sizeof pi);
    size_t idat_len = 0;
    int rc = walk_chunks(data, len, &pi, max_pixels, NULL, &idat_len, e);
    if (rc != IMG_OK) return rc;
    *w = pi.w, *h = pi.h;

    const uint8_t(*passes)[4] = pi.interlace ? adam7 : single;
    int npass = pi.interlace ? 7 : 1;
    uint64_t raw_len = 0, rb_max = row_bytes(&pi, pi.w);
    for (int p = 0; p < npass; p++) {
        uint32_t pw, ph;
        pass_size(&pi, passes[p], &pw, &ph);
        if (pw && ph) raw_len += (uint64_t)ph * (1 + row_bytes(&pi, pw));
    }
    /* The inflated rows pass through a buffer that keeps the last 32 KiB (back-references)
     * and at least one whole row; two unfiltered rows (this and the one above); the sampled
     * pixels of the resize. Nothing of the image's size but its width. */
    uint64_t cap = 32768 + (1 + rb_max) + 65536;
    uint64_t need = cap + 2 * rb_max + (uint64_t)4 * W * H * 3 + 4 * (uint64_t)(W + H) * 16;
    if (need > SIZE_MAX / 2)
        return img_fail(e, IMG_TOO_LARGE, "png: out of memory for a %ux%u image: decoding it needs %llu MiB", pi.w,
                        pi.h, (unsigned long long)(need >> 20));
    img_sampler sp;
    zstream *z = NULL;
    uint8_t *buf = malloc((size_t)cap), *cur = malloc((size_t)rb_max + 1), *prev = malloc((size_t)rb_max + 1);
    if (!buf || !cur || !prev || img_sampler_init(&sp, pi.w, pi.h, W, H) != IMG_OK) {
        free(buf), free(cur), free(prev);
        return img_fail(e, IMG_TOO_LARGE, "png: out of memory for a %ux%u image: decoding it needs %llu MiB", pi.w,
                        pi.h, (unsigned long long)((need + (1u << 20) - 1) >> 20));
    }
    const uint8_t *first = data + pi.first_idat;
    idat_iter it = {data, pi.first_idat + 12 + be32(first)};
    rc = zs_open(&z, first + 8, be32(first), next_idat, &it, e);

    size_t pos = 0, done = 0;    /* buf: inflated bytes up to pos, rows consumed up to done */
    uint64_t total = 0;          /* bytes inflated so far */
    int p = 0;                   /* pass */
    uint32_t y = 0, pw = 0, ph = 0;
    size_t rb = 0;
    int have_prev = 0;
    pass_size(&pi, passes[0], &pw, &ph);
    while (p < npass && (!pw || !ph)) { /* skip empty passes */
        if (++p < npass) pass_size(&pi, passes[p], &pw, &ph);
    }
    if (p < npass) rb = (size_t)row_bytes(&pi, pw);
    while (rc == IMG_OK) {
        size_t before = pos;
        size_t room = (size_t)cap - pos;
        int limited = room >= raw_len - total; /* the room is what the image still lacks */
        if (limited) room = (size_t)(raw_len - total);
        int r = zs_inflate(z, buf, pos + room, &pos);
        total += pos - before;
        if (r != IMG_OK && r != ZS_FULL) {
            rc = r;
            break;
        }
        /* Every whole row now in the buffer: unfilter, and sample the pixels the resize reads. */
        while (p < npass && pos - done >= 1 + rb) {
            const uint8_t *row = buf + done;
            memcpy(cur, row + 1, rb);
            if ((rc = unfilter(cur, have_prev ? prev : NULL, rb, pi.bpp, row[0], e)) != IMG_OK) break;
            uint32_t oy = passes[p][1] + y * passes[p][3];
            uint32_t r_ix = img_find(sp.rows, sp.nrows, oy);
            if (r_ix != UINT32_MAX) {
                uint32_t x0 = passes[p][0], dx = passes[p][2];
                uint8_t *o = sp.s.pix + (size_t)r_ix * sp.ncols * 3;
                if (dx == 1 && sp.ncols == pw) { /* every column: the row's own loops */
                    row_to_rgb(&pi, cur, pw, o);
                } else {
                    for (uint32_t c = 0; c < sp.ncols; c++) {
                        uint32_t col = sp.cols[c];
                        if (col >= x0 && (col - x0) % dx == 0) pixel_rgb(&pi, cur, (col - x0) / dx, o + (size_t)c * 3);
                    }
                }
            }
            uint8_t *t = prev;
            prev = cur, cur = t, have_prev = 1;
            done += 1 + rb;
            if (++y == ph) { /* the next non-empty pass */
                y = 0, have_prev = 0;
                do {
                    if (++p < npass) pass_size(&pi, passes[p], &pw, &ph);
                } while (p < npass && (!pw || !ph));
                if (p < npass) rb = (size_t)row_bytes(&pi, pw);
            }
        }
        if (rc != IMG_OK) break;
        if (r == IMG_OK) { /* the end of the stream */
            if (total < raw_len) rc = img_fail(e, IMG_BAD, "zlib: not enough data (%llu of %llu bytes)",
                                               (unsigned long long)total, (unsigned long long)raw_len);
            break;
        }
        if (limited && pos == before) { /* what is left of the image cannot take the next symbol */
            rc = img_fail(e, IMG_BAD, "zlib: too much data");
            break;
        }
        /* Keep the last 32 KiB and the unfinished row; move them to the start. */
        size_t keep_from = pos > 32768 ? pos - 32768 : 0;
        if (keep_from > done) keep_from = done;
        memmove(buf, buf + keep_from, pos - keep_from);
        pos -= keep_from, done -= keep_from;
    }
    if (z) zs_close(z);
    free(buf), free(cur), free(prev);
    if (rc == IMG_OK) rc = img_sampler_resize(&sp, dst, kind, C, mean, std) == IMG_OK
                               ? IMG_OK
                               : img_fail(e, IMG_TOO_LARGE, "png: out of memory resizing a %ux%u image", pi.w, pi.h);
    img_sampler_free(&sp);
    return rc;
}

/*
 * inflate.c - zlib (RFC 1950) and deflate (RFC 1951) decoder, written from the RFCs.
 *
 * A stream decoder (zs_*): the input comes in segments (PNG's IDAT chunk payloads, fetched
 * through a callback as they are needed), the output goes into a buffer the caller gives at
 * each call and may empty between calls, keeping the last 32 KiB that back-references reach:
 * so a PNG is decoded row by row without its whole image data, compressed or inflated, in
 * memory. zs_inflate stops when the buffer is full (a symbol that does not fit waits in the
 * state for the next call) and at the end of the stream, after checking the Adler-32 of all
 * the output. zlib_decode is the one-call form into one buffer of known size.
 *
 * Every read of the input and every write of the output is bounds-checked: corrupt or
 * truncated streams return IMG_BAD, never read or write out of bounds. Huffman decoding uses
 * a FAST_BITS-bit lookup table for short codes and falls back to the canonical-code walk of
 * RFC 1951 §3.2.2 for longer ones.
 */
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* ---- Bit reader (LSB first, RFC 1951 §3.1.1) ------------------------------------------- */

/* buf holds cnt pending bits, the next one in bit 0. Its bits at and above cnt are either
 * zero or a copy of the input bits that follow, from p on: inflate_codes' refill loads 8
 * bytes at once and advances p only by the whole bytes that fit, and refill() ORs each new
 * byte in at bit cnt, which is harmless over such a copy. Anything that moves p other than
 * by refilling (a stored block's copy) must first clear buf above cnt, or the copy of the
 * skipped bytes is ORed into the bits that follow. */
typedef struct {
    const uint8_t *p, *end; /* the rest of the current input segment */
    uint64_t buf;   /* pending bits, the next one in bit 0 (see above for the bits past cnt) */
    unsigned cnt;   /* number of bits in buf */
    unsigned pad;   /* zero bits appended past the end of the input (still in buf or used) */
    zs_next_fn next; /* the next input segment; NULL once there is none */
    void *ctx;
} bits;

/* Move to the next non-empty input segment; 0 when the input is exhausted. */
static int next_segment(bits *b) {
    const uint8_t *p;
    size_t n;
    while (b->next) {
        if (!b->next(b->ctx, &p, &n)) break;
        if (n > 0) {
            b->p = p, b->end = p + n;
            return 1;
        }
    }
    b->next = NULL;
    return 0;
}

/* Make sure buf holds at least 57 bits, appending zero bytes past the end of the input. */
static void refill(bits *b) {
    while (b->cnt <= 56) {
        if (b->p < b->end || next_segment(b)) b->buf |= (uint64_t)*b->p++ << b->cnt;
        else b->pad += 8;
        b->cnt += 8;
    }
}

static inline void consume(bits *b, unsigned n) {
    b->buf >>= n;
    b->cnt -= n;
}

/* True once a bit past the real input has been consumed. */
static inline int overrun(const bits *b) { return b->pad > b->cnt; }

static inline uint32_t getbits(bits *b, unsigned n) {
    if (b->cnt < n) refill(b);
    uint32_t v = (uint32_t)(b->buf & ((1u << n) - 1));
    consume(b, n);
    return v;
}

/* ---- Huffman tables -------------------------------------------------------------------- */

#define MAX_BITS 15
#define FAST_BITS 10
#define MAX_SYMS 288

typedef struct {
    uint16_t fast[1 << FAST_BITS]; /* (len << 9) | symbol, 0: longer code or none */
    uint16_t count[MAX_BITS + 1];  /* number of codes of each length */
    uint16_t sym[MAX_SYMS];        /* symbols sorted by code */
} huff;

/* Build a table from code lengths (0 = unused). Over-subscribed sets are an error; incomplete
 * sets are allowed (RFC 1951 permits e.g. a single distance code) and their unused codes fail
 * when decoded. Returns 0 or -1. */
static int huff_build(huff *h, const uint8_t *lens, unsigned n) {
    uint16_t offs[MAX_BITS + 2];
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (unsigned i = 0; i < n; i++) h->count[lens[i]]++;
    h->count[0] = 0;
    int left = 1; /* number of unassigned codes at the current length */
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0) return -1; /* over-subscribed */
    }
    offs[1] = 0;
    for (unsigned len = 1; len <= MAX_BITS; len++) offs[len + 1] = offs[len] + h->count[len];
    for (unsigned i = 0; i < n; i++)
        if (lens[i]) h->sym[offs[lens[i]]++] = (uint16_t)i;
    /* Fast table: walk the canonical codes in order (RFC 1951 §3.2.2). */
    unsigned code = 0, k = 0;
    for (unsigned len = 1; len <= FAST_BITS; len++) {
        for (unsigned j = 0; j < h->count[len]; j++, k++, code++) {
            unsigned rev = 0; /* codes are stored MSB first; the reader is LSB first */
            for (unsigned b = 0; b < len; b++) rev |= ((code >> b) & 1) << (len - 1 - b);
            for (unsigned f = rev; f < (1u << FAST_BITS); f += 1u << len)
                h->fast[f] = (uint16_t)(len << 9 | h->sym[k]);
        }
        code <<= 1;
    }
    return 0;
}

/* Decode one symbol; -1 for a code that is not in the table. */
static int huff_decode(bits *b, const huff *h) {
    if (b->cnt < MAX_BITS) refill(b);
    unsigned e = h->fast[b->buf & ((1u << FAST_BITS) - 1)];
    if (e) {
        consume(b, e >> 9);
        return (int)(e & 511);
    }
    int code = 0, first = 0, index = 0;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        code |= (int)((b->buf >> (len - 1)) & 1);
        int count = h->count[len];
        if (code - first < count) {
            consume(b, len);
            return h->sym[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

/* ---- Deflate --------------------------------------------------------------------------- */

enum { ST_HEADER, ST_STORED, ST_CODES, ST_TRAILER, ST_DONE };

struct zstream {
    bits in;
    uint8_t *out;
    size_t pos, cap;
    int state, final;
    uint32_t stored;        /* ST_STORED: bytes of the block still to copy */
    uint32_t pend_len;      /* ST_CODES: a match (or literal, dist 0) decoded but not yet written */
    uint32_t pend_dist;
    uint8_t pend_lit;
    uint32_t adler_a, adler_b; /* Adler-32 of the output so far */
    huff lit, dist;            /* tables of the current block */
    img_err *e;
};
typedef struct zstream inflater;

#define TRUNC(s) img_fail((s)->e, IMG_BAD, "zlib: truncated data")

/* Length and distance symbols: base << 8 | extra bits (RFC 1951 §3.2.5). */
static const uint32_t len_code[29] = {
    3 << 8, 4 << 8, 5 << 8, 6 << 8, 7 << 8, 8 << 8, 9 << 8, 10 << 8, 11 << 8 | 1, 13 << 8 | 1, 15 << 8 | 1,
    17 << 8 | 1, 19 << 8 | 2, 23 << 8 | 2, 27 << 8 | 2, 31 << 8 | 2, 35 << 8 | 3, 43 << 8 | 3, 51 << 8 | 3,
    59 << 8 | 3, 67 << 8 | 4, 83 << 8 | 4, 99 << 8 | 4, 115 << 8 | 4, 131 << 8 | 5, 163 << 8 | 5,
    195 << 8 | 5, 227 << 8 | 5, 258 << 8};
static const uint32_t dist_code[30] = {
    1 << 8, 2 << 8, 3 << 8, 4 << 8, 5 << 8 | 1, 7 << 8 | 1, 9 << 8 | 2, 13 << 8 | 2, 17 << 8 | 3,
    25 << 8 | 3, 33 << 8 | 4, 49 << 8 | 4, 65 << 8 | 5, 97 << 8 | 5, 129 << 8 | 6, 193 << 8 | 6,
    257 << 8 | 7, 385 << 8 | 7, 513 << 8 | 8, 769 << 8 | 8, 1025 << 8 | 9, 1537 << 8 | 9, 2049 << 8 | 10,
    3073 << 8 | 10, 4097 << 8 | 11, 6145 << 8 | 11, 8193 << 8 | 12, 12289 << 8 | 12, 16385 << 8 | 13,
    24577 << 8 | 13};

/* Decode the symbols of a compressed block with the tables in s->lit / s->dist, until its
 * end-of-block code (IMG_OK) or a symbol that does not fit the output (ZS_FULL: it is kept
 * in pend_* for the next call). Distances are checked against the output buffer: the caller
 * keeps at least the last 32 KiB in it, or all the output when there is less.
 *
 * The bit buffer, the input pointer and the output position live in locals (in Wasm: locals
 * instead of bounds-checked loads and stores of the inflater), synced with s only around
 * the slow paths. One refill per symbol: with at least 48 bits in the buffer a whole
 * length/distance pair (15 + 5 + 15 + 13 bits) is there, and while 8 input bytes remain the
 * refill is one little-endian load. */
static int inflate_codes(inflater *s) {
    uint64_t buf = s->in.buf;
    unsigned cnt = s->in.cnt;
    const uint8_t *p = s->in.p, *end = s->in.end; /* end changes with the input segment */
    uint8_t *const out = s->out;
    size_t pos = s->pos;
    const size_t cap = s->cap;
    const uint16_t *lfast = s->lit.fast, *dfast = s->dist.fast;
#define IN_OUT() (s->in.buf = buf, s->in.cnt = cnt, s->in.p = p)
#define IN_IN() (buf = s->in.buf, cnt = s->in.cnt, p = s->in.p, end = s->in.end)
    for (;;) {
        if (cnt < 48) {
            if (end - p >= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
                v = __builtin_bswap64(v); /* the stream is LSB first */
#endif
                buf |= v << cnt;
                p += (63 - cnt) >> 3; /* the whole bytes that fit: cnt becomes 56..63 */
                cnt |= 56;
            } else {
                IN_OUT(), refill(&s->in), IN_IN();
            }
        }
        unsigned e = lfast[buf & ((1u << FAST_BITS) - 1)];
        int sym;
        if (e) {
            buf >>= e >> 9, cnt -= e >> 9;
            sym = (int)(e & 511);
        } else {
            IN_OUT(), sym = huff_decode(&s->in, &s->lit), IN_IN();
        }
        if (s->in.pad > cnt) return TRUNC(s);
        if (sym < 256) {
            if (sym < 0) return img_fail(s->e, IMG_BAD, "zlib: invalid literal/length code");
            if (pos >= cap) { /* no room: it waits for the next call */
                s->pend_len = 1, s->pend_dist = 0, s->pend_lit = (uint8_t)sym;
                IN_OUT();
                s->pos = pos;
                return ZS_FULL;
            }
            out[pos++] = (uint8_t)sym;
            continue;
        }
        if (sym == 256) break;
        sym -= 257;
        if (sym >= 29) return img_fail(s->e, IMG_BAD, "zlib: invalid length symbol");
        uint32_t lc = len_code[sym];
        size_t len = (lc >> 8) + (size_t)(buf & ((1u << (lc & 15)) - 1));
        buf >>= lc & 15, cnt -= lc & 15;
        e = dfast[buf & ((1u << FAST_BITS) - 1)];
        int ds;
        if (e) {
            buf >>= e >> 9, cnt -= e >> 9;
            ds = (int)(e & 511);
        } else {
            IN_OUT(), ds = huff_decode(&s->in, &s->dist), IN_IN();
        }
        if (ds < 0 || ds >= 30) return img_fail(s->e, IMG_BAD, "zlib: invalid distance code");
        uint32_t dc = dist_code[ds];
        size_t dist = (dc >> 8) + (size_t)(buf & ((1u << (dc & 15)) - 1));
        buf >>= dc & 15, cnt -= dc & 15;
        if (s->in.pad > cnt) return TRUNC(s);
        if (dist > pos) return img_fail(s->e, IMG_BAD, "zlib: distance too far back");
        if (len > cap - pos) { /* no room: it waits for the next call */
            s->pend_len = (uint32_t)len, s->pend_dist = (uint32_t)dist;
            IN_OUT();
            s->pos = pos;
            return ZS_FULL;
        }
        uint8_t *d = out + pos;
        const uint8_t *src = d - dist;
        if (dist >= 8 && cap - pos - len >= 8) {
            /* 8 bytes at a time: each chunk reads bytes already written (dist >= 8); the last
             * may write up to 7 bytes past the match, inside the buffer, overwritten later. */
            for (size_t i = 0; i < len; i += 8) memcpy(d + i, src + i, 8);
        } else {
            for (size_t i = 0; i < len; i++) d[i] = src[i]; /* may overlap: byte by byte */
        }
        pos += len;
    }
    IN_OUT();
    s->pos = pos;
    return IMG_OK;
#undef IN_OUT
#undef IN_IN
}

/* Stored block (BTYPE 00): the header; the bytes are copied by stored_copy. */
static int stored_header(inflater *s) {
    consume(&s->in, s->in.cnt & 7); /* skip to a byte boundary */
    uint32_t len = getbits(&s->in, 16), nlen = getbits(&s->in, 16);
    if (overrun(&s->in)) return TRUNC(s);
    if ((len ^ 0xffff) != nlen) return img_fail(s->e, IMG_BAD, "zlib: stored block length mismatch");
    s->stored = len;
    return IMG_OK;
}

/* Copy what fits of the stored block: whole bytes still in the bit buffer first, then straight
 * from the input segments. IMG_OK when the block is done, ZS_FULL when the output is. */
static int stored_copy(inflater *s) {
    while (s->stored > 0 && s->in.cnt >= 8) {
        if (s->pos >= s->cap) return ZS_FULL;
        s->out[s->pos++] = (uint8_t)getbits(&s->in, 8);
        s->stored--;
        if (overrun(&s->in)) return TRUNC(s);
    }
    if (s->stored == 0) return IMG_OK;
    /* The buffer is empty now (cnt is 0), but its upper bits may still hold a copy of the
     * bytes at p (see bits): drop it, since p is about to skip those bytes. */
    s->in.buf = 0;
    while (s->stored > 0) {
        if (s->in.p == s->in.end && !next_segment(&s->in)) return TRUNC(s);
        if (s->pos >= s->cap) return ZS_FULL;
        size_t k = (size_t)(s->in.end - s->in.p);
        if (k > s->stored) k = s->stored;
        if (k > s->cap - s->pos) k = s->cap - s->pos;
        memcpy(s->out + s->pos, s->in.p, k);
        s->in.p += k, s->pos += k, s->stored -= (uint32_t)k;
    }
    return IMG_OK;
}

/* Fixed Huffman codes (BTYPE 01, RFC 1951 §3.2.6). */
static int inflate_fixed_tables(inflater *s) {
    uint8_t lens[288 + 30];
    unsigned i = 0;
    for (; i < 144; i++) lens[i] = 8;
    for (; i < 256; i++) lens[i] = 9;
    for (; i < 280; i++) lens[i] = 7;
    for (; i < 288; i++) lens[i] = 8;
    for (; i < 288 + 30; i++) lens[i] = 5;
    huff_build(&s->lit, lens, 288);
    huff_build(&s->dist, lens + 288, 30);
    return IMG_OK;
}

/* Dynamic Huffman codes (BTYPE 10, RFC 1951 §3.2.7). */
static int inflate_dynamic_tables(inflater *s) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    unsigned hlit = getbits(&s->in, 5) + 257;
    unsigned hdist = getbits(&s->in, 5) + 1;
    unsigned hclen = getbits(&s->in, 4) + 4;
    if (hlit > 286 || hdist > 30) return img_fail(s->e, IMG_BAD, "zlib: bad code counts");
    uint8_t cl[19] = {0};
    for (unsigned i = 0; i < hclen; i++) cl[order[i]] = (uint8_t)getbits(&s->in, 3);
    if (overrun(&s->in)) return TRUNC(s);
    huff clh;
    if (huff_build(&clh, cl, 19) != 0) return img_fail(s->e, IMG_BAD, "zlib: bad code length code");
    uint8_t lens[286 + 30];
    unsigned n = 0;
    while (n < hlit + hdist) {
        int sym = huff_decode(&s->in, &clh);
        if (sym < 0) return img_fail(s->e, IMG_BAD, "zlib: invalid code length code");
        if (sym < 16) { lens[n++] = (uint8_t)sym; continue; }
        uint8_t v = 0;
        unsigned rep;
        if (sym == 16) {
            if (n == 0) return img_fail(s->e, IMG_BAD, "zlib: repeat with no previous length");
            v = lens[n - 1];
            rep = 3 + getbits(&s->in, 2);
        } else if (sym == 17) {
            rep = 3 + getbits(&s->in, 3);
        } else {
            rep = 11 + getbits(&s->in, 7);
        }
        if (n + rep > hlit + hdist) return img_fail(s->e, IMG_BAD, "zlib: too many code lengths");
        while (rep--) lens[n++] = v;
        if (overrun(&s->in)) return TRUNC(s);
    }
    if (overrun(&s->in)) return TRUNC(s);
    if (lens[256] == 0) return img_fail(s->e, IMG_BAD, "zlib: no end-of-block code");
    if (huff_build(&s->lit, lens, hlit) != 0) return img_fail(s->e, IMG_BAD, "zlib: bad literal/length code");
    if (huff_build(&s->dist, lens + hlit, hdist) != 0) return img_fail(s->e, IMG_BAD, "zlib: bad distance code");
    return IMG_OK;
}

/* Add n output bytes to the running Adler-32 (RFC 1950). */
static void adler_update(inflater *s, const uint8_t *p, size_t n) {
    uint32_t a = s->adler_a, b = s->adler_b;
    while (n > 0) {
        size_t k = n < 5552 ? n : 5552; /* largest run before b can overflow 32 bits */
        n -= k;
        for (; k >= 8; k -= 8, p += 8) { /* 8 bytes: b gains 8a + 8p0 + 7p1 + ... + 1p7 */
            b += 8 * a + 8u * p[0] + 7u * p[1] + 6u * p[2] + 5u * p[3] + 4u * p[4] + 3u * p[5] + 2u * p[6] + p[7];
            a += (uint32_t)p[0] + p[1] + p[2] + p[3] + p[4] + p[5] + p[6] + p[7];
        }
        while (k--) { a += *p++; b += a; }
        a %= 65521;
        b %= 65521;
    }
    s->adler_a = a, s->adler_b = b;
}

int zs_open(zstream **out, const uint8_t *in, size_t n, zs_next_fn next, void *ctx, img_err *e) {
    *out = NULL;
    inflater *s = calloc(1, sizeof *s); /* ~6 KiB of tables: not on the (small) wasm stack */
    if (!s) return img_fail(e, IMG_NOMEM, "zlib: out of memory");
    s->in.p = in, s->in.end = in + n, s->in.next = next, s->in.ctx = ctx;
    s->e = e;
    s->adler_a = 1;
    s->state = ST_HEADER;
    unsigned cmf = getbits(&s->in, 8), flg = getbits(&s->in, 8);
    int rc = IMG_OK;
    if (overrun(&s->in)) rc = img_fail(e, IMG_BAD, "zlib: truncated header");
    else if ((cmf & 15) != 8 || (cmf >> 4) > 7) rc = img_fail(e, IMG_BAD, "zlib: not a deflate stream");
    else if ((cmf * 256 + flg) % 31 != 0) rc = img_fail(e, IMG_BAD, "zlib: header check failed");
    else if (flg & 0x20) rc = img_fail(e, IMG_BAD, "zlib: preset dictionary not allowed");
    if (rc != IMG_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return IMG_OK;
}

void zs_close(zstream *s) { free(s); }

int zs_inflate(zstream *s, uint8_t *out, size_t cap, size_t *pos) {
    s->out = out, s->cap = cap, s->pos = *pos;
    size_t start = *pos;
    int rc = IMG_OK;
    while (rc == IMG_OK && s->state != ST_DONE) {
        switch (s->state) {
        case ST_HEADER:
            if (s->final) {
                s->state = ST_TRAILER;
                break;
            }
            s->final = (int)getbits(&s->in, 1);
            unsigned type = getbits(&s->in, 2);
            if (overrun(&s->in)) {
                rc = TRUNC(s);
                break;
            }
            switch (type) {
            case 0: rc = stored_header(s); s->state = ST_STORED; break;
            case 1: rc = inflate_fixed_tables(s); s->state = ST_CODES; break;
            case 2: rc = inflate_dynamic_tables(s); s->state = ST_CODES; break;
            default: rc = img_fail(s->e, IMG_BAD, "zlib: invalid block type 3"); break;
            }
            break;
        case ST_STORED:
            rc = stored_copy(s);
            if (rc == IMG_OK) s->state = ST_HEADER;
            break;
        case ST_CODES:
            if (s->pend_len) { /* the symbol that did not fit last time */
                uint32_t len = s->pend_len, dist = s->pend_dist;
                if (len > s->cap - s->pos) {
                    rc = ZS_FULL;
                    break;
                }
                if (dist == 0) s->out[s->pos] = s->pend_lit;
                else
                    for (uint32_t i = 0; i < len; i++) s->out[s->pos + i] = s->out[s->pos + i - dist];
                s->pos += len;
                s->pend_len = 0;
            }
            rc = inflate_codes(s);
            if (rc == IMG_OK) s->state = ST_HEADER;
            break;
        case ST_TRAILER: {
            /* Adler-32 of the output, big-endian, at the next byte boundary. */
            adler_update(s, out + start, s->pos - start);
            start = s->pos;
            consume(&s->in, s->in.cnt & 7);
            uint32_t want = 0;
            for (int i = 0; i < 4; i++) want = want << 8 | getbits(&s->in, 8);
            if (overrun(&s->in)) rc = img_fail(s->e, IMG_BAD, "zlib: truncated data (missing checksum)");
            else if ((s->adler_b << 16 | s->adler_a) != want) rc = img_fail(s->e, IMG_BAD, "zlib: checksum mismatch");
            else s->state = ST_DONE;
            break;
        }
        }
    }
    if (rc == IMG_OK || rc == ZS_FULL) adler_update(s, out + start, s->pos - start);
    *pos = s->pos;
    return rc;
}

int zlib_decode(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, img_err *e) {
    zstream *s;
    int rc = zs_open(&s, in, in_len, NULL, NULL, e);
    if (rc != IMG_OK) return rc;
    size_t pos = 0;
    rc = zs_inflate(s, out, out_len, &pos);
    zs_close(s);
    if (rc == ZS_FULL) return img_fail(e, IMG_BAD, "zlib: too much data");
    if (rc != IMG_OK) return rc;
    if (pos != out_len) return img_fail(e, IMG_BAD, "zlib: not enough data (%zu of %zu bytes)", pos, out_len);
    return IMG_OK;
}

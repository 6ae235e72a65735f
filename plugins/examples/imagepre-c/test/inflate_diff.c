/*
 * inflate_diff.c - differential test of inflate.c against the system zlib (not part of the plugin).
 *
 *   inflate_diff [-mb N] [FILE...]
 *
 * Compresses data with zlib's own deflate at every level 0-9 and every strategy (default,
 * filtered, huffman-only, RLE, fixed), then decodes each stream with zlib_decode and compares
 * the bytes with the input. The data: the FILEs given (real images, a model, text), and
 * generated sets chosen to reach every kind of block and block transition - a 16-bit RGBA
 * image like the one of issue 24, random bytes (stored blocks), skewed bytes (15-bit codes),
 * runs (long matches), and a mix of compressible and random stretches (compressed blocks
 * followed by stored ones and back). Then the same data through streams cut into pieces with
 * every flush mode and with the level and strategy changed mid-stream (deflateParams), other
 * window and memory sizes, and every truncation of a few streams (must be refused). Last,
 * the PNGs of issue 24 (451x300 RGBA, 16 bits, pypng-style filter 0 rows) go through
 * png_decode, and the small committed fixture below must decode. Everything is generated
 * from a fixed seed: the same streams on every run with the same zlib.
 *
 * -mb N scales the generated sets to about N MiB each round (default 1). Exit 0 when every
 * stream decodes to its input; otherwise the first mismatches are printed and the exit code
 * is 1. Built by test/run.sh with AddressSanitizer + UBSan, linked with -lz.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zlib_min.h"

#include "../image.h"
#include "testutil.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static const int strategies[5] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
static const char *const strategy_names[5] = {"default", "filtered", "huffman-only", "rle", "fixed"};

static unsigned long streams, failures;
static double decoded_bytes;

/* A growable zlib output buffer. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void must(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "inflate_diff: %s\n", what);
        exit(1);
    }
}

/* Compress src with deflate at (level, strategy, window bits, memLevel) in one Z_FINISH call. */
static buf compress_one(const uint8_t *src, size_t n, int level, int strategy, int wbits, int memlevel) {
    z_stream z;
    memset(&z, 0, sizeof z);
    must(deflateInit2(&z, level, Z_DEFLATED, wbits, memlevel, strategy) == Z_OK, "deflateInit2 failed");
    buf b = {0};
    b.cap = deflateBound(&z, n) + 64;
    b.p = malloc(b.cap);
    must(b.p != NULL, "out of memory");
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = b.p;
    z.avail_out = (uInt)b.cap;
    must(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate did not finish");
    b.n = b.cap - z.avail_out;
    deflateEnd(&z);
    return b;
}

/* Compress src in pieces of random size, each followed by a random flush mode, and now and
 * then a new level and strategy (deflateParams): stored, fixed and dynamic blocks in every
 * order, empty stored blocks (sync/full flush) and empty fixed blocks (partial flush). */
static buf compress_pieces(const uint8_t *src, size_t n, int level, int strategy) {
    static const int flushes[5] = {Z_NO_FLUSH, Z_SYNC_FLUSH, Z_FULL_FLUSH, Z_PARTIAL_FLUSH, Z_BLOCK};
    z_stream z;
    memset(&z, 0, sizeof z);
    must(deflateInit2(&z, level, Z_DEFLATED, 15, 8, strategy) == Z_OK, "deflateInit2 failed");
    buf b = {0};
    b.cap = deflateBound(&z, n) * 2 + (1 << 20); /* + room for every flush's bytes */
    b.p = malloc(b.cap);
    must(b.p != NULL, "out of memory");
    z.next_out = b.p;
    z.avail_out = (uInt)b.cap;
    size_t off = 0;
    while (off < n) {
        size_t k = 1 + rnd() % (rnd() % 4 == 0 ? 64 : 65536);
        if (k > n - off) k = n - off;
        z.next_in = (Bytef *)src + off;
        z.avail_in = (uInt)k;
        int fl = flushes[rnd() % 5];
        must(deflate(&z, fl) == Z_OK && z.avail_in == 0, "deflate of a piece failed");
        off += k;
        if (rnd() % 6 == 0) {
            /* deflateParams flushes what is pending with the old parameters first */
            must(deflateParams(&z, (int)(rnd() % 10), strategies[rnd() % 5]) == Z_OK, "deflateParams failed");
        }
        must(z.avail_out > 100000, "output buffer too small");
    }
    z.avail_in = 0;
    must(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate did not finish");
    b.n = b.cap - z.avail_out;
    deflateEnd(&z);
    return b;
}

/* Decode stream z (which must inflate to exactly src) with zlib_decode; count a failure and
 * say what when the bytes or the status differ. The output buffer is exactly n bytes. */
static int check(const char *what, const buf *z, const uint8_t *src, size_t n) {
    uint8_t *out = malloc(n ? n : 1);
    must(out != NULL, "out of memory");
    img_err e = {{0}};
    int rc = zlib_decode(z->p, z->n, out, n, &e);
    streams++;
    decoded_bytes += (double)n;
    int ok = rc == IMG_OK && memcmp(out, src, n) == 0;
    if (!ok) {
        failures++;
        if (failures <= 20) {
            size_t first = 0;
            while (rc == IMG_OK && first < n && out[first] == src[first]) first++;
            if (rc != IMG_OK) printf("FAIL %s: %zu -> %zu bytes: %s\n", what, n, z->n, e.msg);
            else printf("FAIL %s: %zu -> %zu bytes: output differs at byte %zu\n", what, n, z->n, first);
        }
    }
    free(out);
    return ok;
}

/* Input segments for the streaming decoder, each in its own exact-size heap block. */
typedef struct {
    uint8_t **seg;
    size_t *len;
    int n, next;
} segs;

static int next_seg(void *ctx, const uint8_t **p, size_t *n) {
    segs *s = ctx;
    if (s->next >= s->n) return 0;
    *p = s->seg[s->next], *n = s->len[s->next];
    s->next++;
    return 1;
}

/* Decode the zlib stream zp[0..zn) as PNG decoding does: the input cut into random segments
 * (some empty, some of 1 byte, as IDAT chunks may be), the output into a buffer of 32 KiB plus
 * a random amount that is emptied whenever zs_inflate fills it, keeping only the last 32 KiB.
 * The bytes must be src's, in order, and the stream must end exactly after n bytes: then 1;
 * else 0 with *why (and *at, the bytes that matched) saying what went wrong. */
static int stream_decode(const uint8_t *zp, size_t zn, const uint8_t *src, size_t n, const char **why, size_t *at,
                         int *nseg) {
    segs sg = {0};
    sg.seg = malloc(sizeof(uint8_t *) * (zn + 2));
    sg.len = malloc(sizeof(size_t) * (zn + 2));
    must(sg.seg && sg.len, "out of memory");
    for (size_t off = 0; off < zn || sg.n == 0;) {
        size_t k = rnd() % 8 == 0 ? rnd() % 4 : 1 + rnd() % 40000;
        if (k > zn - off) k = zn - off;
        sg.seg[sg.n] = malloc(k ? k : 1);
        must(sg.seg[sg.n] != NULL, "out of memory");
        memcpy(sg.seg[sg.n], zp + off, k);
        sg.len[sg.n++] = k;
        off += k;
    }
    size_t cap = 32768 + 258 + rnd() % 70000, pos = 0, total = 0, checked = 0;
    uint8_t *out = malloc(cap);
    must(out != NULL, "out of memory");
    static img_err e;
    zstream *zs = NULL;
    sg.next = 1;
    int rc = zs_open(&zs, sg.seg[0], sg.len[0], next_seg, &sg, &e);
    *why = NULL;
    while (rc == IMG_OK) {
        int r = zs_inflate(zs, out, cap, &pos);
        /* the new bytes are src's next ones */
        if (total + (pos - checked) > n) { *why = "more output than zlib's input"; break; }
        if (memcmp(out + checked, src + total, pos - checked) != 0) { *why = "output differs"; break; }
        total += pos - checked;
        checked = pos;
        if (r != ZS_FULL) {
            rc = r;
            break;
        }
        size_t keep = pos < 32768 ? pos : 32768; /* empty the buffer but the last 32 KiB */
        memmove(out, out + pos - keep, keep);
        pos = checked = keep;
    }
    if (!*why && rc != IMG_OK) *why = e.msg;
    if (!*why && total != n) *why = "stream ended early";
    if (zs) zs_close(zs);
    for (int i = 0; i < sg.n; i++) free(sg.seg[i]);
    free(sg.seg);
    free(sg.len);
    free(out);
    *at = total, *nseg = sg.n;
    return *why == NULL;
}

/* stream_decode of z, which must give src. */
static int check_stream(const char *what, const buf *z, const uint8_t *src, size_t n) {
    const char *why;
    size_t at;
    int nseg;
    int ok = stream_decode(z->p, z->n, src, n, &why, &at, &nseg);
    streams++;
    decoded_bytes += (double)n;
    if (!ok) {
        failures++;
        if (failures <= 20) printf("FAIL %s, streamed (%d segments): %s at byte %zu\n", what, nseg, why, at);
    }
    return ok;
}

/* Every truncation of a stream must be refused (a prefix never holds the whole Adler-32), in
 * one call and streamed. */
static void check_truncations(const char *what, const buf *z, const uint8_t *src, size_t n) {
    uint8_t *out = malloc(n ? n : 1);
    must(out != NULL, "out of memory");
    for (size_t k = 0; k < z->n; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* exact size: ASan sees any read past the end */
        must(cut != NULL, "out of memory");
        memcpy(cut, z->p, k);
        img_err e = {{0}};
        int rc = zlib_decode(cut, k, out, n, &e);
        const char *why;
        size_t at;
        int nseg;
        int srok = stream_decode(cut, k, src, n, &why, &at, &nseg); /* and streamed */
        free(cut);
        streams += 2;
        if (rc == IMG_OK || srok) {
            failures++;
            printf("FAIL %s: truncated to %zu of %zu bytes, decoded without an error%s\n", what, k, z->n,
                   srok ? " (streamed)" : "");
            break;
        }
    }
    free(out);
}

/* ---- Data sets ---------------------------------------------------------------------------- */

/* Rows of a w x h 16-bit RGBA image (filter byte 0 before each row, as pypng writes them): a
 * smooth gradient in the high bytes and noise in the low bytes, alpha mostly opaque, with
 * bands of rows where the high bytes are noisy too (texture, foliage). zlib then follows
 * dynamic (or fixed) blocks with stored ones, where no code beats 8 bits a byte. */
static uint8_t *image16_rows(uint32_t w, uint32_t h, size_t *n) {
    size_t rb = 1 + (size_t)w * 8;
    uint8_t *raw = malloc(rb * h);
    must(raw != NULL, "out of memory");
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *r = raw + y * rb;
        r[0] = 0;
        for (uint32_t x = 0; x < w; x++) {
            uint32_t v[4] = {(x * 65535u / w + y * 37u) & 0xffff, (y * 65535u / h) ^ (x * 11u), (x * y * 3u) & 0xffff,
                             x % 97 == 0 ? rnd() & 0xffff : 0xffff};
            int texture = (y / 20) % 3 == 2 && x > w / 8;
            for (int c = 0; c < 3; c++) v[c] = texture ? rnd() & 0xffff : (v[c] & 0xff00) | (rnd() & 0xff);
            if (texture) v[3] = rnd() & 0xffff;
            for (int c = 0; c < 4; c++) r[1 + x * 8 + c * 2] = (uint8_t)(v[c] >> 8), r[2 + x * 8 + c * 2] = (uint8_t)v[c];
        }
    }
    *n = rb * h;
    return raw;
}

static uint8_t *random_bytes(size_t n) {
    uint8_t *p = malloc(n);
    must(p != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
    return p;
}

/* Bytes of a steep geometric distribution: some symbols far rarer than others, so the
 * dynamic codes reach 15 bits (past the decoder's fast table) and the length-limiting paths. */
static uint8_t *skewed_bytes(size_t n) {
    uint8_t *p = malloc(n);
    must(p != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        while (v < 255 && rnd() % 8 < 5) v++;
        p[i] = (uint8_t)(v * 37);
    }
    return p;
}

/* Runs of one byte, of lengths from 1 to a few thousand, and repeats of earlier stretches at
 * every distance: long and overlapping matches. */
static uint8_t *runs_bytes(size_t n) {
    uint8_t *p = malloc(n);
    must(p != NULL, "out of memory");
    size_t i = 0;
    while (i < n) {
        size_t k = 1 + rnd() % (rnd() % 3 == 0 ? 4000 : 20);
        if (k > n - i) k = n - i;
        if (i > 0 && rnd() % 2) {
            size_t dist = 1 + rnd() % (i < 32768 ? i : 32768);
            for (size_t j = 0; j < k; j++, i++) p[i] = p[i - dist];
        } else {
            uint8_t v = (uint8_t)rnd();
            memset(p + i, v, k);
            i += k;
        }
    }
    return p;
}

/* Stretches of text-like (compressible) bytes and random bytes in turn, 1 byte to 100 KB. */
static uint8_t *mixed_bytes(size_t n) {
    static const char words[] = "the quick brown fox jumps over the lazy dog peacock tensor edgehost ";
    uint8_t *p = malloc(n);
    must(p != NULL, "out of memory");
    size_t i = 0;
    int random = 0;
    while (i < n) {
        size_t k = 1 + rnd() % (rnd() % 4 == 0 ? 100000 : 3000);
        if (k > n - i) k = n - i;
        for (size_t j = 0; j < k; j++, i++)
            p[i] = random ? (uint8_t)rnd() : (uint8_t)words[(i + (rnd() % 16 == 0)) % (sizeof words - 1)];
        random = !random;
    }
    return p;
}

/* ---- PNGs of issue 24 ------------------------------------------------------------------- */

static uint8_t *put32(uint8_t *q, uint32_t v) {
    q[0] = (uint8_t)(v >> 24), q[1] = (uint8_t)(v >> 16), q[2] = (uint8_t)(v >> 8), q[3] = (uint8_t)v;
    return q + 4;
}

static uint8_t *chunk(uint8_t *q, const char *type, const uint8_t *body, uint32_t len) {
    q = put32(q, len);
    memcpy(q, type, 4);
    if (len) memcpy(q + 4, body, len);
    return put32(q + 4 + len, crc(q, len + 4));
}

/* A w x h 16-bit RGBA PNG of the given rows compressed at (level, strategy); png_decode must
 * give the high bytes of R, G, B. */
static void check_png(const uint8_t *raw, uint32_t w, uint32_t h, int level, int si) {
    buf z = compress_one(raw, (1 + (size_t)w * 8) * h, level, strategies[si], 15, 8);
    size_t n = 8 + 25 + 12 + z.n + 12;
    uint8_t *png = malloc(n), *q = png;
    must(png != NULL, "out of memory");
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(q, sig, 8), q += 8;
    uint8_t ihdr[13] = {0};
    put32(ihdr, w), put32(ihdr + 4, h);
    ihdr[8] = 16, ihdr[9] = 6;
    q = chunk(q, "IHDR", ihdr, 13);
    q = chunk(q, "IDAT", z.p, (uint32_t)z.n);
    q = chunk(q, "IEND", NULL, 0);
    img im;
    img_err e = {{0}};
    int rc = png_decode(png, (size_t)(q - png), 1u << 26, &im, &e);
    streams++;
    char what[128];
    snprintf(what, sizeof what, "PNG %ux%u RGBA 16-bit, level %d %s", w, h, level, strategy_names[si]);
    int ok = rc == IMG_OK && im.w == w && im.h == h;
    for (uint32_t y = 0; ok && y < h; y++)
        for (uint32_t x = 0; ok && x < w; x++)
            for (int c = 0; c < 3; c++)
                if (im.pix[((size_t)y * w + x) * 3 + c] != raw[y * (1 + (size_t)w * 8) + 1 + x * 8 + c * 2]) ok = 0;
    if (!ok) {
        failures++;
        printf("FAIL %s: %s\n", what, rc == IMG_OK ? "pixels differ" : e.msg);
    }
    if (rc == IMG_OK) img_free(&im);
    free(png);
    free(z.p);
}

/* The smallest stream of the stored-block defect found with zlib 1.2.13 (56 bytes; see
 * inflate_stored and the comment on `bits` in inflate.c): a fixed-Huffman block read with
 * the 8-byte refill, which leaves a copy of the next input bits above the buffer's count,
 * then a 31-byte stored block, longer than the buffer holds, so its bytes are copied
 * straight from the input, then a final fixed block. The old decoder kept the copied bits
 * and ORed them into the next block's header: "invalid block type 3". Made by deflate with
 * level 9 (Z_FIXED, window 2^9, memLevel 1), deflateParams(0) before the middle part and
 * deflateParams(9, Z_FIXED) after it, each part ended with Z_BLOCK. */
static const uint8_t fixture_stored_after_fixed[] = {
    0x18, 0x19, 0x4a, 0x4d, 0x49, 0x4f, 0xcd, 0xc8, 0x2f, 0x2e, 0x01, 0x00, 0x1f, 0x00, 0xe0, 0xff,
    0x73, 0x74, 0x6f, 0x72, 0x65, 0x64, 0x20, 0x62, 0x79, 0x74, 0x65, 0x73, 0x2c, 0x20, 0x38, 0x20,
    0x70, 0x61, 0x73, 0x74, 0x20, 0x74, 0x68, 0x65, 0x20, 0x62, 0x75, 0x66, 0x66, 0x65, 0x72, 0x4b,
    0x85, 0x2a, 0x03, 0x00, 0xac, 0xd6, 0x11, 0xd6};
static const char fixture_text[] = "edgehoststored bytes, 8 past the bufferedgehost";

/* ---- main ------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    uint8_t *p;
    size_t n;
} dataset;

int main(int argc, char **argv) {
    double mb = 1;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "-mb") == 0) mb = atof(argv[2]), a = 3;
    size_t unit = (size_t)(mb * (1 << 20));

    dataset ds[32];
    int nds = 0;
    for (; a < argc && nds < 24; a++) {
        size_t n;
        uint8_t *p = read_file(argv[a], &n);
        if (!p) return 1;
        if (n > unit) n = unit; /* a model: its first part is enough */
        const char *base = strrchr(argv[a], '/');
        ds[nds++] = (dataset){base ? base + 1 : argv[a], p, n};
    }
    size_t n16;
    int img16 = nds;
    ds[nds].p = image16_rows(451, 300, &n16), ds[nds].n = n16, ds[nds++].name = "image 451x300 RGBA16";
    ds[nds++] = (dataset){"random", random_bytes(unit / 2), unit / 2};
    ds[nds++] = (dataset){"skewed", skewed_bytes(unit / 2), unit / 2};
    ds[nds++] = (dataset){"runs", runs_bytes(unit), unit};
    int mixed = nds;
    ds[nds++] = (dataset){"mixed", mixed_bytes(unit), unit};
    ds[nds++] = (dataset){"empty", malloc(1), 0};
    ds[nds++] = (dataset){"one byte", random_bytes(1), 1};

    /* 1. Every level x strategy on every data set, whole-buffer deflate. */
    for (int d = 0; d < nds; d++)
        for (int level = 0; level <= 9; level++)
            for (int si = 0; si < 5; si++) {
                buf z = compress_one(ds[d].p, ds[d].n, level, strategies[si], 15, 8);
                char what[160];
                snprintf(what, sizeof what, "%s, level %d %s", ds[d].name, level, strategy_names[si]);
                check(what, &z, ds[d].p, ds[d].n);
                check_stream(what, &z, ds[d].p, ds[d].n);
                free(z.p);
            }
    printf("levels 0-9 x 5 strategies (one call, and streamed): %lu streams, %.1f MiB decoded, %lu failures\n", streams,
           decoded_bytes / (1 << 20), failures);

    /* 2. Pieces with random flushes and parameter changes; other window and memory sizes. */
    unsigned long s0 = streams, f0 = failures;
    double b0 = decoded_bytes;
    for (int d = 0; d < nds; d++)
        for (int i = 0; i < 8; i++) {
            int level = (int)(rnd() % 10), si = (int)(rnd() % 5);
            buf z = compress_pieces(ds[d].p, ds[d].n, level, strategies[si]);
            char what[160];
            snprintf(what, sizeof what, "%s, pieces with flushes from level %d %s (round %d)", ds[d].name, level,
                     strategy_names[si], i);
            check(what, &z, ds[d].p, ds[d].n);
            check_stream(what, &z, ds[d].p, ds[d].n);
            free(z.p);
            int wbits = 9 + (int)(rnd() % 7), memlevel = 1 + (int)(rnd() % 9);
            z = compress_one(ds[d].p, ds[d].n, level, strategies[si], wbits, memlevel);
            snprintf(what, sizeof what, "%s, level %d %s, window 2^%d memLevel %d", ds[d].name, level,
                     strategy_names[si], wbits, memlevel);
            check(what, &z, ds[d].p, ds[d].n);
            free(z.p);
        }
    printf("flushes, deflateParams, window and memLevel: %lu streams, %.1f MiB decoded, %lu failures\n",
           streams - s0, (decoded_bytes - b0) / (1 << 20), failures - f0);

    /* 3. Truncations of small streams of every block type. */
    s0 = streams, f0 = failures;
    for (int si = 0; si < 5; si++)
        for (int level = 0; level <= 9; level += 3) {
            size_t n = 3000;
            buf z = compress_pieces(ds[mixed].p, n, level, strategies[si]);
            char what[160];
            snprintf(what, sizeof what, "mixed 3000 bytes, level %d %s", level, strategy_names[si]);
            if (check(what, &z, ds[mixed].p, n)) check_truncations(what, &z, ds[mixed].p, n);
            free(z.p);
        }
    printf("truncations: %lu streams refused, %lu failures\n", streams - s0, failures - f0);

    /* 4. The PNGs of issue 24: the whole image at the failing settings, and its first 123 rows
     *    (the smallest failing Huffman-only stream of the report). */
    s0 = streams, f0 = failures;
    for (int level = 0; level <= 9; level++)
        for (int si = 0; si < 5; si++) check_png(ds[img16].p, 451, 300, level, si);
    for (uint32_t rows = 1; rows <= 300; rows += rows < 130 ? 1 : 17) check_png(ds[img16].p, 451, rows, 6, 2);
    printf("issue 24 PNGs (451xN RGBA 16-bit): %lu decoded, %lu failures\n", streams - s0, failures - f0);

    /* 5. The committed fixture (fixed block, stored block, fixed block). */
    buf fx = {(uint8_t *)fixture_stored_after_fixed, sizeof fixture_stored_after_fixed, 0};
    int fok = check("fixture: stored block after a fixed block", &fx, (const uint8_t *)fixture_text,
                    sizeof fixture_text - 1);
    printf("fixture (stored block after a fixed one, 56 bytes): %s\n", fok ? "ok" : "FAILED");

    for (int d = 0; d < nds; d++) free(ds[d].p);
    if (failures) {
        printf("FAIL: %lu of %lu streams\n", failures, streams);
        return 1;
    }
    printf("ok: %lu streams, %.1f MiB decoded, all equal to zlib's input\n", streams, decoded_bytes / (1 << 20));
    return 0;
}

/*
 * image.h - shared types of the imagepre-c decoders (PNG, JPEG, zlib inflate).
 *
 * The decoders do not depend on the edgehost SDK, so they also build natively for the tests
 * under test/. Their status codes equal the ABI statuses the plugin returns.
 */
#ifndef IMAGEPRE_IMAGE_H
#define IMAGEPRE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Decoder results; the values equal the edgehost ABI statuses. */
#define IMG_OK 0
#define IMG_BAD 1         /* malformed or truncated data (ABI bad_input) */
#define IMG_NOMEM 2       /* allocation failed (ABI internal) */
#define IMG_UNSUPPORTED 3 /* well formed, but a feature the decoder lacks (ABI unsupported) */
#define IMG_TOO_LARGE 5   /* well formed, but the memory its size needs is not there (ABI too_large) */

/* A decoded image: 8-bit RGB, row-major, 3 bytes per pixel, no padding. Alpha is dropped
 * (the colour channels are kept as they are, not composited). */
typedef struct img {
    uint32_t w, h;
    uint8_t *pix; /* w*h*3 bytes, malloc'd; free with img_free */
} img;

/* Error message buffer filled by a failing decoder. */
typedef struct img_err {
    char msg[256];
} img_err;

/* Format the message into e and return code. */
int img_fail(img_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void img_free(img *im);

/* Decoders: on IMG_OK *out holds the image; otherwise *out is empty and e->msg says why.
 * Images with more than max_pixels pixels are refused with IMG_UNSUPPORTED. */
int png_decode(const uint8_t *data, size_t len, uint64_t max_pixels, img *out, img_err *e);
int jpeg_decode(const uint8_t *data, size_t len, uint64_t max_pixels, img *out, img_err *e);
/* png_decode then img_resize into dst, without ever holding the image: the image data is
 * inflated row by row (zs_inflate, keeping 32 KiB and a row), unfiltered, and only the
 * pixels the resize reads are kept (img_sampler); Adam7 too. The result equals img_resize
 * of png_decode's image. Memory: about 3 rows plus 100 KiB plus 12 W H bytes. *w, *h: the
 * image's size. */
int png_decode_tensor(const uint8_t *data, size_t len, uint64_t max_pixels, void *dst, int kind, uint32_t H,
                      uint32_t W, uint32_t C, const float mean[3], const float std[3], uint32_t *w, uint32_t *h,
                      img_err *e);

/* jpeg_decode at the smallest scale 1/1, 1/2, 1/4 or 1/8 whose size (rounded up) is still at
 * least min_w x min_h (0 x 0: full size); max_pixels applies to the full-size image. */
int jpeg_decode_scaled(const uint8_t *data, size_t len, uint64_t max_pixels, uint32_t min_w, uint32_t min_h,
                       img *out, img_err *e);

/* The EXIF orientation (1-8, TIFF tag 0x0112) of a JPEG's APP1 segment; 1 when there is none
 * or it is malformed. 2-8: the stored image is shown mirrored and/or rotated (5-8: with
 * width and height swapped). */
int jpeg_exif_orientation(const uint8_t *data, size_t len);

/* Turn src, an image resized from the stored image (H x W elements of elem bytes, or W x H
 * for orientations 5-8), into dst, H x W as it is shown under EXIF orientation o. */
void img_orient(const uint8_t *src, uint8_t *dst, uint32_t H, uint32_t W, size_t elem, int o);

/* The original image's size from its header (PNG IHDR, JPEG SOFn), before any DCT-domain
 * scaling: what a post plugin needs to report positions in the caller's pixels. 1 when found,
 * else 0 (w, h untouched). */
int img_header_size(const uint8_t *in, size_t n, uint32_t *w, uint32_t *h);

/* Signature checks. */
int png_sniff(const uint8_t *data, size_t len);
int jpeg_sniff(const uint8_t *data, size_t len);

/* zlib (RFC 1950) + deflate (RFC 1951) decoder into a fixed buffer. The stream must produce
 * exactly out_len bytes and end with a valid Adler-32. */
int zlib_decode(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, img_err *e);

/* The same as a stream. The input: in[0..n), then the segments next(ctx, &p, &n) returns
 * while it returns 1 (next may be NULL). zs_open reads the zlib header (IMG_OK, or an error
 * in e). zs_inflate writes from out[*pos] up to out[cap] and advances *pos; it returns
 * IMG_OK at the end of the stream (its Adler-32 checked), ZS_FULL when out is full (call it
 * again with room), or IMG_BAD. Between calls the caller may move the bytes out[k..*pos) to
 * the start of the buffer (and *pos with them) if it keeps at least the last 32768 bytes, or
 * all the output when there is less: back-references reach that far. */
#define ZS_FULL 64
typedef struct zstream zstream;
typedef int (*zs_next_fn)(void *ctx, const uint8_t **p, size_t *n);
int zs_open(zstream **z, const uint8_t *in, size_t n, zs_next_fn next, void *ctx, img_err *e);
int zs_inflate(zstream *z, uint8_t *out, size_t cap, size_t *pos);
void zs_close(zstream *z);

/* Tensor element types for img_resize. */
#define IMG_OUT_U8 0  /* pixel value */
#define IMG_OUT_I8 1  /* pixel - 128 */
#define IMG_OUT_F32 2 /* (pixel - mean[c]) / std[c] */

/* Sample positions for bilinear resampling with half-pixel centres: output i reads source
 * samples i0 and i1 with weight w (of 256) on i1. */
typedef struct img_tap {
    uint32_t i0, i1;
    uint32_t w;
} img_tap;

/* A resize of a w x h image to W x H that keeps only the source pixels it reads: at most 2W
 * columns (cols, ascending) of at most 2H rows (rows, ascending), stored in s (ncols x
 * nrows RGB) by the decoder as they come, in any order; then img_sampler_resize gives
 * exactly img_resize's result on the whole image. tx and ty index into cols and rows. */
typedef struct img_sampler {
    uint32_t W, H;
    img_tap *tx, *ty;
    uint32_t *cols, *rows;
    uint32_t ncols, nrows;
    img s;
} img_sampler;
int img_sampler_init(img_sampler *sp, uint32_t w, uint32_t h, uint32_t W, uint32_t H); /* IMG_OK, IMG_NOMEM */
int img_sampler_resize(const img_sampler *sp, void *dst, int kind, uint32_t C, const float mean[3],
                       const float std[3]);
void img_sampler_free(img_sampler *sp);
/* The position of v in the ascending list, or UINT32_MAX. */
uint32_t img_find(const uint32_t *list, uint32_t n, uint32_t v);

/* Bilinear resize (half-pixel centres) of im to H x W x C (C = 3: RGB; C = 1: BT.601 luma),
 * stored at dst as kind. IMG_OK or IMG_NOMEM. */
int img_resize(const img *im, void *dst, int kind, uint32_t H, uint32_t W, uint32_t C, const float mean[3],
               const float std[3]);

/* One plane of a YCbCr image for img_resize_ycc: full-resolution sample (x, y) reads
 * p[(y >> shy) * stride + (x >> shx)]. */
typedef struct img_plane {
    const uint8_t *p;
    size_t stride;
    unsigned shx, shy;
} img_plane;

/* img_resize (C = 3) of the w x h YCbCr image in pl (Y at full resolution, shx = shy = 0; Cb
 * and Cr with the same shifts), converting to RGB after resampling. IMG_OK or IMG_NOMEM. */
int img_resize_ycc(const img_plane pl[3], uint32_t w, uint32_t h, void *dst, int kind, uint32_t H, uint32_t W,
                   const float mean[3], const float std[3]);

/* jpeg_decode_scaled at the smallest scale still >= W x H, then img_resize into dst; for
 * YCbCr images with power-of-two chroma subsampling and C = 3, through img_resize_ycc (no
 * RGB image). *w, *h: the decoded image's size. */
int jpeg_decode_tensor(const uint8_t *data, size_t len, uint64_t max_pixels, void *dst, int kind, uint32_t H,
                       uint32_t W, uint32_t C, const float mean[3], const float std[3], uint32_t *w, uint32_t *h,
                       img_err *e);

#endif

/*
 * zlib_min.h - the part of zlib's API the native tests use (not part of the plugin).
 *
 * zlib's library (libz.so.1, Debian's required package zlib1g) is on every machine, its
 * header (zlib1g-dev) is not: the tests include <zlib.h> when it is there and these
 * declarations otherwise, and run.sh links -lz or, without the development symlink,
 * -l:libz.so.1. The declarations are zlib's own (zlib.h, 1.2.x and later: the z_stream layout
 * and these calls have not changed since 1.2.0).
 */
#ifndef IMAGEPRE_ZLIB_MIN_H
#define IMAGEPRE_ZLIB_MIN_H

#if defined(__has_include) && __has_include(<zlib.h>)
#include <zlib.h>
#else
typedef unsigned char Bytef;
typedef unsigned int uInt;
typedef unsigned long uLong;
typedef uLong uLongf;

typedef struct z_stream_s {
    const Bytef *next_in;
    uInt avail_in;
    uLong total_in;
    Bytef *next_out;
    uInt avail_out;
    uLong total_out;
    const char *msg;
    void *state;
    void *(*zalloc)(void *, uInt, uInt);
    void (*zfree)(void *, void *);
    void *opaque;
    int data_type;
    uLong adler;
    uLong reserved;
} z_stream;

#define Z_NO_FLUSH 0
#define Z_PARTIAL_FLUSH 1
#define Z_SYNC_FLUSH 2
#define Z_FULL_FLUSH 3
#define Z_FINISH 4
#define Z_BLOCK 5
#define Z_OK 0
#define Z_STREAM_END 1
#define Z_FILTERED 1
#define Z_HUFFMAN_ONLY 2
#define Z_RLE 3
#define Z_FIXED 4
#define Z_DEFAULT_STRATEGY 0
#define Z_DEFLATED 8

const char *zlibVersion(void);
int deflateInit2_(z_stream *strm, int level, int method, int windowBits, int memLevel, int strategy,
                  const char *version, int stream_size);
#define deflateInit2(strm, level, method, windowBits, memLevel, strategy) \
    deflateInit2_((strm), (level), (method), (windowBits), (memLevel), (strategy), zlibVersion(), (int)sizeof(z_stream))
int deflate(z_stream *strm, int flush);
int deflateEnd(z_stream *strm);
int deflateParams(z_stream *strm, int level, int strategy);
uLong deflateBound(z_stream *strm, uLong sourceLen);
int compress2(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen, int level);
uLong compressBound(uLong sourceLen);
#endif

#endif

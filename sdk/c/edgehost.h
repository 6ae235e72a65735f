/*
 * edgehost.h - C SDK for edgehost plugins, ABI version 1.
 *
 * Written from abi/ABI.md (the normative spec); the numbers and offsets here are the same as
 * in abi/abi.go. A plugin is a WASI preview 1 reactor built with
 *
 *   .deps/bin/wasi-cc -O2 -mexec-model=reactor -I sdk/c -o x.wasm plugin.c sdk/c/edgehost.c
 *   (zig cc -target wasm32-wasi from `make deps`; or clang --target=wasm32-wasi with wasi-libc)
 *
 * Design (see README.md for a complete example):
 *
 *   - edgehost.c implements the exports every plugin needs: edgehost_abi_version,
 *     edgehost_alloc, edgehost_free and edgehost_init. edgehost_init forwards the params JSON
 *     to eh_plugin_init(), which the plugin MAY define (a weak default accepts any params).
 *   - The plugin defines eh_plugin_pre() and/or eh_plugin_post() and writes EH_EXPORT_PRE
 *     and/or EH_EXPORT_POST once at file scope. Those macros define the exports edgehost_pre /
 *     edgehost_post, so a module exports exactly the calls its manifest kind says.
 *   - Callbacks return a status (EH_OK, EH_BAD_INPUT, ...). Use eh_fail(status, fmt, ...) to
 *     set the error message and return the status in one statement.
 *
 * Everything in the call block and the tensor descriptors is little-endian, like wasm32 itself,
 * so the packed structs below are read directly. Pointers in them are guest addresses
 * (u32); use the accessors (eh_call_input, eh_tensor_data, ...) to get C pointers.
 */
#ifndef EDGEHOST_H
#define EDGEHOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ABI constants (ABI.md §3, §4, §7, §5.4) ------------------------------------------ */

#define EH_ABI_VERSION 1

/* Statuses returned by edgehost_init / edgehost_pre / edgehost_post (ABI.md §7). */
#define EH_OK          0 /* success */
#define EH_BAD_INPUT   1 /* the request's data is malformed (HTTP 400) */
#define EH_INTERNAL    2 /* the plugin failed (HTTP 500) */
#define EH_UNSUPPORTED 3 /* well-formed input the plugin does not handle (HTTP 415) */
#define EH_BAD_PARAMS  4 /* edgehost_init: invalid parameters */
#define EH_TOO_LARGE   5 /* well-formed input needing more memory than the budget (HTTP 413; ABI 1.2) */

/* Log levels of the log import (ABI.md §4). */
#define EH_LOG_DEBUG 0
#define EH_LOG_INFO  1
#define EH_LOG_WARN  2
#define EH_LOG_ERROR 3

/* Tensor element types: TFLite's TfLiteType values (ABI.md §5.4). */
#define EH_FLOAT32 1
#define EH_INT32   2
#define EH_UINT8   3
#define EH_INT64   4
#define EH_INT16   7
#define EH_INT8    9
#define EH_FLOAT16 10

#define EH_MAX_DIMS     8    /* largest rank a descriptor holds */
#define EH_TENSOR_ALIGN 64   /* alignment of every tensor buffer */
#define EH_MSG_MAX      4096 /* the host cuts log and error messages at 4 KiB */

/* ---- Call block (ABI.md §5.1): 64 bytes (48 before ABI 1.3) ------------------------------------------------ */

typedef struct eh_call {
    uint32_t abi;         /*  0 host: ABI version, 1 */
    uint32_t input;       /*  4 host: pre: guest pointer to the request bytes; post: 0 */
    uint32_t input_len;   /*  8 host: pre: request length; post: 0 */
    uint32_t n_tensors;   /* 12 host: number of descriptors at `tensors` */
    uint32_t tensors;     /* 16 host: guest pointer to the first tensor descriptor */
    uint32_t output;      /* 20 plugin: post: guest pointer to the result bytes */
    uint32_t output_len;  /* 24 plugin: post: result length */
    uint32_t flags;       /* 28 host: EH_FLAG_CONTEXT when the fields below exist (ABI 1.1) */
    /* Request context (ABI.md §5.6); read them only when flags has EH_FLAG_CONTEXT, or
     * through eh_set_context / eh_call_context, which check it. */
    uint32_t context;     /* 32 host: guest pointer to this instance's context buffer */
    uint32_t context_cap; /* 36 host: its size, EH_MAX_CONTEXT */
    uint32_t context_len; /* 40 pre: plugin writes the length it wrote; post: host writes the length */
    uint32_t reserved;    /* 44 0 */
    /* Raw frame (ABI 1.3, §5.7); valid only when flags has EH_FLAG_FRAME (a host before 1.3
     * allocated only 48 bytes): read them through eh_call_frame, which checks it. */
    uint32_t frame_width;  /* 48 host: pixels */
    uint32_t frame_height; /* 52 host: pixels */
    uint32_t frame_format; /* 56 host: EH_PIXEL_RGB24, EH_PIXEL_GRAY8 */
    uint32_t frame_stride; /* 60 host: bytes from one row to the next */
} eh_call;

#define EH_FLAG_CONTEXT 1    /* flags: the call block has the request-context fields */
#define EH_MAX_CONTEXT  4096 /* bytes a pre plugin may hand to the post plugin */
/* Sequences (ABI 1.3, ABI.md §5.8): set on the pre and post calls of a request that belongs
 * to a sequence; all requests of a sequence reach the same instances, in order. */
#define EH_FLAG_SEQUENCE  (1u << 2) /* the request belongs to a sequence */
#define EH_FLAG_SEQ_START (1u << 3) /* its first request: reset per-stream state */
#define EH_FLAG_SEQ_END   (1u << 4) /* its last request: the instance is closed after it */
/* Pre may set it in c->flags before returning EH_OK: no model run for this request (the host
 * sets it on the post call, whose output tensors hold the last run's values). ABI 1.3. */
#define EH_FLAG_SKIP_MODEL (1u << 5)
#define EH_FLAG_FRAME   2    /* flags: the input is a raw frame; the frame fields exist (ABI 1.3) */
#define EH_PIXEL_RGB24  1    /* raw frame pixel formats (ABI.md §5.7) */
#define EH_PIXEL_GRAY8  2

#define EH_CALL_SIZE           64
#define EH_CALL_OFF_ABI        0
#define EH_CALL_OFF_INPUT      4
#define EH_CALL_OFF_INPUT_LEN  8
#define EH_CALL_OFF_N_TENSORS  12
#define EH_CALL_OFF_TENSORS    16
#define EH_CALL_OFF_OUTPUT     20
#define EH_CALL_OFF_OUTPUT_LEN 24
#define EH_CALL_OFF_FLAGS      28
#define EH_CALL_OFF_CONTEXT    32
#define EH_CALL_OFF_CONTEXT_CAP 36
#define EH_CALL_OFF_CONTEXT_LEN 40
#define EH_CALL_OFF_FRAME_WIDTH  48
#define EH_CALL_OFF_FRAME_HEIGHT 52
#define EH_CALL_OFF_FRAME_FORMAT 56
#define EH_CALL_OFF_FRAME_STRIDE 60

/* ---- Tensor descriptor (ABI.md §5.4): 64 bytes each, contiguous ------------------------ */

typedef struct eh_tensor {
    uint32_t dtype;              /*  0 EH_FLOAT32, EH_UINT8, ... */
    uint32_t ndims;              /*  4 rank, <= 8 */
    int32_t dims[EH_MAX_DIMS];   /*  8 shape, row-major; entries past ndims are 0 */
    float scale;                 /* 40 quantisation scale; 0 when not quantised */
    int32_t zero_point;          /* 44 real = scale * (q - zero_point) */
    uint32_t data;               /* 48 guest pointer to the data, 64-byte aligned */
    uint32_t bytes;              /* 52 data length in bytes */
    uint32_t name;               /* 56 guest pointer to the name (UTF-8, not NUL-terminated) */
    uint32_t name_len;           /* 60 name length */
} eh_tensor;

#define EH_TENSOR_SIZE         64
#define EH_TENSOR_OFF_DTYPE    0
#define EH_TENSOR_OFF_NDIMS    4
#define EH_TENSOR_OFF_DIMS     8
#define EH_TENSOR_OFF_SCALE    40
#define EH_TENSOR_OFF_ZERO     44
#define EH_TENSOR_OFF_DATA     48
#define EH_TENSOR_OFF_BYTES    52
#define EH_TENSOR_OFF_NAME     56
#define EH_TENSOR_OFF_NAME_LEN 60

/* The layout checks: the structs must match the spec byte for byte. */
_Static_assert(sizeof(eh_call) == EH_CALL_SIZE, "eh_call size");
_Static_assert(offsetof(eh_call, abi) == EH_CALL_OFF_ABI, "eh_call.abi");
_Static_assert(offsetof(eh_call, input) == EH_CALL_OFF_INPUT, "eh_call.input");
_Static_assert(offsetof(eh_call, input_len) == EH_CALL_OFF_INPUT_LEN, "eh_call.input_len");
_Static_assert(offsetof(eh_call, n_tensors) == EH_CALL_OFF_N_TENSORS, "eh_call.n_tensors");
_Static_assert(offsetof(eh_call, tensors) == EH_CALL_OFF_TENSORS, "eh_call.tensors");
_Static_assert(offsetof(eh_call, output) == EH_CALL_OFF_OUTPUT, "eh_call.output");
_Static_assert(offsetof(eh_call, output_len) == EH_CALL_OFF_OUTPUT_LEN, "eh_call.output_len");
_Static_assert(offsetof(eh_call, flags) == EH_CALL_OFF_FLAGS, "eh_call.flags");
_Static_assert(offsetof(eh_call, context) == EH_CALL_OFF_CONTEXT, "eh_call.context");
_Static_assert(offsetof(eh_call, context_cap) == EH_CALL_OFF_CONTEXT_CAP, "eh_call.context_cap");
_Static_assert(offsetof(eh_call, context_len) == EH_CALL_OFF_CONTEXT_LEN, "eh_call.context_len");
_Static_assert(offsetof(eh_call, frame_width) == EH_CALL_OFF_FRAME_WIDTH, "eh_call.frame_width");
_Static_assert(offsetof(eh_call, frame_height) == EH_CALL_OFF_FRAME_HEIGHT, "eh_call.frame_height");
_Static_assert(offsetof(eh_call, frame_format) == EH_CALL_OFF_FRAME_FORMAT, "eh_call.frame_format");
_Static_assert(offsetof(eh_call, frame_stride) == EH_CALL_OFF_FRAME_STRIDE, "eh_call.frame_stride");
_Static_assert(sizeof(eh_tensor) == EH_TENSOR_SIZE, "eh_tensor size");
_Static_assert(offsetof(eh_tensor, dtype) == EH_TENSOR_OFF_DTYPE, "eh_tensor.dtype");
_Static_assert(offsetof(eh_tensor, ndims) == EH_TENSOR_OFF_NDIMS, "eh_tensor.ndims");
_Static_assert(offsetof(eh_tensor, dims) == EH_TENSOR_OFF_DIMS, "eh_tensor.dims");
_Static_assert(offsetof(eh_tensor, scale) == EH_TENSOR_OFF_SCALE, "eh_tensor.scale");
_Static_assert(offsetof(eh_tensor, zero_point) == EH_TENSOR_OFF_ZERO, "eh_tensor.zero_point");
_Static_assert(offsetof(eh_tensor, data) == EH_TENSOR_OFF_DATA, "eh_tensor.data");
_Static_assert(offsetof(eh_tensor, bytes) == EH_TENSOR_OFF_BYTES, "eh_tensor.bytes");
_Static_assert(offsetof(eh_tensor, name) == EH_TENSOR_OFF_NAME, "eh_tensor.name");
_Static_assert(offsetof(eh_tensor, name_len) == EH_TENSOR_OFF_NAME_LEN, "eh_tensor.name_len");

/* ---- Host imports (ABI.md §4, module "edgehost") --------------------------------------- */

#if defined(__wasm__)
#define EH_IMPORT(name) __attribute__((import_module("edgehost"), import_name(name)))
#else
#define EH_IMPORT(name) /* native builds (tests) link their own definitions */
#endif

/* Raw imports. Prefer eh_log / eh_set_error / eh_fail, which format and cut messages. */
EH_IMPORT("log") void eh_host_log(int32_t level, const char *ptr, uint32_t len);
EH_IMPORT("set_error") void eh_host_set_error(const char *ptr, uint32_t len);

/* ABI 1.3 (§5.9 "Model calls"): run a model the config grants the plugin (grants.models).
 * Prefer eh_model_open / eh_model_run below. model_tensors writes the model's input then
 * output descriptors (data and name 0) and returns n_inputs << 16 | n_outputs, or a negative
 * EH_MODEL_* status; run_model takes n {data, bytes} pairs (inputs then outputs, 64-byte
 * aligned, exact sizes) and returns 0 or a negative EH_MODEL_* status. After any failure the
 * host fails the request with its own message, whatever the plugin returns. */
EH_IMPORT("model_tensors") int32_t eh_host_model_tensors(const char *name, uint32_t name_len, eh_tensor *descs,
                                                         uint32_t cap);
EH_IMPORT("run_model") int32_t eh_host_run_model(const char *name, uint32_t name_len, const uint32_t *bufs,
                                                 uint32_t n);
#define EH_MODEL_OK 0
#define EH_MODEL_NOT_GRANTED (-1) /* not in grants.models, or not loaded */
#define EH_MODEL_BAD_BUFFERS (-2) /* wrong count, size, alignment, or outside memory */
#define EH_MODEL_LIMIT (-3)       /* the request's max_model_calls are spent */
#define EH_MODEL_DEADLINE (-4)    /* the request's deadline or the call's time budget is spent */
#define EH_MODEL_FAILED (-5)      /* no interpreter free in time, or inference failed */

/* ---- Plugin callbacks (defined by the plugin) ------------------------------------------ */

/* Called once per instance with the params JSON object (not NUL-terminated; "{}" when none).
 * Optional: the SDK's weak default returns EH_OK. Return EH_BAD_PARAMS with eh_fail for
 * missing or invalid parameters. */
int eh_plugin_init(const char *params, size_t len);
/* Kind pre/both: fill every input tensor from eh_call_input(). Export with EH_EXPORT_PRE. */
int eh_plugin_pre(eh_call *call);
/* Kind post/both: read the output tensors, then eh_set_output(). Export with EH_EXPORT_POST. */
int eh_plugin_post(eh_call *call);

/* Shared entry point of the two export macros: checks the call block, then calls fn. */
int32_t eh__dispatch(uint32_t call_ptr, int (*fn)(eh_call *), const char *what);

#if defined(__wasm__)
#define EH__EXPORT(name) __attribute__((export_name(name)))
#else
#define EH__EXPORT(name)
#endif

/* Write once at file scope in the plugin: defines the edgehost_pre export. */
#define EH_EXPORT_PRE                                                              \
    EH__EXPORT("edgehost_pre") int32_t edgehost_pre(uint32_t call_ptr);            \
    int32_t edgehost_pre(uint32_t call_ptr) {                                      \
        return eh__dispatch(call_ptr, eh_plugin_pre, "edgehost_pre");              \
    }
/* Write once at file scope in the plugin: defines the edgehost_post export. */
#define EH_EXPORT_POST                                                             \
    EH__EXPORT("edgehost_post") int32_t edgehost_post(uint32_t call_ptr);          \
    int32_t edgehost_post(uint32_t call_ptr) {                                     \
        return eh__dispatch(call_ptr, eh_plugin_post, "edgehost_post");            \
    }

/* ---- Call block accessors -------------------------------------------------------------- */

/* Guest address -> C pointer (wasm32: identity; kept explicit for clarity). */
static inline void *eh_ptr(uint32_t addr) { return (void *)(uintptr_t)addr; }

/* The request bytes of a pre call (NULL when empty) and their length. */
static inline const uint8_t *eh_call_input(const eh_call *c) { return (const uint8_t *)eh_ptr(c->input); }
static inline size_t eh_call_input_len(const eh_call *c) { return c->input_len; }
static inline size_t eh_call_ntensors(const eh_call *c) { return c->n_tensors; }
/* The i-th tensor descriptor, or NULL if i is out of range. */
static inline eh_tensor *eh_call_tensor(const eh_call *c, size_t i) {
    if (i >= c->n_tensors || c->tensors == 0) return NULL;
    return (eh_tensor *)eh_ptr(c->tensors) + i;
}
/* Set the post result: `len` bytes at `p`, which MUST stay valid until the next call. */
static inline void eh_set_output(eh_call *c, const void *p, size_t len) {
    c->output = (uint32_t)(uintptr_t)p;
    c->output_len = (uint32_t)len;
}

/* Pre: hand len bytes at p to the post plugin of the same request (ABI.md §5.6): the host
 * copies them, unread, into the post instance. Returns EH_OK, or fails with an error message
 * (EH_INTERNAL) when len exceeds the buffer or the host predates ABI 1.1. */
int eh_set_context(eh_call *c, const void *p, size_t len);
/* Post: the request context the pre plugin set (NULL and *len = 0 when none). Valid during
 * the call. */
static inline const uint8_t *eh_call_context(const eh_call *c, size_t *len) {
    if (!(c->flags & EH_FLAG_CONTEXT) || c->context_len == 0 || c->context_len > c->context_cap) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = c->context_len;
    return (const uint8_t *)eh_ptr(c->context);
}

/* Pre: whether the input is a raw frame (ABI 1.3, §5.7); if so, its geometry. A plugin that
 * takes raw frames lists their formats in its manifest ("frames": ["rgb24"]); the host hands
 * raw frames to no other. The pixels are eh_call_input(): height rows of stride bytes. */
typedef struct eh_frame {
    uint32_t width, height, format, stride;
} eh_frame;
static inline int eh_call_frame(const eh_call *c, eh_frame *f) {
    if (!(c->flags & EH_FLAG_FRAME)) return 0;
    f->width = c->frame_width, f->height = c->frame_height;
    f->format = c->frame_format, f->stride = c->frame_stride;
    return 1;
}

/* ---- Tensor descriptor accessors ------------------------------------------------------- */

static inline uint32_t eh_tensor_dtype(const eh_tensor *t) { return t->dtype; }
static inline uint32_t eh_tensor_ndims(const eh_tensor *t) { return t->ndims; }
/* Dimension i, or 0 if i >= ndims. */
static inline int32_t eh_tensor_dim(const eh_tensor *t, size_t i) {
    return (i < t->ndims && i < EH_MAX_DIMS) ? t->dims[i] : 0;
}
static inline float eh_tensor_scale(const eh_tensor *t) { return t->scale; }
static inline int32_t eh_tensor_zero_point(const eh_tensor *t) { return t->zero_point; }
/* True when the tensor carries quantisation parameters (scale != 0). */
static inline int eh_tensor_quantized(const eh_tensor *t) { return t->scale != 0.0f; }
static inline void *eh_tensor_data(const eh_tensor *t) { return eh_ptr(t->data); }
static inline size_t eh_tensor_bytes(const eh_tensor *t) { return t->bytes; }
/* The tensor's name (not NUL-terminated); its length goes to *len. */
static inline const char *eh_tensor_name(const eh_tensor *t, size_t *len) {
    if (len) *len = t->name_len;
    return (const char *)eh_ptr(t->name);
}

/* Size in bytes of one element of dtype, 0 for an unknown type. */
size_t eh_dtype_size(uint32_t dtype);
/* Name of a dtype ("float32", "uint8", ...; "unknown" otherwise). */
const char *eh_dtype_name(uint32_t dtype);
/* Number of elements: product of the dims (1 for rank 0). Returns 0 when the descriptor is
 * inconsistent: rank > 8, a negative dim, overflow, or bytes != elements * dtype size. Use it
 * to validate a descriptor before touching its data. */
size_t eh_tensor_count(const eh_tensor *t);

/* ---- Quantisation ---------------------------------------------------------------------- */

/* real = scale * (q - zero_point); with scale 0 (not quantised) real = q. */
static inline float eh_dequantize(int32_t q, float scale, int32_t zero_point) {
    return scale == 0.0f ? (float)q : scale * (float)(q - zero_point);
}
/* q = round(real / scale) + zero_point, clamped to [qmin, qmax]; with scale 0, q = round(real). */
int32_t eh_quantize(float real, float scale, int32_t zero_point, int32_t qmin, int32_t qmax);
static inline uint8_t eh_quantize_u8(float real, float scale, int32_t zp) {
    return (uint8_t)eh_quantize(real, scale, zp, 0, 255);
}
static inline int8_t eh_quantize_i8(float real, float scale, int32_t zp) {
    return (int8_t)eh_quantize(real, scale, zp, -128, 127);
}
/* Element i of the tensor as a real number (dequantised for integer types). The caller
 * guarantees i < eh_tensor_count(t). Unknown dtypes and float16 read as 0. */
float eh_tensor_get_f32(const eh_tensor *t, size_t i);
/* Store a real number into element i, quantised per dtype / scale / zero point. Returns 0,
 * or -1 for a dtype it cannot write (float16). */
int eh_tensor_set_f32(eh_tensor *t, size_t i, float real);

/* ---- Messages -------------------------------------------------------------------------- */

/* printf-style log line at level EH_LOG_*. */
void eh_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* printf-style error message for the status the current call is about to return. */
void eh_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* eh_set_error + return status: `return eh_fail(EH_BAD_INPUT, "bad header: %d", n);` */
int eh_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Output buffer --------------------------------------------------------------------- */

/* A growable byte buffer for building results. Its memory stays valid until it is reset or
 * freed, which fits ABI §5.3 when the buffer is reset at the start of the next call. After an
 * allocation failure `oom` is set and further appends are ignored. */
typedef struct eh_buf {
    char *p;
    size_t len, cap;
    int oom;
} eh_buf;

void eh_buf_reset(eh_buf *b);                               /* len = 0, keeps the memory */
void eh_buf_free(eh_buf *b);
int eh_buf_append(eh_buf *b, const void *p, size_t n);      /* 0 ok, -1 out of memory */
int eh_buf_printf(eh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s[0..n) as a quoted JSON string, escaping as needed. */
int eh_buf_json_string(eh_buf *b, const char *s, size_t n);
/* Append a float as a JSON number ("%.6g"; null for NaN and infinities). */
int eh_buf_json_number(eh_buf *b, double v);

/* ---- Minimal JSON reader for params ---------------------------------------------------- */
/*
 * Enough for the flat params objects of ABI §5.5. Values are spans of the original text, so
 * nothing is allocated except by eh_json_string_dup. Nesting is parsed (and skipped) up to a
 * depth of 32.
 *
 *   eh_json v;
 *   int r = eh_json_get(params, len, "top_k", &v);   // 1 found, 0 absent, -1 malformed
 *   double k; if (r == 1 && eh_json_number(&v, &k) != 0) return eh_fail(EH_BAD_PARAMS, ...);
 */
typedef enum eh_json_type {
    EH_JSON_NULL = 1,
    EH_JSON_BOOL,
    EH_JSON_NUMBER,
    EH_JSON_STRING,
    EH_JSON_ARRAY,
    EH_JSON_OBJECT,
} eh_json_type;

typedef struct eh_json {
    eh_json_type type;
    const char *p; /* raw text of the value: quotes and brackets included */
    size_t len;
} eh_json;

/* Parse a whole value; 0 ok and *out set, -1 malformed (or trailing garbage). */
int eh_json_parse(const char *json, size_t len, eh_json *out);
/* Look up key in the JSON object text json[0..len). Returns 1 found (*out set; the last one
 * wins for duplicate keys), 0 absent, -1 if the text is not a well-formed JSON object. */
int eh_json_get(const char *json, size_t len, const char *key, eh_json *out);
/* Same, on an object value from eh_json_get / eh_json_parse. */
int eh_json_object_get(const eh_json *obj, const char *key, eh_json *out);
/* Typed reads: 0 ok, -1 wrong type. */
int eh_json_number(const eh_json *v, double *out);
int eh_json_bool(const eh_json *v, int *out);
/* A string value, unescaped, as a malloc'd NUL-terminated string (length to *n if n is not
 * NULL). NULL if v is not a string or on out of memory. free() it. */
char *eh_json_string_dup(const eh_json *v, size_t *n);
/* Iterate an array: size_t pos = 0; while (eh_json_array_next(&arr, &pos, &e) == 1) {...}
 * Returns 1 with *elem set, 0 at the end, -1 if v is not an array. */
int eh_json_array_next(const eh_json *arr, size_t *pos, eh_json *elem);
/* Number of elements of an array, -1 if v is not an array. */
long eh_json_array_len(const eh_json *arr);
/* An array of strings (a "labels" param, say) as malloc'd NUL-terminated strings: *strs gets
 * n + 1 pointers (the last NULL), *lens their lengths (strings may hold NUL via \u0000).
 * Returns EH_OK, or fails with eh_fail naming the param `name` (EH_BAD_PARAMS when arr is not
 * an array of strings, EH_INTERNAL on out of memory); nothing is freed on failure, as a
 * failed init discards the instance. */
int eh_json_string_array(const eh_json *arr, const char *name, char ***strs, size_t **lens, size_t *n);

/* ---- Model calls (ABI 1.3, §5.9; sdk/c/model.c) ---------------------------------------- */

#define EH_MODEL_MAX_TENSORS 16

/* A model the plugin may run, with a 64-byte-aligned buffer per tensor in the plugin's own
 * memory: the host binds the model's tensors to these buffers for each run (zero copy). */
typedef struct eh_model {
    char name[64];
    size_t n_in, n_out;
    eh_tensor t[EH_MODEL_MAX_TENSORS];       /* inputs then outputs; data points at the buffers */
    uint32_t bufs[2 * EH_MODEL_MAX_TENSORS]; /* {data, bytes} per tensor, for run_model */
} eh_model;

/* Describe model name and allocate its tensor buffers (call from eh_plugin_init or the
 * first request). EH_OK, or a status with the error set. */
int eh_model_open(eh_model *m, const char *name);
static inline eh_tensor *eh_model_input(eh_model *m, size_t i) { return i < m->n_in ? &m->t[i] : 0; }
static inline eh_tensor *eh_model_output(eh_model *m, size_t i) {
    return i < m->n_out ? &m->t[m->n_in + i] : 0;
}
/* Run the model once on its input buffers; the outputs are then in its output buffers.
 * EH_OK, or EH_INTERNAL with the error set (the host fails the request in any case). */
int eh_model_run(eh_model *m);
void eh_model_close(eh_model *m);

/* Crop the box [x0, x1) x [y0, y1) (pixels, rounded half to even to whole pixels, as Python's
 * round(); it may reach outside the image: filled with pad) of an 8-bit RGB image w x h and
 * resize it into the NHWC tensor t (1 x H x W x 3) exactly as Pillow's Image.crop + resize
 * (BILINEAR: a triangle widened by the downscale factor, antialiased; fixed point; an 8-bit
 * intermediate), so a Python chain on the same pixels gets the same bytes: uint8 as pixel
 * values, int8 as pixel - 128, float32 as (pixel - mean) / std. EH_OK, EH_UNSUPPORTED
 * (another layout) or EH_BAD_INPUT (an empty or invalid box). */
int eh_crop_resize_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, double x0, double y0, double x1, double y1,
                       eh_tensor *t, float mean, float std, uint8_t pad);

/* The index of the largest element of t (dequantised), or -1 when t is empty. */
long eh_tensor_argmax(const eh_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* EDGEHOST_H */

/*
 * edgehost.c - C SDK for edgehost plugins, ABI version 1 (see edgehost.h and abi/ABI.md).
 *
 * Implements the exports every plugin has (edgehost_abi_version, edgehost_alloc,
 * edgehost_free, edgehost_init), the dispatcher behind EH_EXPORT_PRE / EH_EXPORT_POST, and the
 * helpers declared in edgehost.h: messages, quantisation, an output buffer and a small JSON
 * reader.
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign, also under -std=c11 */
#include "edgehost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__wasm__)
#define EXPORT(name) __attribute__((export_name(name)))
#else
#define EXPORT(name)
#endif

/* ---- Exports --------------------------------------------------------------------------- */

EXPORT("edgehost_abi_version") int32_t edgehost_abi_version(void);
EXPORT("edgehost_alloc") uint32_t edgehost_alloc(uint32_t size, uint32_t align);
EXPORT("edgehost_free") void edgehost_free(uint32_t ptr);
EXPORT("edgehost_init") int32_t edgehost_init(uint32_t params_ptr, uint32_t params_len);

int32_t edgehost_abi_version(void) { return EH_ABI_VERSION; }

/* Allocate size bytes aligned to align, a power of two <= 4096 (ABI §3). 0 on failure.
 * posix_memalign needs a multiple of sizeof(void*), so smaller alignments are rounded up;
 * a zero size gets one byte so that the pointer is unique and freeable. */
uint32_t edgehost_alloc(uint32_t size, uint32_t align) {
    if (align == 0 || (align & (align - 1)) != 0 || align > 4096) return 0;
    if (align < sizeof(void *)) align = sizeof(void *);
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : 1) != 0) return 0;
    return (uint32_t)(uintptr_t)p;
}

void edgehost_free(uint32_t ptr) {
    if (ptr != 0) free(eh_ptr(ptr));
}

/* Default init for plugins that take no params: accept anything. */
__attribute__((weak)) int eh_plugin_init(const char *params, size_t len) {
    (void)params;
    (void)len;
    return EH_OK;
}

int32_t edgehost_init(uint32_t params_ptr, uint32_t params_len) {
    /* The host always passes at least "{}"; be lenient about an empty buffer anyway. */
    if (params_ptr == 0 || params_len == 0) return eh_plugin_init("{}", 2);
    return eh_plugin_init((const char *)eh_ptr(params_ptr), params_len);
}

/* Behind edgehost_pre / edgehost_post: sanity-check the call block, then run the callback. */
int32_t eh__dispatch(uint32_t call_ptr, int (*fn)(eh_call *), const char *what) {
    if (call_ptr == 0 || (call_ptr & 3) != 0)
        return eh_fail(EH_INTERNAL, "%s: bad call block pointer %u", what, (unsigned)call_ptr);
    eh_call *c = (eh_call *)eh_ptr(call_ptr);
    if (c->abi != EH_ABI_VERSION)
        return eh_fail(EH_INTERNAL, "%s: call block has ABI %u, want %d", what, (unsigned)c->abi,
                       EH_ABI_VERSION);
    if (c->n_tensors > 0 && (c->tensors == 0 || (c->tensors & 3) != 0))
        return eh_fail(EH_INTERNAL, "%s: bad tensor table pointer %u", what, (unsigned)c->tensors);
    c->output = 0;
    c->output_len = 0;
    return fn(c);
}

int eh_set_context(eh_call *c, const void *p, size_t len) {
    if (!(c->flags & EH_FLAG_CONTEXT))
        return eh_fail(EH_INTERNAL, "eh_set_context: this host passes no request context (it predates ABI 1.1)");
    if (len > c->context_cap)
        return eh_fail(EH_INTERNAL, "eh_set_context: %zu bytes exceed the %u-byte context buffer", len,
                       (unsigned)c->context_cap);
    memcpy(eh_ptr(c->context), p, len);
    c->context_len = (uint32_t)len;
    return EH_OK;
}

/* ---- Messages -------------------------------------------------------------------------- */

static char msgbuf[EH_MSG_MAX];

static size_t format_msg(const char *fmt, va_list ap) {
    int n = vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
    if (n < 0) return 0;
    return (size_t)n < sizeof msgbuf ? (size_t)n : sizeof msgbuf - 1;
}

void eh_log(int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_msg(fmt, ap);
    va_end(ap);
    eh_host_log(level, msgbuf, (uint32_t)n);
}

void eh_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_msg(fmt, ap);
    va_end(ap);
    eh_host_set_error(msgbuf, (uint32_t)n);
}

int eh_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_msg(fmt, ap);
    va_end(ap);
    eh_host_set_error(msgbuf, (uint32_t)n);
    return status;
}

/* ---- Tensors and quantisation ---------------------------------------------------------- */

size_t eh_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case EH_UINT8: case EH_INT8: return 1;
    case EH_INT16: case EH_FLOAT16: return 2;
    case EH_FLOAT32: case EH_INT32: return 4;
    case EH_INT64: return 8;
    }
    return 0;
}

const char *eh_dtype_name(uint32_t dtype) {
    switch (dtype) {
    case EH_FLOAT32: return "float32";
    case EH_INT32: return "int32";
    case EH_UINT8: return "uint8";
    case EH_INT64: return "int64";
    case EH_INT16: return "int16";
    case EH_INT8: return "int8";
    case EH_FLOAT16: return "float16";
    }
    return "unknown";
}

size_t eh_tensor_count(const eh_tensor *t) {
    if (t->ndims > EH_MAX_DIMS) return 0;
    size_t es = eh_dtype_size(t->dtype);
    if (es == 0) return 0;
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->ndims; i++) {
        if (t->dims[i] < 0) return 0;
        n *= (uint64_t)t->dims[i];
        if (n > 0xffffffffu) return 0;
    }
    if (n * es != t->bytes || (n > 0 && t->data == 0)) return 0;
    return (size_t)n;
}

int32_t eh_quantize(float real, float scale, int32_t zero_point, int32_t qmin, int32_t qmax) {
    float q = scale == 0.0f ? real : real / scale + (float)zero_point;
    if (!(q == q)) return zero_point < qmin ? qmin : zero_point > qmax ? qmax : zero_point; /* NaN */
    q = roundf(q);
    if (q <= (float)qmin) return qmin;
    if (q >= (float)qmax) return qmax;
    return (int32_t)q;
}

float eh_tensor_get_f32(const eh_tensor *t, size_t i) {
    const void *d = eh_tensor_data(t);
    float s = t->scale;
    int32_t z = t->zero_point;
    switch (t->dtype) {
    case EH_FLOAT32: { float v; memcpy(&v, (const char *)d + 4 * i, 4); return v; }
    case EH_UINT8: return eh_dequantize(((const uint8_t *)d)[i], s, z);
    case EH_INT8: return eh_dequantize(((const int8_t *)d)[i], s, z);
    case EH_INT16: { int16_t v; memcpy(&v, (const char *)d + 2 * i, 2); return eh_dequantize(v, s, z); }
    case EH_INT32: { int32_t v; memcpy(&v, (const char *)d + 4 * i, 4); return eh_dequantize(v, s, z); }
    case EH_INT64: {
        int64_t v;
        memcpy(&v, (const char *)d + 8 * i, 8);
        return s == 0.0f ? (float)v : s * (float)(v - z);
    }
    }
    return 0.0f;
}

int eh_tensor_set_f32(eh_tensor *t, size_t i, float real) {
    void *d = eh_tensor_data(t);
    float s = t->scale;
    int32_t z = t->zero_point;
    switch (t->dtype) {
    case EH_FLOAT32: memcpy((char *)d + 4 * i, &real, 4); return 0;
    case EH_UINT8: ((uint8_t *)d)[i] = eh_quantize_u8(real, s, z); return 0;
    case EH_INT8: ((int8_t *)d)[i] = eh_quantize_i8(real, s, z); return 0;
    case EH_INT16: {
        int16_t v = (int16_t)eh_quantize(real, s, z, -32768, 32767);
        memcpy((char *)d + 2 * i, &v, 2);
        return 0;
    }
    case EH_INT32: {
        int32_t v = eh_quantize(real, s, z, INT32_MIN, INT32_MAX);
        memcpy((char *)d + 4 * i, &v, 4);
        return 0;
    }
    case EH_INT64: {
        int64_t v = eh_quantize(real, s, z, INT32_MIN, INT32_MAX);
        memcpy((char *)d + 8 * i, &v, 8);
        return 0;
    }
    }
    return -1;
}

/* ---- Output buffer --------------------------------------------------------------------- */

void eh_buf_reset(eh_buf *b) {
    b->len = 0;
    b->oom = 0;
}

void eh_buf_free(eh_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

static int buf_reserve(eh_buf *b, size_t n) {
    if (b->oom) return -1;
    if (n <= b->cap - b->len) return 0;
    size_t want = b->len + n;
    if (want < b->len) { b->oom = 1; return -1; }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) { cap = want; break; }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

int eh_buf_append(eh_buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int eh_buf_printf(eh_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int eh_buf_json_string(eh_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (eh_buf_append(b, "\"", 1) != 0) return -1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        eh_buf_append(b, s + start, i - start);
        start = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': eh_buf_append(b, "\\\"", 2); break;
        case '\\': eh_buf_append(b, "\\\\", 2); break;
        case '\n': eh_buf_append(b, "\\n", 2); break;
        case '\r': eh_buf_append(b, "\\r", 2); break;
        case '\t': eh_buf_append(b, "\\t", 2); break;
        default: eh_buf_append(b, esc, 6); break;
        }
    }
    eh_buf_append(b, s + start, n - start);
    return eh_buf_append(b, "\"", 1);
}

int eh_buf_json_number(eh_buf *b, double v) {
    if (isnan(v) || isinf(v)) return eh_buf_append(b, "null", 4);
    return eh_buf_printf(b, "%.6g", v);
}

/* ---- JSON reader ----------------------------------------------------------------------- */

#define JSON_MAX_DEPTH 32

static const char *json_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Scan a string starting at the opening quote; returns the position after the closing quote. */
static const char *json_scan_string(const char *p, const char *e) {
    p++; /* opening quote */
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            if (++p >= e) return NULL;
            switch (*p) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': p++; break;
            case 'u':
                if (e - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]))
                    return NULL;
                p += 5;
                break;
            default: return NULL;
            }
            continue;
        }
        p++;
    }
    return NULL;
}

static const char *json_scan_number(const char *p, const char *e) {
    if (p < e && *p == '-') p++;
    if (p >= e) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < e && *p >= '0' && *p <= '9') p++;
    else return NULL;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const char *json_lit(const char *p, const char *e, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(e - p) < n || memcmp(p, lit, n) != 0) return NULL;
    return p + n;
}

/* Parse one value at p (no leading whitespace); fill *v; return the position after it. */
static const char *json_value(const char *p, const char *e, int depth, eh_json *v) {
    if (p >= e || depth > JSON_MAX_DEPTH) return NULL;
    const char *start = p, *q = NULL;
    switch (*p) {
    case '"': v->type = EH_JSON_STRING; q = json_scan_string(p, e); break;
    case 't': v->type = EH_JSON_BOOL; q = json_lit(p, e, "true"); break;
    case 'f': v->type = EH_JSON_BOOL; q = json_lit(p, e, "false"); break;
    case 'n': v->type = EH_JSON_NULL; q = json_lit(p, e, "null"); break;
    case '[': case '{': {
        int obj = *p == '{';
        char close = obj ? '}' : ']';
        eh_json tmp;
        v->type = obj ? EH_JSON_OBJECT : EH_JSON_ARRAY;
        q = json_ws(p + 1, e);
        if (q < e && *q == close) { q++; break; }
        for (;;) {
            if (obj) {
                if (q >= e || *q != '"' || !(q = json_scan_string(q, e))) return NULL;
                q = json_ws(q, e);
                if (q >= e || *q != ':') return NULL;
                q = json_ws(q + 1, e);
            }
            if (!(q = json_value(q, e, depth + 1, &tmp))) return NULL;
            q = json_ws(q, e);
            if (q >= e) return NULL;
            if (*q == close) { q++; break; }
            if (*q != ',') return NULL;
            q = json_ws(q + 1, e);
        }
        break;
    }
    default: v->type = EH_JSON_NUMBER; q = json_scan_number(p, e); break;
    }
    if (!q) return NULL;
    v->p = start;
    v->len = (size_t)(q - start);
    return q;
}

int eh_json_parse(const char *json, size_t len, eh_json *out) {
    const char *e = json + len;
    const char *p = json_ws(json, e);
    eh_json v;
    if (!(p = json_value(p, e, 0, &v))) return -1;
    if (json_ws(p, e) != e) return -1;
    *out = v;
    return 0;
}

/* Decode \uXXXX at p (after the 'u'). */
static unsigned hex4(const char *p) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Unescape the string value v (already validated) into out (at least v->len bytes); returns
 * the decoded length. UTF-8 output never exceeds the escaped input's length. */
static size_t json_unescape(const eh_json *v, char *out) {
    const char *p = v->p + 1, *e = v->p + v->len - 1;
    size_t n = 0;
    while (p < e) {
        if (*p != '\\') { out[n++] = *p++; continue; }
        p++;
        char c = *p++;
        switch (c) {
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp = hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = hex4(p + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* lone surrogate */
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) {
                out[n++] = (char)(0xC0 | cp >> 6);
                out[n++] = (char)(0x80 | (cp & 63));
            } else if (cp < 0x10000) {
                out[n++] = (char)(0xE0 | cp >> 12);
                out[n++] = (char)(0x80 | ((cp >> 6) & 63));
                out[n++] = (char)(0x80 | (cp & 63));
            } else {
                out[n++] = (char)(0xF0 | cp >> 18);
                out[n++] = (char)(0x80 | ((cp >> 12) & 63));
                out[n++] = (char)(0x80 | ((cp >> 6) & 63));
                out[n++] = (char)(0x80 | (cp & 63));
            }
            break;
        }
        default: out[n++] = c; break; /* " \ / */
        }
    }
    return n;
}

char *eh_json_string_dup(const eh_json *v, size_t *n) {
    if (v->type != EH_JSON_STRING || v->len < 2) return NULL;
    char *s = malloc(v->len);
    if (!s) return NULL;
    size_t k = json_unescape(v, s);
    s[k] = 0;
    if (n) *n = k;
    return s;
}

/* Compare a string value's decoded text with key. */
static int json_key_eq(const eh_json *k, const char *key) {
    size_t kl = strlen(key);
    if (!memchr(k->p, '\\', k->len)) return k->len == kl + 2 && memcmp(k->p + 1, key, kl) == 0;
    size_t n;
    char *s = eh_json_string_dup(k, &n);
    int eq = s && n == kl && memcmp(s, key, kl) == 0;
    free(s);
    return eq;
}

int eh_json_object_get(const eh_json *obj, const char *key, eh_json *out) {
    if (obj->type != EH_JSON_OBJECT) return -1;
    const char *e = obj->p + obj->len - 1; /* the closing brace */
    const char *p = json_ws(obj->p + 1, e);
    int found = 0;
    while (p < e) {
        eh_json k, v;
        if (!(p = json_value(p, e, 1, &k)) || k.type != EH_JSON_STRING) return -1;
        p = json_ws(p, e);
        if (p >= e || *p != ':') return -1;
        if (!(p = json_value(json_ws(p + 1, e), e, 1, &v))) return -1;
        if (json_key_eq(&k, key)) { *out = v; found = 1; }
        p = json_ws(p, e);
        if (p < e && *p == ',') p = json_ws(p + 1, e);
    }
    return found;
}

int eh_json_get(const char *json, size_t len, const char *key, eh_json *out) {
    eh_json obj;
    if (eh_json_parse(json, len, &obj) != 0 || obj.type != EH_JSON_OBJECT) return -1;
    return eh_json_object_get(&obj, key, out);
}

int eh_json_number(const eh_json *v, double *out) {
    if (v->type != EH_JSON_NUMBER) return -1;
    char tmp[64];
    if (v->len >= sizeof tmp) { /* absurdly long number: let strtod see a bounded copy */
        char *s = malloc(v->len + 1);
        if (!s) return -1;
        memcpy(s, v->p, v->len);
        s[v->len] = 0;
        *out = strtod(s, NULL);
        free(s);
        return 0;
    }
    memcpy(tmp, v->p, v->len);
    tmp[v->len] = 0;
    *out = strtod(tmp, NULL);
    return 0;
}

int eh_json_bool(const eh_json *v, int *out) {
    if (v->type != EH_JSON_BOOL) return -1;
    *out = v->p[0] == 't';
    return 0;
}

int eh_json_array_next(const eh_json *arr, size_t *pos, eh_json *elem) {
    if (arr->type != EH_JSON_ARRAY) return -1;
    const char *e = arr->p + arr->len - 1; /* the closing bracket */
    const char *p = arr->p + (*pos ? *pos : 1);
    p = json_ws(p, e);
    if (p < e && *p == ',') p = json_ws(p + 1, e);
    if (p >= e) { *pos = arr->len - 1; return 0; }
    if (!(p = json_value(p, e, 1, elem))) return -1;
    *pos = (size_t)(p - arr->p);
    return 1;
}

long eh_json_array_len(const eh_json *arr) {
    if (arr->type != EH_JSON_ARRAY) return -1;
    size_t pos = 0;
    long n = 0;
    eh_json e;
    int r;
    while ((r = eh_json_array_next(arr, &pos, &e)) == 1) n++;
    return r < 0 ? -1 : n;
}

int eh_json_string_array(const eh_json *arr, const char *name, char ***strs, size_t **lens, size_t *n) {
    long count = eh_json_array_len(arr);
    if (count < 0) return eh_fail(EH_BAD_PARAMS, "params: \"%s\" must be an array of strings", name);
    char **s = calloc((size_t)count + 1, sizeof *s);
    size_t *l = calloc((size_t)count + 1, sizeof *l);
    if (!s || !l) return eh_fail(EH_INTERNAL, "out of memory for params \"%s\"", name);
    size_t pos = 0;
    eh_json el;
    for (long i = 0; i < count; i++) {
        if (eh_json_array_next(arr, &pos, &el) != 1 || el.type != EH_JSON_STRING)
            return eh_fail(EH_BAD_PARAMS, "params: \"%s\"[%ld] is not a string", name, i);
        if (!(s[i] = eh_json_string_dup(&el, &l[i])))
            return eh_fail(EH_INTERNAL, "out of memory for params \"%s\"", name);
    }
    *strs = s, *lens = l, *n = (size_t)count;
    return EH_OK;
}

#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

void eh_reporter(void* user_data, const char* format, va_list args) {
	eh_errbuf* b = (eh_errbuf*)user_data;
	if (b == NULL || b->len >= EH_ERRBUF - 2) return;
	if (b->len > 0) b->msg[b->len++] = ';', b->msg[b->len] = 0;
	int n = vsnprintf(b->msg + b->len, EH_ERRBUF - b->len, format, args);
	if (n > 0) {
		b->len += (size_t)n;
		if (b->len >= EH_ERRBUF) b->len = EH_ERRBUF - 1;
	}
}

void eh_set_reporter(TfLiteInterpreterOptions* options, eh_errbuf* buf) {
	TfLiteInterpreterOptionsSetErrorReporter(options, eh_reporter, buf);
}

static void* sym(const char* name) { return dlsym(RTLD_DEFAULT, name); }

int eh_has_custom_allocation(void) { return sym("TfLiteInterpreterSetCustomAllocationForTensor") != NULL; }
int eh_has_xnnpack(void) { return sym("TfLiteXNNPackDelegateCreate") != NULL; }
int eh_has_tensor_index(void) { return sym("TfLiteInterpreterGetInputTensorIndex") != NULL; }

/* TfLiteXNNPackDelegateOptions differs between TFLite releases in size, and so in how
 * TfLiteXNNPackDelegateOptionsDefault returns it. Read from the libraries' code:
 *   2.9.0 (tfjs-tflite-node): {int32 num_threads; uint32 flags}, 8 bytes, returned in a
 *     register (the function is `xor eax,eax; ret`); Create copies 8 bytes.
 *   2.17.1 (pymicro-wakeword): 32 bytes {num_threads, flags, weights_cache,
 *     handle_variable_ops, weight cache path}, written through the hidden result pointer
 *     (defaults: flags 0x3).
 * A struct of at most 16 bytes comes back in registers on x86-64 and arm64; a larger one
 * through a pointer the caller passes. Calling 2.9's function as if it returned 512 bytes
 * (as this shim once did) made the caller copy an uninitialised buffer: garbage flags. So
 * the call matches the release: before 2.10 (handle_variable_ops made the struct 24 bytes)
 * the small form, from 2.10 the large one into a buffer bigger than any release's struct.
 * The flags sit at offset 4 up to 2.17; later LiteRT builds insert runtime_flags there, so
 * eh_xnnpack_create reads the flags back from the delegate where the library can
 * (TfLiteXNNPackDelegateGetFlags) and refuses a delegate whose flags differ. */
typedef struct {
	int32_t num_threads;
	uint32_t flags;
} eh_xnn_small;

#define EH_XNN_FLAG_QS8 0x1
#define EH_XNN_FLAG_QU8 0x2

typedef struct {
	unsigned char b[EH_XNN_OPTIONS_MAX];
} eh_xnn_large;

int eh_xnnpack_small_abi(void) {
	int major = 0, minor = 0;
	if (sscanf(TfLiteVersion(), "%d.%d", &major, &minor) != 2) return 0;
	return major < 2 || (major == 2 && minor < 10);
}

int eh_xnnpack_options(int num_threads, int force_quantized, void* buf, int32_t* threads, uint32_t* flags) {
	void* def = sym("TfLiteXNNPackDelegateOptionsDefault");
	if (def == NULL) return -1;
	memset(buf, 0, EH_XNN_OPTIONS_MAX);
	if (eh_xnnpack_small_abi()) {
		eh_xnn_small o = ((eh_xnn_small(*)(void))def)();
		memcpy(buf, &o, sizeof o);
	} else {
		eh_xnn_large* o = (eh_xnn_large*)buf;
		*o = ((eh_xnn_large(*)(void))def)();
	}
	eh_xnn_small head;
	memcpy(&head, buf, sizeof head);
	head.num_threads = num_threads;
	if (force_quantized) head.flags |= EH_XNN_FLAG_QS8 | EH_XNN_FLAG_QU8;
	memcpy(buf, &head, sizeof head);
	*threads = head.num_threads;
	*flags = head.flags;
	return 0;
}

int eh_xnnpack_flags(TfLiteDelegate* d, uint32_t* flags) {
	uint32_t (*get)(TfLiteDelegate*) = (uint32_t(*)(TfLiteDelegate*))sym("TfLiteXNNPackDelegateGetFlags");
	if (get == NULL || d == NULL) return -1;
	*flags = get(d);
	return 0;
}

TfLiteDelegate* eh_xnnpack_create(int num_threads, int force_quantized) {
	TfLiteDelegate* (*create)(const void*) = (TfLiteDelegate * (*)(const void*)) sym("TfLiteXNNPackDelegateCreate");
	if (create == NULL) return NULL;
	unsigned char buf[EH_XNN_OPTIONS_MAX] __attribute__((aligned(16)));
	int32_t threads;
	uint32_t want, got;
	if (eh_xnnpack_options(num_threads, force_quantized, buf, &threads, &want) != 0) return NULL;
	TfLiteDelegate* d = create(buf);
	if (d != NULL && eh_xnnpack_flags(d, &got) == 0 && got != want) {
		eh_xnnpack_delete(d); /* the options layout is not the one this shim knows */
		return NULL;
	}
	return d;
}

void eh_xnnpack_delete(TfLiteDelegate* d) {
	void (*del)(TfLiteDelegate*) = (void (*)(TfLiteDelegate*))sym("TfLiteXNNPackDelegateDelete");
	if (d != NULL && del != NULL) del(d);
}

static __thread char* eh_ext_err;
static __thread size_t eh_ext_errlen;
static void eh_ext_report(const char* msg) {
	if (eh_ext_err != NULL && msg != NULL) snprintf(eh_ext_err, eh_ext_errlen, "%s", msg);
}

int eh_external_load(const char* path, char** keys, char** values, size_t n, eh_external* out, char* err, size_t errlen) {
	memset(out, 0, sizeof *out);
	err[0] = 0;
	void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(err, errlen, "dlopen: %s", dlerror());
		return -1;
	}
	typedef TfLiteDelegate* (*create_fn)(char**, char**, size_t, void (*)(const char*));
	create_fn create = (create_fn)dlsym(h, "tflite_plugin_create_delegate");
	void (*destroy)(TfLiteDelegate*) = (void (*)(TfLiteDelegate*))dlsym(h, "tflite_plugin_destroy_delegate");
	if (create == NULL || destroy == NULL) {
		snprintf(err, errlen, "%s does not export tflite_plugin_create_delegate and tflite_plugin_destroy_delegate", path);
		dlclose(h);
		return -1;
	}
	eh_ext_err = err;
	eh_ext_errlen = errlen;
	TfLiteDelegate* d = create(keys, values, n, eh_ext_report);
	eh_ext_err = NULL;
	if (d == NULL) {
		if (err[0] == 0) snprintf(err, errlen, "tflite_plugin_create_delegate returned NULL");
		dlclose(h);
		return -1;
	}
	out->handle = h;
	out->delegate = d;
	out->destroy = destroy;
	return 0;
}

void eh_external_unload(eh_external* ext) {
	if (ext->delegate != NULL && ext->destroy != NULL) ext->destroy(ext->delegate);
	if (ext->handle != NULL) dlclose(ext->handle);
	memset(ext, 0, sizeof *ext);
}

typedef struct {
	void* data;
	size_t bytes;
} eh_custom_allocation;

int eh_set_custom_allocation(TfLiteInterpreter* interp, int tensor_index, void* data, size_t bytes) {
	TfLiteStatus (*set)(TfLiteInterpreter*, int, const eh_custom_allocation*, int64_t) =
	    (TfLiteStatus(*)(TfLiteInterpreter*, int, const eh_custom_allocation*, int64_t))sym("TfLiteInterpreterSetCustomAllocationForTensor");
	if (set == NULL) return -1;
	eh_custom_allocation a = {data, bytes};
	return (int)set(interp, tensor_index, &a, 0);
}

int eh_input_tensor_index(TfLiteInterpreter* interp, int input) {
	int (*f)(const TfLiteInterpreter*, int32_t) = (int (*)(const TfLiteInterpreter*, int32_t))sym("TfLiteInterpreterGetInputTensorIndex");
	return f == NULL ? -1 : f(interp, input);
}

int eh_output_tensor_index(TfLiteInterpreter* interp, int output) {
	int (*f)(const TfLiteInterpreter*, int32_t) = (int (*)(const TfLiteInterpreter*, int32_t))sym("TfLiteInterpreterGetOutputTensorIndex");
	return f == NULL ? -1 : f(interp, output);
}

/* glibc gives every thread that mallocs its own arena, up to 8 per core, and never returns
 * most of an arena's memory: with TFLite, XNNPACK and wazero allocating from many Go threads,
 * RSS grew with every swap (55 -> 330-450 MiB over 300-700 swaps). Two arenas keep it flat
 * (RATIONALE.md, "malloc arenas"). This runs before the Go runtime starts its threads; an
 * operator's MALLOC_ARENA_MAX wins. */
__attribute__((constructor)) static void eh_malloc_tune(void) {
	if (getenv("MALLOC_ARENA_MAX") == NULL) mallopt(M_ARENA_MAX, EH_ARENA_MAX);
}

typedef struct {
	pthread_barrier_t* b;
	void* p;
} eh_arena_probe;

static void* eh_arena_thread(void* arg) {
	eh_arena_probe* a = (eh_arena_probe*)arg;
	a->p = malloc(64); /* the first malloc of a thread picks (or creates) its arena */
	pthread_barrier_wait(a->b);
	return NULL;
}

/* eh_malloc_arenas starts threads threads that each malloc while all are alive, then counts
 * the arenas glibc has (malloc_info's <heap> entries). -1 on error. */
int eh_malloc_arenas(int threads) {
	if (threads < 1 || threads > 64) return -1;
	pthread_t t[64];
	eh_arena_probe a[64];
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++) {
		a[i].b = &b;
		a[i].p = NULL;
		if (pthread_create(&t[i], NULL, eh_arena_thread, &a[i]) != 0) return -1;
	}
	for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
	pthread_barrier_destroy(&b);
	for (int i = 0; i < threads; i++) free(a[i].p);
	char* buf = NULL;
	size_t len = 0;
	FILE* f = open_memstream(&buf, &len);
	if (f == NULL) return -1;
	malloc_info(0, f);
	fclose(f);
	int n = 0;
	for (char* s = buf; (s = strstr(s, "<heap nr=")) != NULL; s++) n++;
	free(buf);
	return n;
}

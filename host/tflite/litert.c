#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "litert.h"

/* The C API's value types, as documented: LiteRtStatus and LiteRtHwAcceleratorSet are
 * ints, LiteRtParamIndex is size_t, an environment option is {tag; LiteRtAny} with the
 * value's type at offset 8 and its 8-byte union at 16 (24 bytes on 64-bit targets). */
typedef int lrt_status;
typedef size_t lrt_index;

typedef struct {
	int type;
	union {
		int64_t i;
		const char* s;
		const void* p;
	} v;
} lrt_any;

typedef struct {
	int tag;
	lrt_any value;
} lrt_env_option;

_Static_assert(sizeof(void*) != 8 || (sizeof(lrt_env_option) == 24 && offsetof(lrt_env_option, value) == 8 &&
                                      offsetof(lrt_env_option, value.v) == 16),
               "LiteRtEnvOption layout");

#define LRT_ANY_INT 2
#define LRT_ANY_STRING 8
#define LRT_ENV_AUTO_REGISTER_ACCELERATORS 24
#define LRT_ENV_MIN_LOGGER_SEVERITY 25
#define LRT_LOG_WARNING 2 /* LiteRT's own INFO lines (a dozen per model) stay out of the log */
#define LRT_ENV_COMPILER_PLUGIN_DIR 0
#define LRT_ENV_DISPATCH_DIR 1
#define LRT_ENV_COMPILER_CACHE_DIR 18
#define LRT_ENV_RUNTIME_LIBRARY_DIR 22

/* LiteRtRankedTensorType is read from the model and handed back unchanged: a buffer
 * larger than the struct (element type + layout of at most 8 dimensions and strides). */
typedef struct {
	_Alignas(16) unsigned char b[512];
} lrt_ranked_type;

static struct {
	const char* (*status_string)(lrt_status);
	lrt_status (*env_create)(int, const lrt_env_option*, void**);
	void (*env_destroy)(void*);
	lrt_status (*model_from_buffer)(void*, const void*, size_t, void**);
	void (*model_destroy)(void*);
	lrt_status (*model_signature)(void*, lrt_index, void**);
	lrt_status (*sig_inputs)(void*, lrt_index*);
	lrt_status (*sig_outputs)(void*, lrt_index*);
	lrt_status (*sig_input_name)(void*, lrt_index, const char**);
	lrt_status (*sig_output_name)(void*, lrt_index, const char**);
	lrt_status (*sig_input_tensor)(void*, lrt_index, void**);
	lrt_status (*sig_output_tensor)(void*, lrt_index, void**);
	lrt_status (*ranked_type)(void*, lrt_ranked_type*);
	lrt_status (*options_create)(void**);
	void (*options_destroy)(void*);
	lrt_status (*options_accelerators)(void*, int);
	lrt_status (*opaque_create)(const char*, void*, void (*)(void*), void**);
	void (*opaque_destroy)(void*);
	lrt_status (*options_add_opaque)(void*, void*);
	lrt_status (*compile)(void*, void*, void*, void**);
	void (*compiled_destroy)(void*);
	lrt_status (*non_cpu_full)(void*, _Bool*);
	lrt_status (*buffer_from_host)(const lrt_ranked_type*, void*, size_t, void (*)(void*), void**);
	void (*buffer_destroy)(void*);
	lrt_status (*buffer_host)(void*, void**);
	lrt_status (*run)(void*, lrt_index, size_t, void**, size_t, void**);
	lrt_status (*set_cancel)(void*, void*, _Bool (*)(void*)); /* optional */
} L;

static pthread_mutex_t eh_lrt_mu = PTHREAD_MUTEX_INITIALIZER;
static char eh_lrt_path[4096];
static char eh_lrt_err[1024];
static int eh_lrt_state; /* 0 not tried, 1 open, -1 failed */

#define RESOLVE(field, name)                                                                         \
	do {                                                                                         \
		*(void**)(&L.field) = dlsym(h, name);                                                \
		if (L.field == NULL) {                                                               \
			snprintf(eh_lrt_err, sizeof eh_lrt_err, "%s does not export %s (not a LiteRT 2.x runtime?)", path, name); \
			return -1;                                                                   \
		}                                                                                    \
	} while (0)

static int eh_lrt_resolve(void* h, const char* path) {
	*(void**)(&L.status_string) = dlsym(h, "LiteRtGetStatusString"); /* not exported by 2.3.0 */
	RESOLVE(env_create, "LiteRtCreateEnvironment");
	RESOLVE(env_destroy, "LiteRtDestroyEnvironment");
	RESOLVE(model_from_buffer, "LiteRtCreateModelFromBuffer");
	RESOLVE(model_destroy, "LiteRtDestroyModel");
	RESOLVE(model_signature, "LiteRtGetModelSignature");
	RESOLVE(sig_inputs, "LiteRtGetNumSignatureInputs");
	RESOLVE(sig_outputs, "LiteRtGetNumSignatureOutputs");
	RESOLVE(sig_input_name, "LiteRtGetSignatureInputName");
	RESOLVE(sig_output_name, "LiteRtGetSignatureOutputName");
	RESOLVE(sig_input_tensor, "LiteRtGetSignatureInputTensorByIndex");
	RESOLVE(sig_output_tensor, "LiteRtGetSignatureOutputTensorByIndex");
	RESOLVE(ranked_type, "LiteRtGetRankedTensorType");
	RESOLVE(options_create, "LiteRtCreateOptions");
	RESOLVE(options_destroy, "LiteRtDestroyOptions");
	RESOLVE(options_accelerators, "LiteRtSetOptionsHardwareAccelerators");
	RESOLVE(opaque_create, "LiteRtCreateOpaqueOptions");
	RESOLVE(opaque_destroy, "LiteRtDestroyOpaqueOptions");
	RESOLVE(options_add_opaque, "LiteRtAddOpaqueOptions");
	RESOLVE(compile, "LiteRtCreateCompiledModel");
	RESOLVE(compiled_destroy, "LiteRtDestroyCompiledModel");
	RESOLVE(non_cpu_full, "LiteRtCompiledModelIsNonCpuFullyAccelerated");
	RESOLVE(buffer_from_host, "LiteRtCreateTensorBufferFromHostMemory");
	RESOLVE(buffer_destroy, "LiteRtDestroyTensorBuffer");
	RESOLVE(buffer_host, "LiteRtGetTensorBufferHostMemory");
	RESOLVE(run, "LiteRtRunCompiledModel");
	*(void**)(&L.set_cancel) = dlsym(h, "LiteRtSetCompiledModelCancellationFunction");
	return 0;
}

int eh_lrt_open(const char* path, char* err, size_t errlen) {
	pthread_mutex_lock(&eh_lrt_mu);
	if (eh_lrt_state == 0) {
		snprintf(eh_lrt_path, sizeof eh_lrt_path, "%s", path);
		void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (h == NULL) {
			snprintf(eh_lrt_err, sizeof eh_lrt_err, "dlopen: %s", dlerror());
			eh_lrt_state = -1;
		} else if (eh_lrt_resolve(h, path) != 0) {
			memset(&L, 0, sizeof L);
			dlclose(h);
			eh_lrt_state = -1;
		} else {
			eh_lrt_state = 1;
		}
	} else if (strcmp(eh_lrt_path, path) != 0) {
		snprintf(err, errlen, "LiteRT is already loaded from %s in this process; %s cannot be loaded beside it", eh_lrt_path, path);
		pthread_mutex_unlock(&eh_lrt_mu);
		return -1;
	}
	int st = eh_lrt_state;
	if (st < 0) snprintf(err, errlen, "%s", eh_lrt_err);
	pthread_mutex_unlock(&eh_lrt_mu);
	return st == 1 ? 0 : -1;
}

/* The documented LiteRtStatus values, for libraries that do not export LiteRtGetStatusString. */
static const char* eh_lrt_status_name(int status) {
	switch (status) {
	case 0: return "ok";
	case 1: return "invalid argument";
	case 2: return "memory allocation failure";
	case 3: return "runtime failure";
	case 4: return "missing input tensor";
	case 5: return "unsupported";
	case 6: return "not found";
	case 7: return "timeout expired";
	case 8: return "wrong version";
	case 9: return "unknown error";
	case 10: return "already exists";
	case 100: return "cancelled";
	case 500: return "file I/O error";
	case 501: return "invalid flatbuffer";
	case 502: return "dynamic loading failed";
	case 503: return "serialization error";
	case 504: return "compilation failed";
	default: return NULL;
	}
}

const char* eh_lrt_status(int status) {
	static __thread char buf[64];
	const char* s = L.status_string != NULL ? L.status_string(status) : eh_lrt_status_name(status);
	if (s != NULL) return s;
	snprintf(buf, sizeof buf, "LiteRT status %d", status);
	return buf;
}

int eh_lrt_env_create(const char* runtime_dir, const char* dispatch_dir, const char* compiler_dir,
                      const char* cache_dir, int accelerators, void** env) {
	lrt_env_option o[6];
	int n = 0;
	const char* vals[4] = {runtime_dir, dispatch_dir, compiler_dir, cache_dir};
	const int tags[4] = {LRT_ENV_RUNTIME_LIBRARY_DIR, LRT_ENV_DISPATCH_DIR, LRT_ENV_COMPILER_PLUGIN_DIR, LRT_ENV_COMPILER_CACHE_DIR};
	for (int i = 0; i < 4; i++) {
		if (vals[i] == NULL || vals[i][0] == 0) continue;
		memset(&o[n], 0, sizeof o[n]);
		o[n].tag = tags[i];
		o[n].value.type = LRT_ANY_STRING;
		o[n].value.v.s = vals[i];
		n++;
	}
	memset(&o[n], 0, sizeof o[n]);
	o[n].tag = LRT_ENV_MIN_LOGGER_SEVERITY;
	o[n].value.type = LRT_ANY_INT;
	o[n].value.v.i = LRT_LOG_WARNING;
	n++;
	memset(&o[n], 0, sizeof o[n]);
	o[n].tag = LRT_ENV_AUTO_REGISTER_ACCELERATORS; /* only those the model asks for */
	o[n].value.type = LRT_ANY_INT;
	o[n].value.v.i = accelerators;
	n++;
	return L.env_create(n, o, env);
}

void eh_lrt_env_destroy(void* env) {
	if (env != NULL) L.env_destroy(env);
}

int eh_lrt_model_create(void* env, const void* buf, size_t size, void** model) {
	return L.model_from_buffer(env, buf, size, model);
}

void eh_lrt_model_destroy(void* model) {
	if (model != NULL) L.model_destroy(model);
}

int eh_lrt_model_io(void* model, size_t* inputs, size_t* outputs) {
	void* sig = NULL;
	lrt_status st = L.model_signature(model, 0, &sig);
	if (st != 0) return st;
	if ((st = L.sig_inputs(sig, inputs)) != 0) return st;
	return L.sig_outputs(sig, outputs);
}

int eh_lrt_model_io_name(void* model, int output, size_t idx, const char** name) {
	void* sig = NULL;
	lrt_status st = L.model_signature(model, 0, &sig);
	if (st != 0) return st;
	return output ? L.sig_output_name(sig, idx, name) : L.sig_input_name(sig, idx, name);
}

int eh_lrt_compile(void* env, void* model, int accelerators, const char** ids, const char** tomls, size_t n,
                   void** compiled) {
	void* opts = NULL;
	lrt_status st = L.options_create(&opts);
	if (st != 0) return st;
	if ((st = L.options_accelerators(opts, accelerators)) != 0) goto out;
	for (size_t i = 0; i < n; i++) {
		char* payload = strdup(tomls[i]);
		void* opaque = NULL;
		if (payload == NULL) {
			st = 2; /* memory allocation failure */
			goto out;
		}
		if ((st = L.opaque_create(ids[i], payload, free, &opaque)) != 0) {
			free(payload);
			goto out;
		}
		if ((st = L.options_add_opaque(opts, opaque)) != 0) {
			L.opaque_destroy(opaque);
			goto out;
		}
	}
	st = L.compile(env, model, opts, compiled);
out:
	L.options_destroy(opts);
	return st;
}

void eh_lrt_compiled_destroy(void* compiled) {
	if (compiled != NULL) L.compiled_destroy(compiled);
}

int eh_lrt_non_cpu_fully_accelerated(void* compiled) {
	_Bool yes = 0;
	if (L.non_cpu_full(compiled, &yes) != 0) return -1;
	return yes ? 1 : 0;
}

int eh_lrt_host_buffer(void* model, int output, size_t idx, void* p, size_t size, void** buffer) {
	void* sig = NULL;
	void* tensor = NULL;
	lrt_ranked_type t;
	memset(&t, 0, sizeof t);
	lrt_status st = L.model_signature(model, 0, &sig);
	if (st != 0) return st;
	st = output ? L.sig_output_tensor(sig, idx, &tensor) : L.sig_input_tensor(sig, idx, &tensor);
	if (st != 0) return st;
	if ((st = L.ranked_type(tensor, &t)) != 0) return st;
	return L.buffer_from_host(&t, p, size, NULL, buffer);
}

void eh_lrt_buffer_destroy(void* buffer) {
	if (buffer != NULL) L.buffer_destroy(buffer);
}

int eh_lrt_buffer_host(void* buffer, void** p) { return L.buffer_host(buffer, p); }

int eh_lrt_run(void* compiled, void** inputs, size_t nin, void** outputs, size_t nout) {
	return L.run(compiled, 0, nin, inputs, nout, outputs);
}

static _Bool eh_lrt_cancelled(void* data) {
	(void)data;
	return 1;
}

int eh_lrt_cancel_runs(void* compiled) {
	if (L.set_cancel == NULL) return -1;
	return L.set_cancel(compiled, NULL, eh_lrt_cancelled);
}

int eh_lrt_vulkan_loader(char* err, size_t errlen) {
	void* h = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(err, errlen, "%s", dlerror());
		return -1;
	}
	dlclose(h);
	return 0;
}

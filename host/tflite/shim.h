/* shim.h: edgehost's thin C layer beside go-tflite (see RATIONALE.md, "cgo layer").
 * Everything that go-tflite v1.0.1 lacks: capability probing, XNNPACK with explicit options,
 * external (vendor) delegates through the tflite_plugin_* interface, custom tensor
 * allocation, and an error reporter that formats its va_list correctly. Functions that
 * only newer TFLite libraries export are resolved with dlsym, so one binary runs on both. */
#ifndef EDGEHOST_SHIM_H_
#define EDGEHOST_SHIM_H_

#include <stddef.h>
#include <stdint.h>
#include <tensorflow/lite/c/c_api.h>
#include <tensorflow/lite/c/common.h>

#define EH_ERRBUF 2048

/* eh_errbuf collects the messages TFLite reports for one interpreter or model. */
typedef struct eh_errbuf {
	char msg[EH_ERRBUF];
	size_t len;
} eh_errbuf;

void eh_reporter(void* user_data, const char* format, va_list args);
void eh_set_reporter(TfLiteInterpreterOptions* options, eh_errbuf* buf);

/* capabilities: 1 when the loaded library exports the symbol. */
int eh_has_custom_allocation(void);
int eh_has_xnnpack(void);
int eh_has_tensor_index(void);

/* XNNPACK with num_threads; qu8 and qs8 kernels forced on when force_quantized (older
 * libraries cannot prepare some quantized graphs that way). NULL when unavailable. */
TfLiteDelegate* eh_xnnpack_create(int num_threads, int force_quantized);
void eh_xnnpack_delete(TfLiteDelegate* d);

/* eh_xnnpack_options fills buf (EH_XNN_OPTIONS_MAX bytes) with the library's default
 * XNNPACK options, called with the return convention of its release, then num_threads and
 * (when force_quantized) the QS8/QU8 flags; it reports the thread count and flags it wrote.
 * eh_xnnpack_flags reads a delegate's flags back (-1 when the library cannot tell).
 * eh_xnnpack_small_abi: 1 when the library returns its options in registers (before 2.10). */
#define EH_XNN_OPTIONS_MAX 512
int eh_xnnpack_options(int num_threads, int force_quantized, void* buf, int32_t* threads, uint32_t* flags);
int eh_xnnpack_flags(TfLiteDelegate* d, uint32_t* flags);
int eh_xnnpack_small_abi(void);

/* External delegate: dlopen path, call tflite_plugin_create_delegate with options. */
typedef struct eh_external {
	void* handle;
	TfLiteDelegate* delegate;
	void (*destroy)(TfLiteDelegate*);
} eh_external;
int eh_external_load(const char* path, char** keys, char** values, size_t n, eh_external* out, char* err, size_t errlen);
void eh_external_unload(eh_external* ext);

/* Custom allocation: returns kTfLiteOk, or -1 when the library lacks it. */
int eh_set_custom_allocation(TfLiteInterpreter* interp, int tensor_index, void* data, size_t bytes);
int eh_input_tensor_index(TfLiteInterpreter* interp, int input);
int eh_output_tensor_index(TfLiteInterpreter* interp, int output);

/* malloc: at most EH_ARENA_MAX glibc arenas unless MALLOC_ARENA_MAX is set (a constructor
 * applies it before any thread runs); eh_malloc_arenas counts the arenas after threads threads
 * have malloc'd at once (for the test). */
#define EH_ARENA_MAX 2
int eh_malloc_arenas(int threads);

#endif

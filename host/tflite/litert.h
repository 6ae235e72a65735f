/* litert.h: edgehost's second inference backend, LiteRT's CompiledModel C API
 * (libLiteRt.so from PyPI ai-edge-litert), loaded with dlopen at run time so the binary
 * builds, links and runs without it. The declarations in litert.c are edgehost's own,
 * written from the LiteRT C API documentation for the few functions used; every LiteRT
 * handle is an opaque pointer here. See RATIONALE.md, "LiteRT backend". */
#ifndef EDGEHOST_LITERT_H_
#define EDGEHOST_LITERT_H_

#include <stddef.h>

/* Hardware accelerator bits (LiteRtHwAccelerators). */
#define EH_LRT_CPU 1
#define EH_LRT_GPU 2
#define EH_LRT_NPU 4

/* eh_lrt_open dlopens path (the full path of libLiteRt.so) once per process and resolves
 * the functions below. 0 on success; otherwise err says why. Later calls return the first
 * outcome; a different path than the first is an error. */
int eh_lrt_open(const char* path, char* err, size_t errlen);
const char* eh_lrt_status(int status);

/* One environment per model, registering only the accelerators (EH_LRT_* bits) it uses;
 * directories may be NULL. LiteRT logs warnings and errors to stderr. */
int eh_lrt_env_create(const char* runtime_dir, const char* dispatch_dir, const char* compiler_dir,
                      const char* cache_dir, int accelerators, void** env);
void eh_lrt_env_destroy(void* env);

/* The model reads the caller's buffer, which must outlive it. */
int eh_lrt_model_create(void* env, const void* buf, size_t size, void** model);
void eh_lrt_model_destroy(void* model);
int eh_lrt_model_io(void* model, size_t* inputs, size_t* outputs);
/* Name of signature 0's input (output=0) or output (output=1) idx. */
int eh_lrt_model_io_name(void* model, int output, size_t idx, const char** name);

/* Compile for accelerators (EH_LRT_* bits) with opaque per-accelerator options: ids[i]
 * names the options ("xnnpack", "gpu_options", "intel_openvino"), tomls[i] is their TOML. */
int eh_lrt_compile(void* env, void* model, int accelerators, const char** ids, const char** tomls, size_t n,
                   void** compiled);
void eh_lrt_compiled_destroy(void* compiled);
/* 1 when every op runs on the chosen accelerators other than the CPU, 0 if not, -1 unknown. */
int eh_lrt_non_cpu_fully_accelerated(void* compiled);

/* A tensor buffer for signature 0's input (output=0) or output (output=1) idx over size
 * bytes of caller memory at p (64-byte aligned), which the buffer never frees. */
int eh_lrt_host_buffer(void* model, int output, size_t idx, void* p, size_t size, void** buffer);
void eh_lrt_buffer_destroy(void* buffer);
/* The host address the buffer reads and writes (for the zero-copy check). */
int eh_lrt_buffer_host(void* buffer, void** p);

int eh_lrt_run(void* compiled, void** inputs, size_t nin, void** outputs, size_t nout);

/* eh_lrt_vulkan_loader: 0 when libvulkan.so.1 (what LiteRT's GPU path dlopens) loads. */
int eh_lrt_vulkan_loader(char* err, size_t errlen);

/* eh_lrt_cancel_runs makes every later run of compiled fail as cancelled (LiteRT's own
 * cancellation check): how the tests make a real LiteRT run fail. -1 if unsupported. */
int eh_lrt_cancel_runs(void* compiled);

#endif

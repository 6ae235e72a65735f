/* hostile.c: test plugins that break the edgehost ABI on purpose, one per -DV_<NAME>.
 * Written against abi/ABI.md directly (no SDK) so they can violate it. Built by the tests:
 *   clang --target=wasm32-wasi -O1 -mexec-model=reactor -DV_<NAME> -o x.wasm hostile.c
 * V_GOOD is a well-behaved plugin of kind "both": pre fills every input tensor with the
 * first request byte, post returns {"ok":true,"first":<first byte of output 0>}. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <wasi/api.h>

#define EXPORT(name) __attribute__((export_name(name)))
__attribute__((import_module("edgehost"), import_name("log"))) void eh_log(int32_t level, const char* p, uint32_t n);
__attribute__((import_module("edgehost"), import_name("set_error"))) void eh_set_error(const char* p, uint32_t n);

static int32_t fail(int32_t status, const char* msg) {
	eh_set_error(msg, (uint32_t)strlen(msg));
	return status;
}

typedef struct { uint32_t abi, input, input_len, n, tensors, output, output_len, flags; } call_t;
typedef struct { uint32_t dtype, ndims; int32_t dims[8]; float scale; int32_t zp; uint32_t data, bytes, name, name_len; } desc_t;

EXPORT("edgehost_abi_version") int32_t abi_version(void) {
#ifdef V_ABI2
	return 2;
#else
	return 1;
#endif
}

#ifdef V_BADSIG
EXPORT("edgehost_alloc") int64_t eh_alloc(int64_t size) { return (int64_t)(uintptr_t)malloc((size_t)size); }
#else
EXPORT("edgehost_alloc") uint32_t eh_alloc(uint32_t size, uint32_t align) {
#ifdef V_MISALIGNED_ALLOC
	if (align == 64) return (uint32_t)(uintptr_t)malloc(size + 65) + 1;
#endif
#ifdef V_NULL_BIG_ALLOC
	/* V_NULL_BIG_ALLOC: a broken allocator: 0 for any block of 1 MiB or more, whatever
	 * memory is left. */
	if (size >= (1u << 20)) return 0;
#endif
	void* p = NULL;
	if (align < sizeof(void*)) align = sizeof(void*);
	if (posix_memalign(&p, align, size ? size : 1) != 0) return 0;
	return (uint32_t)(uintptr_t)p;
}
#endif

EXPORT("edgehost_free") void eh_free(uint32_t p) { free((void*)(uintptr_t)p); }

static uint32_t fuzz_out_ptr, fuzz_out_len;

/* fib without loops: exponential calls, bounded depth. */
__attribute__((noinline)) static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static int recurse(int n) {
	volatile char pad[256];
	pad[0] = (char)n;
	return recurse(n + 1) + pad[0];
}

#ifdef V_READ_FILE
/* V_READ_FILE: the request body is a command, a NUL-free string; pre always returns status 1
 * with the outcome as the error message:
 *   "<path>"        read the file: "read:<first bytes>" or "denied:<strerror>"
 *   "ls:<path>"     list the directory: "ls:<name>,<name>,..." or "denied:<strerror>"
 *   "write:<path>"  create and write the file: "wrote" or "denied:<strerror>" */
#include <dirent.h>
#include <errno.h>
static char rf_msg[1024];
static int32_t read_file_cmd(const uint8_t* in, uint32_t n) {
	char path[512];
	if (n == 0 || n >= sizeof path || memchr(in, 0, n) != NULL) return fail(1, "bad command: want a NUL-free path");
	memcpy(path, in, n);
	path[n] = 0;
	if (strncmp(path, "ls:", 3) == 0) {
		DIR* d = opendir(path + 3);
		if (d == NULL) {
			snprintf(rf_msg, sizeof rf_msg, "denied:%s", strerror(errno));
			return fail(1, rf_msg);
		}
		size_t len = (size_t)snprintf(rf_msg, sizeof rf_msg, "ls:");
		struct dirent* e;
		while ((e = readdir(d)) != NULL && len < sizeof rf_msg - 1)
			len += (size_t)snprintf(rf_msg + len, sizeof rf_msg - len, "%s,", e->d_name);
		closedir(d);
		return fail(1, rf_msg);
	}
	if (strncmp(path, "write:", 6) == 0) {
		FILE* f = fopen(path + 6, "w");
		if (f == NULL || fputs("hostile", f) < 0 || fclose(f) != 0) {
			snprintf(rf_msg, sizeof rf_msg, "denied:%s", strerror(errno));
			return fail(1, rf_msg);
		}
		return fail(1, "wrote");
	}
	FILE* f = fopen(path, "r");
	if (f == NULL) {
		snprintf(rf_msg, sizeof rf_msg, "denied:%s", strerror(errno));
		return fail(1, rf_msg);
	}
	char buf[256];
	errno = 0;
	size_t got = fread(buf, 1, sizeof buf - 1, f);
	int ferr = ferror(f), saved = errno;
	fclose(f);
	if (ferr) {
		snprintf(rf_msg, sizeof rf_msg, "denied:%s", strerror(saved));
		return fail(1, rf_msg);
	}
	buf[got] = 0;
	snprintf(rf_msg, sizeof rf_msg, "read:%s", buf);
	return fail(1, rf_msg);
}
#endif

#ifdef V_LIST_ENV
/* V_LIST_ENV: pre returns status 1 with "env:" and every environment entry, each followed
 * by ";". */
extern char** environ;
static char env_msg[2048];
static int32_t list_env(void) {
	size_t len = (size_t)snprintf(env_msg, sizeof env_msg, "env:");
	for (char** e = environ; e != NULL && *e != NULL && len < sizeof env_msg - 1; e++)
		len += (size_t)snprintf(env_msg + len, sizeof env_msg - len, "%s;", *e);
	return fail(1, env_msg);
}
#endif

#ifdef V_RANDOM
/* V_RANDOM: pre returns status 1 with "random:" and 16 bytes from getentropy in hex. */
int getentropy(void*, size_t);
static int32_t random_bytes(void) {
	uint8_t b[16];
	if (getentropy(b, sizeof b) != 0) return fail(2, "hostile: getentropy failed");
	char msg[64];
	size_t len = (size_t)snprintf(msg, sizeof msg, "random:");
	for (size_t i = 0; i < sizeof b; i++) len += (size_t)snprintf(msg + len, sizeof msg - len, "%02x", b[i]);
	return fail(1, msg);
}
#endif

EXPORT("edgehost_init") int32_t eh_init(uint32_t p, uint32_t n) {
	(void)p; (void)n;
#ifdef V_TRAP_INIT
	__builtin_trap();
#endif
#ifdef V_LOOP_INIT
	for (volatile int i = 0;; i++) {}
#endif
#ifdef V_BAD_PARAMS
	return fail(4, "hostile: params rejected on purpose");
#endif
	return 0;
}

#ifndef V_NO_PRE
EXPORT("edgehost_pre") int32_t eh_pre(uint32_t cp) {
	call_t* c = (call_t*)(uintptr_t)cp;
#ifdef V_TRAP_PRE
	if (c->input_len > 0) __builtin_trap();
#endif
#ifdef V_STDERR_TRAP
	/* What a Rust panic does: a message on stderr, the error set, then a trap. */
	for (int i = 0; i < 100; i++) fprintf(stdout, "progress %d\n", i);
	fprintf(stderr, "panicked at 'index out of bounds: the len is 3 but the index is 7'\n");
	fflush(stderr);
	fail(2, "index out of bounds");
	__builtin_trap();
#endif
#ifdef V_LOOP_PRE
	for (volatile int i = 0;; i++) {}
#endif
#ifdef V_RECURSION
	return recurse(0);
#endif
#ifdef V_FIB
	return fib(60) == 7 ? 0 : fail(2, "hostile: fib finished");
#endif
#ifdef V_MEMBOMB
	for (;;) {
		if (__builtin_wasm_memory_grow(0, 16) == (size_t)-1) return fail(2, "hostile: memory exhausted as planned");
	}
#endif
#ifdef V_MALLOC_BOMB
	static void* volatile keep[4096];
	for (int i = 0;; i = (i + 1) % 4096) {
		void* p = malloc(1 << 20);
		if (p == NULL) return fail(2, "hostile: malloc returned NULL");
		memset(p, 1, 1 << 20);
		keep[i] = p;
	}
#endif
#ifdef V_LOG_FLOOD
	for (int i = 0; i < 100000; i++) eh_log(1, "flood", 5);
#endif
#ifdef V_OOB_LOG
	eh_log(1, (const char*)(uintptr_t)0xFFFFFF00u, 4096);
#endif
#ifdef V_OOB_ERROR
	eh_set_error((const char*)(uintptr_t)0xFFFFFFF0u, 64);
	return 2;
#endif
#ifdef V_OPEN_FILE
	int fd = open("/etc/hostname", O_RDONLY);
	if (fd >= 0) return fail(2, "hostile: opened /etc/hostname");
	return fail(1, "hostile: open /etc/hostname failed as it should");
#endif
#ifdef V_SOCKET
	/* WASI preview 1 can only use sockets the host pre-opened: try the first few fds. */
	for (__wasi_fd_t fd = 0; fd < 16; fd++) {
		__wasi_fd_t conn;
		if (__wasi_sock_accept(fd, 0, &conn) == 0) return fail(2, "hostile: accepted a connection");
		__wasi_ciovec_t iov = {(const uint8_t*)"x", 1};
		__wasi_size_t sent;
		if (fd > 2 && __wasi_sock_send(fd, &iov, 1, 0, &sent) == 0) return fail(2, "hostile: sent on a socket");
	}
	return fail(1, "hostile: no socket reachable as it should be");
#endif
#ifdef V_GETENV
	if (getenv("HOME") != NULL || getenv("PATH") != NULL) return fail(2, "hostile: read the host environment");
	return fail(1, "hostile: environment is empty as it should be");
#endif
#ifdef V_SLEEP
	/* V_SLEEP: with a granted clock, sleep 8 s (nanosleep), then 8 s more (poll_oneoff). */
	struct timespec req = {8, 0};
	nanosleep(&req, NULL);
	sleep(8);
	return fail(2, "hostile: slept past the budget");
#endif
#ifdef V_CLOCK
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char msg[96];
	snprintf(msg, sizeof msg, "hostile: realtime clock says %lld", (long long)ts.tv_sec);
	return fail(1, msg);
#endif
#ifdef V_READ_FILE
	return read_file_cmd((const uint8_t*)(uintptr_t)c->input, c->input_len);
#endif
#ifdef V_LIST_ENV
	return list_env();
#endif
#ifdef V_RANDOM
	return random_bytes();
#endif
#ifdef V_FUZZ_PTRS
	/* The request is a list of 9-byte commands [op u8][ptr u32][len u32]: op 0 logs, op 1
	 * sets the error and fails, op 2 picks what post returns as its result. */
	for (uint32_t k = 0; k + 9 <= c->input_len; k += 9) {
		uint8_t* cmd = (uint8_t*)(uintptr_t)(c->input + k);
		uint32_t ptr, len;
		memcpy(&ptr, cmd + 1, 4);
		memcpy(&len, cmd + 5, 4);
		if (cmd[0] % 3 == 0) eh_log(1, (const char*)(uintptr_t)ptr, len);
		if (cmd[0] % 3 == 1) { eh_set_error((const char*)(uintptr_t)ptr, len); return 2; }
		if (cmd[0] % 3 == 2) { fuzz_out_ptr = ptr; fuzz_out_len = len; }
	}
	return 0;
#endif
#ifdef V_WRITE_PAST_TENSOR
	desc_t* d0 = (desc_t*)(uintptr_t)c->tensors;
	memset((void*)(uintptr_t)d0->data, 7, d0->bytes + 4096);
	return 0;
#endif
	if (c->input_len == 0) return fail(1, "hostile-good: empty input");
	uint8_t first = *(uint8_t*)(uintptr_t)c->input;
	desc_t* d = (desc_t*)(uintptr_t)c->tensors;
	for (uint32_t i = 0; i < c->n; i++) memset((void*)(uintptr_t)d[i].data, first, d[i].bytes);
	return 0;
}
#endif

static char result[128];

EXPORT("edgehost_post") int32_t eh_post(uint32_t cp) {
	call_t* c = (call_t*)(uintptr_t)cp;
#ifdef V_TRAP_POST
	__builtin_trap();
#endif
#ifdef V_LOOP_POST
	for (volatile int i = 0;; i++) {}
#endif
#ifdef V_OOB_RESULT
	c->output = 0xFFFFFFF0u;
	c->output_len = 100;
	return 0;
#endif
#ifdef V_FUZZ_PTRS
	c->output = fuzz_out_ptr;
	c->output_len = fuzz_out_len;
	return 0;
#endif
#ifdef V_HUGE_RESULT
	c->output = 0;
	c->output_len = 0x7FFFFFFF;
	return 0;
#endif
#ifdef V_BIG_RESULT
	/* V_BIG_RESULT: a valid 8 MiB result of 'x' (for slow-reader tests). */
	static char* big;
	if (big == NULL && (big = malloc(8 << 20)) == NULL) return fail(2, "hostile: no memory for the result");
	memset(big, 'x', 8 << 20);
	c->output = (uint32_t)(uintptr_t)big;
	c->output_len = 8 << 20;
	return 0;
#endif
	desc_t* d = (desc_t*)(uintptr_t)c->tensors;
	int first = c->n > 0 ? *(uint8_t*)(uintptr_t)d[0].data : -1;
	int n = snprintf(result, sizeof result, "{\"ok\":true,\"first\":%d}", first);
	c->output = (uint32_t)(uintptr_t)result;
	c->output_len = (uint32_t)n;
	return 0;
}

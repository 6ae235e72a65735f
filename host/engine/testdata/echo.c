/* echo.c: a tiny post plugin for the reload tests, built with -DVERSION=N. Its result
 * names its version: {"ok":true,"version":N,"first":<first byte of output 0>,"params":<bytes of
 * its init params>}.
 * -DTRAP_POST traps on every post call; -DSPIN_POST spins until its time budget traps it; -DFAIL_POST returns status 2 (internal) on every call; -DNO_OK leaves "ok" out (fails a golden check). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

typedef struct { uint32_t abi, input, input_len, n, tensors, output, output_len, flags; } call_t;
typedef struct { uint32_t dtype, ndims; int32_t dims[8]; float scale; int32_t zp; uint32_t data, bytes, name, name_len; } desc_t;

EXPORT("edgehost_abi_version") int32_t abi_version(void) { return 1; }
EXPORT("edgehost_alloc") uint32_t eh_alloc(uint32_t size, uint32_t align) {
	void* p = NULL;
	if (align < sizeof(void*)) align = sizeof(void*);
	return posix_memalign(&p, align, size ? size : 1) == 0 ? (uint32_t)(uintptr_t)p : 0;
}
EXPORT("edgehost_free") void eh_free(uint32_t p) { free((void*)(uintptr_t)p); }
static uint32_t params_len;
EXPORT("edgehost_init") int32_t eh_init(uint32_t p, uint32_t n) { (void)p; params_len = n; return 0; }

static char result[128];

EXPORT("edgehost_post") int32_t eh_post(uint32_t cp) {
	call_t* c = (call_t*)(uintptr_t)cp;
#ifdef TRAP_POST
	__builtin_trap();
#endif
#ifdef SPIN_POST
	for (volatile uint32_t i = 0;; i++) {
	}
#endif
#ifdef FAIL_POST
	(void)c;
	return 2;
#endif
	desc_t* d = (desc_t*)(uintptr_t)c->tensors;
	int first = c->n > 0 ? *(uint8_t*)(uintptr_t)d[0].data : -1;
#ifdef NO_OK
	int n = snprintf(result, sizeof result, "{\"version\":%d,\"first\":%d,\"params\":%u}", VERSION, first, params_len);
#else
	int n = snprintf(result, sizeof result, "{\"ok\":true,\"version\":%d,\"first\":%d,\"params\":%u}", VERSION, first, params_len);
#endif
	c->output = (uint32_t)(uintptr_t)result;
	c->output_len = (uint32_t)n;
	return 0;
}

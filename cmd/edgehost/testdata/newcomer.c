/* newcomer.c: the plugin a newcomer writes from abi/ABI.md, with the faults the load checks
 * must catch, one per -D flag (see plugintools_test.go):
 *   -DCOMMAND  built as a WASI command (has main, linked without -mexec-model=reactor)
 *   -DBADSIG   edgehost_post takes two parameters
 * Without either it is a valid post plugin whose result is "ok". */
#include <stdint.h>
#include <stdlib.h>

#define EXPORT(name) __attribute__((export_name(name)))

EXPORT("edgehost_abi_version") int32_t abi_version(void) { return 1; }
EXPORT("edgehost_alloc") uint32_t eh_alloc(uint32_t size, uint32_t align) {
	void *p = NULL;
	if (align < sizeof(void *)) align = sizeof(void *);
	return posix_memalign(&p, align, size ? size : 1) ? 0 : (uint32_t)(uintptr_t)p;
}
EXPORT("edgehost_free") void eh_free(uint32_t p) { free((void *)(uintptr_t)p); }
EXPORT("edgehost_init") int32_t eh_init(uint32_t p, uint32_t n) { (void)p; (void)n; return 0; }

static const char ok[] = "ok";
#ifdef BADSIG
EXPORT("edgehost_post") int32_t eh_post(uint32_t cp, uint32_t extra) {
	(void)extra;
#else
EXPORT("edgehost_post") int32_t eh_post(uint32_t cp) {
#endif
	uint32_t *c = (uint32_t *)(uintptr_t)cp;
	c[5] = (uint32_t)(uintptr_t)ok;
	c[6] = 2;
	return 0;
}

#ifdef COMMAND
int main(void) { return 0; }
#endif

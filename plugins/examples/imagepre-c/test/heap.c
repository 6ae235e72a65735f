/*
 * heap.c - native test of the C SDK's malloc, sdk/c/heap.c (not part of the plugin).
 *
 * sdk/c/heap.c is compiled natively, where its functions are named eh_heap_malloc etc. and
 * its pages come from eh_heap_test_grow below: 64 KiB pages of a static arena up to a budget,
 * as memory.grow gives them, with "foreign" pages now and then (another allocator growing
 * memory in between, which starts a new segment).
 *
 * 1. Random malloc / calloc / realloc / aligned_alloc / free, 1 byte to 6 MiB, against a
 *    32 MiB budget: every block keeps its bytes (a per-block pattern checked on free and
 *    realloc), is aligned as asked, never overlaps another; the boundary tags stay consistent
 *    (eh_heap_check) throughout.
 * 2. Once everything is freed, each segment is one free block again.
 * 3. The property issue 24 needs: after allocations that ran out of the budget and were
 *    freed, a block as large as the budget allows on a fresh heap is still allocated.
 * Exit 0 when all hold.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *eh_heap_malloc(size_t n);
void eh_heap_free(void *p);
void *eh_heap_calloc(size_t k, size_t n);
void *eh_heap_realloc(void *p, size_t n);
void *eh_heap_aligned_alloc(size_t align, size_t n);
int eh_heap_posix_memalign(void **out, size_t align, size_t n);
int eh_heap_eh_heap_check(size_t st[5]);

#define PAGE 65536u
#define ARENA (48u << 20)

static uint8_t *arena;
static size_t brk_pages, budget_pages;

uintptr_t eh_heap_test_grow(size_t pages);
uintptr_t eh_heap_test_grow(size_t pages) {
    if (pages > budget_pages - brk_pages) return 0;
    uintptr_t a = (uintptr_t)arena + brk_pages * PAGE;
    brk_pages += pages;
    return a;
}

/* Another allocator takes pages: the heap's next pages will not follow its last segment. */
static void foreign_grow(size_t pages) {
    if (pages <= budget_pages - brk_pages) brk_pages += pages;
}

static uint64_t rng = 12345;
static uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

typedef struct {
    uint8_t *p;
    size_t n;
    uint8_t tag;
} slot;

static int fails;
#define CHECK(c, ...) do { if (!(c)) { printf("FAIL: " __VA_ARGS__); printf("\n"); fails++; return; } } while (0)

/* The pattern at every byte of a small block, at a sample of a big one's (denser at the
 * start), and at its last byte unless only a prefix is checked. */
static int intact_prefix(const slot *s, size_t n) {
    for (size_t i = 0; i < n; i += 1 + i / 64)
        if (s->p[i] != (uint8_t)(s->tag + i)) return 0;
    return n < s->n || n == 0 || s->p[n - 1] == (uint8_t)(s->tag + n - 1);
}

static int intact(const slot *s) { return intact_prefix(s, s->n); }

static void fill(slot *s) {
    for (size_t i = 0; i < s->n; i += 1 + i / 64) s->p[i] = (uint8_t)(s->tag + i);
    if (s->n) s->p[s->n - 1] = (uint8_t)(s->tag + s->n - 1);
}

static size_t rand_size(void) {
    switch (rnd() % 4) {
    case 0: return rnd() % 64;
    case 1: return rnd() % 4096;
    case 2: return rnd() % (256 << 10);
    default: return rnd() % (6 << 20);
    }
}

static void check_heap(const char *when) {
    size_t st[5];
    int rc = eh_heap_eh_heap_check(st);
    if (rc != 0) {
        printf("FAIL: heap inconsistent (check %d) %s\n", rc, when);
        fails++;
        exit(1);
    }
}

static void stress(int ops, int foreign) {
    enum { N = 96 };
    slot s[N] = {{0}};
    size_t ooms = 0;
    for (int op = 0; op < ops; op++) {
        slot *x = &s[rnd() % N];
        if (x->p) {
            if (!intact(x)) CHECK(0, "block of %zu bytes changed under its owner (op %d)", x->n, op);
            if (rnd() % 3 == 0) { /* realloc keeps the common prefix */
                size_t n = rand_size();
                uint8_t *q = eh_heap_realloc(x->p, n ? n : 1);
                if (!q) { ooms++; continue; }
                size_t keep = x->n < n ? x->n : n;
                x->p = q;
                if (!intact_prefix(x, keep)) CHECK(0, "realloc from %zu to %zu lost bytes", x->n, n);
                x->n = n ? n : 1;
                x->tag = (uint8_t)rnd();
                fill(x);
            } else {
                eh_heap_free(x->p);
                x->p = NULL;
            }
        } else {
            size_t n = rand_size(), align = 16;
            uint8_t *p;
            switch (rnd() % 4) {
            case 0: p = eh_heap_calloc(1, n);
                    for (size_t i = 0; p && i < n; i += 1 + i / 64) if (p[i]) CHECK(0, "calloc not zero");
                    break;
            case 1: align = (size_t)1 << (rnd() % 13); /* 1 .. 4096 */
                    p = eh_heap_aligned_alloc(align, n); break;
            case 2: { void *q = NULL; align = (size_t)64 << (rnd() % 3);
                    p = eh_heap_posix_memalign(&q, align, n) == 0 ? q : NULL; break; }
            default: p = eh_heap_malloc(n);
            }
            if (!p) { ooms++; continue; }
            if ((uintptr_t)p % (align < 16 ? 16 : align)) CHECK(0, "block %p not aligned to %zu", (void *)p, align);
            if (p < arena || p + n > arena + ARENA) CHECK(0, "block outside the arena");
            *x = (slot){p, n, (uint8_t)rnd()};
            fill(x);
        }
        if (foreign && rnd() % 100 == 0) foreign_grow(1 + rnd() % 3);
        if (op % 257 == 0) check_heap("during the random operations");
    }
    for (int i = 0; i < N; i++) {
        if (s[i].p && !intact(&s[i])) CHECK(0, "block changed before its final free");
        eh_heap_free(s[i].p);
    }
    check_heap("after freeing everything");
    size_t st[5];
    eh_heap_eh_heap_check(st);
    if (st[2] != 0 || st[0] != st[4]) {
        printf("FAIL: after freeing everything: %zu blocks allocated, %zu free blocks in %zu segments\n", st[2], st[0], st[4]);
        fails++;
    }
    printf("%d operations, %zu refused for the budget\n", ops, ooms);
}

int main(void) {
    arena = aligned_alloc(PAGE, ARENA);
    if (!arena) return 1;
    budget_pages = (32u << 20) / PAGE;

    /* 3 first, on a fresh heap: the largest block the budget allows. */
    size_t lo = 0, hi = 32u << 20;
    while (hi - lo > 4096) { /* a block is its own memory: a fresh heap for each try is not needed */
        size_t mid = (lo + hi) / 2;
        void *p = eh_heap_malloc(mid);
        if (p) lo = mid, eh_heap_free(p);
        else hi = mid;
    }
    size_t largest = lo;
    /* Run out of the budget with blocks of assorted sizes, as a too-large image does, free them. */
    void *keep[64];
    int k = 0;
    while (k < 64 && (keep[k] = eh_heap_malloc((size_t)(1 + rnd() % 9) << 20)) != NULL) k++;
    if (k == 64) { printf("FAIL: the budget was never reached\n"); return 1; }
    while (k > 0) eh_heap_free(keep[--k]);
    void *p = eh_heap_malloc(largest);
    if (!p) { printf("FAIL: after an out-of-memory, %zu bytes (the fresh heap's largest block) are refused\n", largest); return 1; }
    eh_heap_free(p);
    check_heap("after the budget test");
    printf("largest block in a 32 MiB budget: %zu bytes, fresh and after running out\n", largest);

    /* 1 and 2: random operations, then more with foreign pages taken while the heap grows
     * into a larger budget (new segments). */
    stress(30000, 0);
    budget_pages = ARENA / PAGE;
    stress(30000, 1);
    size_t st[5];
    eh_heap_eh_heap_check(st);
    printf("after all: %zu free blocks (%zu bytes) in %zu segments, %zu allocated\n", st[0], st[1], st[4], st[2]);
    free(arena);
    if (fails) return 1;
    printf("ok\n");
    return 0;
}

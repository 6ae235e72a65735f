/*
 * heap.c - the C SDK's malloc: one coalescing heap in the plugin's linear memory.
 *
 * Link it into every plugin (the build lines in README.md do). It replaces the libc malloc,
 * free, calloc, realloc, posix_memalign, aligned_alloc and the rest of that family, because
 * the one in Zig's wasm32 libc (a power-of-two size-class allocator) rounds each block of
 * 64 KiB or more up to a power of two of 64 KiB pages and keeps freed blocks on per-size
 * lists that are never merged or split. A plugin instance serves many requests of different
 * sizes: with that allocator a request that freed everything still left its memory cut into
 * blocks of its own sizes, and the next requests, of other sizes, failed with "out of memory"
 * well inside the budget (issue 24: after one PNG too large for the budget, the next six on
 * that instance failed, one of which a fresh instance decodes). wasi-libc's dlmalloc (a
 * system clang's libc) has, by its source, a milder form: after one failed sbrk it stops
 * extending its top chunk in place (not measured here).
 *
 * Here every block carries boundary tags, a freed block is merged with free neighbours at
 * once, the free list is searched best fit, and memory.grow extends the last free block when
 * the new pages follow it. So once a request has freed what it allocated, the heap is again
 * the blocks that outlive requests plus one free block per stretch of memory: what the next
 * request can get does not depend on what the earlier ones did. A failed memory.grow changes
 * nothing. Single-threaded (as every edgehost instance is).
 *
 * Natively (the tests) the functions are named eh_heap_malloc etc. and the pages come from
 * eh_heap_test_grow, which the test provides.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>

#define PAGE 65536u
#define ALIGN 16u                       /* of every block and payload (max_align_t) */
#define HDR 16u                         /* block header: size|flags, prev_size, padding */
#define MIN_BLOCK 32u                   /* header and the two free-list links, rounded */
#define USED 1u                         /* flag: this block is allocated (or a sentinel) */
#define PREV_USED 2u                    /* flag: the block before is allocated (or absent) */
#define FLAGS 15u

#if defined(__wasm__)
#define API(name) name
/* memory.grow by n pages: the address of the first new byte, or 0 when refused. */
static uintptr_t grow_pages(size_t n) {
    size_t old = __builtin_wasm_memory_grow(0, n);
    return old == SIZE_MAX ? 0 : (uintptr_t)old * PAGE;
}
#else
#define API(name) eh_heap_##name
uintptr_t eh_heap_test_grow(size_t pages);
static uintptr_t grow_pages(size_t n) { return eh_heap_test_grow(n); }
#endif

/* A block: header, then the payload (allocated) or the free-list links (free). The size
 * includes the header; blocks lie end to end in a segment, which ends with a sentinel
 * header of size 0 marked USED. prev_size is valid only while the block before is free. */
typedef struct block {
    size_t head; /* size | flags */
    size_t prev_size;
#if SIZE_MAX == UINT32_MAX
    size_t pad[2];
#endif
    struct block *next, *prev; /* free blocks only: the free list */
} block;

_Static_assert(offsetof(block, next) == HDR, "the links start where a payload would");
_Static_assert(sizeof(block) <= MIN_BLOCK, "a free block holds its links");

static block *free_list;   /* free blocks, unordered */
static uintptr_t heap_end; /* end of the last segment (after its sentinel), 0 before the first */
/* Where each segment starts, for eh_heap_check (segments are rare: memory grown by someone
 * else in between); past the array's end they are still used, just not checked. */
static uintptr_t seg_start[64];
static unsigned nseg;

static inline size_t size_of(const block *b) { return b->head & ~(size_t)FLAGS; }
static inline block *after(const block *b) { return (block *)((char *)b + size_of(b)); }
static inline void *payload(block *b) { return (char *)b + HDR; }
static inline block *block_of(void *p) { return (block *)((char *)p - HDR); }

static void unlink_free(block *b) {
    if (b->prev) b->prev->next = b->next;
    else free_list = b->next;
    if (b->next) b->next->prev = b->prev;
}

static void link_free(block *b) {
    b->prev = NULL;
    b->next = free_list;
    if (free_list) free_list->prev = b;
    free_list = b;
}

/* Make b (not in the list) a free block of size s, merged with free neighbours, and list it. */
static void release(block *b, size_t s) {
    size_t flags = b->head & PREV_USED;
    block *n = (block *)((char *)b + s);
    if (!(n->head & USED)) { /* merge the next block */
        unlink_free(n);
        s += size_of(n);
    }
    if (!flags) { /* merge the previous block */
        block *p = (block *)((char *)b - b->prev_size);
        unlink_free(p);
        s += size_of(p);
        b = p;
        flags = b->head & PREV_USED;
    }
    b->head = s | flags;
    n = (block *)((char *)b + s);
    n->prev_size = s;
    n->head &= ~(size_t)PREV_USED;
    link_free(b);
}

/* Take need bytes from the start of free block b (unlisted by the caller), freeing the rest. */
static void *take(block *b, size_t need) {
    size_t s = size_of(b);
    if (s - need >= MIN_BLOCK) {
        b->head = need | (b->head & PREV_USED) | USED;
        block *r = (block *)((char *)b + need);
        r->head = PREV_USED; /* release sets its size */
        release(r, s - need);
    } else {
        b->head |= USED;
        after(b)->head |= PREV_USED;
    }
    return payload(b);
}

/* Add at least need bytes of free block to the heap; 0 when memory.grow refuses. */
static int grow(size_t need) {
    /* When the new pages follow the last segment, its sentinel becomes the new block's header
     * and a free block before it is merged: only the difference is needed. */
    size_t tail = 0;
    if (heap_end) {
        block *sent = (block *)(heap_end - HDR);
        if (!(sent->head & PREV_USED)) tail = sent->prev_size;
    }
    size_t want = (need > tail ? need - tail : 0) + 2 * HDR;
    if (want > SIZE_MAX - PAGE) return 0;
    size_t pages = (want + PAGE - 1) / PAGE;
    uintptr_t a = grow_pages(pages);
    if (a == 0) return 0;
    size_t bytes = pages * PAGE;
    block *b;
    size_t s;
    if (heap_end && a == heap_end) {
        b = (block *)(heap_end - HDR); /* the old sentinel */
        s = bytes;
    } else { /* a new segment (somebody else grew memory in between) */
        b = (block *)a;
        b->head = PREV_USED;
        s = bytes - HDR;
        if (nseg < sizeof seg_start / sizeof seg_start[0]) seg_start[nseg++] = a;
    }
    block *sent = (block *)((char *)b + s);
    sent->head = USED; /* size 0; its PREV_USED is cleared by release */
    heap_end = (uintptr_t)sent + HDR;
    b->head &= PREV_USED;
    release(b, s);
    return 1;
}

/* Bytes of block for a payload of n, or 0 when n is too large. */
static size_t block_size(size_t n) {
    if (n > SIZE_MAX / 2) return 0;
    size_t s = (n + HDR + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    return s < MIN_BLOCK ? MIN_BLOCK : s;
}

/* The smallest free block of at least need bytes, unlisted; NULL if none. */
static block *best_fit(size_t need) {
    block *best = NULL;
    for (block *b = free_list; b; b = b->next) {
        size_t s = size_of(b);
        if (s >= need && (!best || s < size_of(best))) {
            best = b;
            if (s == need) break;
        }
    }
    if (best) unlink_free(best);
    return best;
}

void *API(malloc)(size_t n) {
    size_t need = block_size(n);
    if (need == 0) {
        errno = ENOMEM;
        return NULL;
    }
    block *b = best_fit(need);
    /* A second grow when the first pages did not follow the last segment (a new segment
     * cannot merge the free block at the end of the old one). */
    for (int i = 0; !b && i < 2; i++)
        if (grow(need)) b = best_fit(need);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    return take(b, need);
}

void API(free)(void *p) {
    if (!p) return;
    block *b = block_of(p);
    size_t s = size_of(b);
    b->head &= PREV_USED;
    release(b, s);
}

/* Shrink allocated block b to need bytes, freeing the tail when it is big enough. */
static void trim(block *b, size_t need) {
    size_t s = size_of(b);
    if (s - need < MIN_BLOCK) return;
    b->head = need | (b->head & (PREV_USED | USED));
    block *r = (block *)((char *)b + need);
    r->head = PREV_USED;
    release(r, s - need);
}

void *API(aligned_alloc)(size_t align, size_t n) {
    if (align <= ALIGN) return API(malloc)(n);
    if (align & (align - 1) || align > PAGE) {
        errno = EINVAL;
        return NULL;
    }
    size_t need = block_size(n);
    if (need == 0 || need > SIZE_MAX / 2 - align - MIN_BLOCK) {
        errno = ENOMEM;
        return NULL;
    }
    /* Room for the worst offset, plus a whole free block in front of it. */
    char *p = API(malloc)(need - HDR + align + MIN_BLOCK);
    if (!p) return NULL;
    uintptr_t q = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    if (q != (uintptr_t)p) {
        while (q - (uintptr_t)p < MIN_BLOCK) q += align;
        block *b = block_of(p), *a = block_of((void *)q);
        size_t gap = q - (uintptr_t)p, s = size_of(b);
        a->head = (s - gap) | USED; /* the leading gap is a free block before it */
        b->head &= PREV_USED;
        release(b, gap);
        p = (char *)q;
    }
    trim(block_of(p), need);
    return p;
}

int API(posix_memalign)(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || align & (align - 1)) return EINVAL;
    void *p = API(aligned_alloc)(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *API(memalign)(size_t align, size_t n) { return API(aligned_alloc)(align, n); }
void *API(valloc)(size_t n) { return API(aligned_alloc)(PAGE, n); }

void *API(calloc)(size_t k, size_t n) {
    if (n && k > SIZE_MAX / n) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = API(malloc)(k * n);
    if (p) memset(p, 0, k * n);
    return p;
}

size_t API(malloc_usable_size)(void *p) { return p ? size_of(block_of(p)) - HDR : 0; }

void *API(realloc)(void *p, size_t n) {
    if (!p) return API(malloc)(n);
    if (n == 0) {
        API(free)(p);
        return NULL;
    }
    size_t need = block_size(n);
    if (need == 0) {
        errno = ENOMEM;
        return NULL;
    }
    block *b = block_of(p);
    size_t s = size_of(b);
    if (s < need) {
        block *nx = after(b); /* grow in place into a free next block */
        if (!(nx->head & USED) && s + size_of(nx) >= need) {
            unlink_free(nx);
            s += size_of(nx);
            b->head = s | (b->head & (PREV_USED | USED));
            after(b)->head |= PREV_USED;
        } else {
            void *q = API(malloc)(n);
            if (!q) return NULL;
            memcpy(q, p, s - HDR);
            API(free)(p);
            return q;
        }
    }
    trim(b, need);
    return p;
}

void *API(reallocarray)(void *p, size_t k, size_t n) {
    if (n && k > SIZE_MAX / n) {
        errno = ENOMEM;
        return NULL;
    }
    return API(realloc)(p, k * n);
}

/* For tests: walks every block of every segment and checks the tags (sizes, flags, the
 * free neighbours merged, prev_size of the block after each free one, every free block
 * listed once). st: free blocks, free bytes, allocated blocks, allocated bytes (headers
 * included), segments. 0 when consistent, else the number of the check that failed. */
int API(eh_heap_check)(size_t st[5]);
int API(eh_heap_check)(size_t st[5]) {
    st[0] = st[1] = st[2] = st[3] = 0;
    st[4] = nseg;
    size_t listed = 0;
    for (block *b = free_list; b; b = b->next) {
        if (b->head & USED) return 1;
        if (b->next && b->next->prev != b) return 2;
        listed++;
    }
    for (unsigned k = 0; k < nseg; k++) {
        block *b = (block *)seg_start[k];
        int prev_used = 1;
        for (;;) {
            size_t s = size_of(b);
            if (!!(b->head & PREV_USED) != prev_used) return 3;
            if (s == 0) break; /* the sentinel */
            if (s % ALIGN || s < MIN_BLOCK) return 4;
            if (b->head & USED) {
                st[2]++, st[3] += s;
                prev_used = 1;
            } else {
                if (!prev_used) return 5; /* two free blocks side by side */
                if (after(b)->prev_size != s) return 6;
                st[0]++, st[1] += s;
                prev_used = 0;
            }
            b = after(b);
        }
        if (!(b->head & USED)) return 7;
    }
    if (nseg < sizeof seg_start / sizeof seg_start[0] && listed != st[0]) return 8;
    return 0;
}

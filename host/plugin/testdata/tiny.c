/* tiny.c: a small module without libc for the rewriter fuzzer's seeds: loops, recursion,
 * indirect calls through a table (element segment), globals, memory and exports.
 * An import (env.ext) makes the rewriter renumber every function index.
 * .deps/bin/wasm32-cc -O1 -nostdlib -Wl,--no-entry -rdynamic -fvisibility=default -o tiny.wasm tiny.c */
__attribute__((import_module("env"), import_name("ext"))) int ext(int);

static int counter;

static int square(int x) { return x * x; }
static int twice(int x) { return 2 * x; }
static int (*const table[])(int) = {square, twice};

__attribute__((noinline)) int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int sum(const unsigned char* p, int n) {
	int s = 0;
	for (int i = 0; i < n; i++) s += p[i];
	return s;
}

int apply(int which, int x) {
	counter += ext(x);
	return table[which & 1](x);
}

int nested(int n) {
	int s = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++) s += apply(i, j);
	return s + counter;
}

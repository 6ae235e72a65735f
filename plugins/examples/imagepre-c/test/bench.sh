#!/bin/sh
# Instruction counts of the whole pre stage (decode + resize) on the two benchmark workloads,
# native gcc -O2 build under callgrind; writes the tensors to $OUT (default /tmp/imagepre-c-bench).
#   test/bench.sh [OUT]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$here/..
models=$here/../../../../.deps/models
out=${1:-/tmp/imagepre-c-bench}
mkdir -p "$out"
gcc -O2 -g -o "$out/bench" "$here/bench.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm
for w in "peacock.png 224 224" "ssd_example.jpg 300 300"; do
    set -- $w
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" "$out/bench" "$models/$1" $2 $3 u8 1 "$out/$1.u8" 2>&1 |
        grep -o 'Collected : [0-9]*' | sed "s/^/$1: /"
done

#!/bin/sh
# Native tests of the imagepre-c decoders, built with gcc and AddressSanitizer + UBSan.
#
#   test/run.sh [FUZZ_ITERATIONS]      (run from anywhere; `make test` runs it)
#
# 1. peacock.png must decode to exactly the RGB bytes of Go's image/png (SHA-256 below was
#    taken from a Go program dumping png.Decode's pixels).
# 2. ssd_example.jpg must decode (1920x1280), and its DCT-domain decodes at 1/2, 1/4 and 1/8
#    must be within 30 dB PSNR of the full decode box-filtered to their size.
# 3. Every truncation and FUZZ_ITERATIONS random corruptions of both files must return a
#    status, never crash or trip a sanitizer.
# 4. PNGs of random pixels with every filter type, RGB and RGBA, must decode to their pixels.
# 5. inflate against zlib (test/inflate_diff.c, linked with the system's zlib):
#    streams of every level 0-9 and strategy, with flushes and mid-stream parameter changes,
#    over the bundled files and generated data (~440 MiB decoded, in one call and streamed
#    through zs_inflate), their truncations (both ways), the
#    16-bit PNGs of issue 24, and a 56-byte fixture, must decode to zlib's input.
# 6. The plugin's PNG path, png_decode_tensor (row by row, keeping only the pixels the resize
#    reads), must give exactly png_decode + img_resize: peacock.png, Go's PngSuite copy (when
#    Go is installed) and 300 random PNGs of every colour type, depth and interlace, their
#    IDAT data cut at random, at six output sizes; truncations are refused by both.
# 7. The C SDK's malloc (sdk/c/heap.c), natively: random operations keep every block's bytes
#    and the boundary tags consistent; freed memory merges back; after running out of a 32 MiB
#    budget and freeing, the largest block a fresh heap gives is still given (issue 24).
# 8. Progressive JPEGs (test/progressive.c, fixtures in test/testdata made by its make.sh):
#    each progressive file, a lossless jpegtran transcode of a baseline one, must decode to
#    exactly the baseline's bytes at 1/1, 1/2, 1/4 and 1/8 and give the same tensors: 4:4:4,
#    4:2:2, 4:2:0, 4:4:0, greyscale, CMYK and YCCK (Adobe), restart intervals, default and
#    custom scan scripts (successive approximation, EOB runs, non-interleaved DC);
#    ssd_example.jpg transcoded at test time when jpegtran is installed (JPEGTRAN=path
#    overrides; without it: SKIP). Truncations are refused with status 1, arithmetic coding
#    with status 3 naming it, more than 500 scans with status 3; corruptions of a
#    progressive file are fuzzed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$here/..
models=$here/../../../../.deps/models
iters=${1:-300}
out=${TMPDIR:-/tmp}/imagepre-c-test.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

cflags="-Wall -Wextra -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all"
gcc $cflags -o "$out/decode" "$here/decode.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm
gcc $cflags -o "$out/fuzz" "$here/fuzz.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm

gcc $cflags -o "$out/filters" "$here/filters.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm

# zlib: -lz with the development package, else the runtime library every Debian has
# (test/zlib_min.h declares what the tests use when zlib.h is not installed).
printf 'const char *zlibVersion(void);\nint main(void) { return zlibVersion() == 0; }\n' > "$out/z.c"
if gcc -o "$out/z" "$out/z.c" -lz 2>/dev/null; then lz=-lz
elif gcc -o "$out/z" "$out/z.c" -l:libz.so.1 2>/dev/null; then lz=-l:libz.so.1
else echo "FAIL: the inflate test needs zlib's library (libz.so.1, Debian package zlib1g)"; exit 1; fi
gcc $cflags -o "$out/inflate_diff" "$here/inflate_diff.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm $lz

"$out/inflate_diff" -mb 0.5 "$models/peacock.png" "$models/ssd_example.jpg" "$models/mobilenet_labels.txt" \
    "$models/mobilenet_quant_v1_224.tflite" || { echo "FAIL: inflate differs from zlib"; exit 1; }
echo "PASS: inflate equals zlib on every level and strategy, flushes, truncations and the issue 24 PNGs"

gcc $cflags -o "$out/pngtensor" "$here/pngtensor.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm $lz
gosuite=$(go env GOROOT 2>/dev/null)/src/image/png/testdata
pngs=$(ls "$gosuite"/pngsuite/*.png "$gosuite"/*.png 2>/dev/null | grep -v invalid || true)
"$out/pngtensor" -n 300 "$models/peacock.png" $pngs || { echo "FAIL: PNG row by row differs from decode + resize"; exit 1; }
echo "PASS: PNG row by row (the plugin's path) equals decode + resize: peacock.png, Go's PngSuite copy, 300 random PNGs"

gcc $cflags -o "$out/heap" "$here/heap.c" "$src/../../../sdk/c/heap.c"
"$out/heap" || { echo "FAIL: sdk/c/heap.c"; exit 1; }
echo "PASS: sdk/c/heap.c keeps blocks intact, merges what is freed, gives the whole budget back after running out"

"$out/filters" >/dev/null || { echo "FAIL: PNG filter round trip"; "$out/filters"; exit 1; }
echo "PASS: PNG filters 0-4 round trip, 8-bit RGB and RGBA, widths 1-133"

want_png=a471b0a10518289561138dada586485ab7662ba568f29a573337f4edd14c3694
"$out/decode" "$models/peacock.png" "$out/peacock.rgb"
got=$(sha256sum "$out/peacock.rgb" | cut -d' ' -f1)
if [ "$got" != "$want_png" ]; then
    echo "FAIL: peacock.png pixels differ from Go's image/png ($got)"
    exit 1
fi
echo "PASS: peacock.png matches Go's image/png byte for byte"

res=$("$out/decode" "$models/ssd_example.jpg")
[ "$res" = "ok 1920x1280" ] || { echo "FAIL: ssd_example.jpg: $res"; exit 1; }
echo "PASS: ssd_example.jpg decodes ($res)"

"$out/decode" -scales "$models/ssd_example.jpg" || { echo "FAIL: ssd_example.jpg scaled decodes below 30 dB"; exit 1; }
echo "PASS: ssd_example.jpg at 1/2, 1/4, 1/8 within 30 dB of the box-filtered full decode"

gcc $cflags -o "$out/progressive" "$here/progressive.c" "$src/png.c" "$src/jpeg.c" "$src/inflate.c" "$src/image.c" "$src/resize.c" -lm
td=$here/testdata
for n in s444 s422 s420 s440 gray rst big cmyk ycck; do
    "$out/progressive" "$td/$n.jpg" "$td/$n"-[ps].jpg || { echo "FAIL: progressive $n differs from its baseline twin"; exit 1; }
done
jpegtran=${JPEGTRAN:-jpegtran}
if command -v "$jpegtran" >/dev/null 2>&1; then
    "$jpegtran" -progressive "$models/ssd_example.jpg" > "$out/ssd-p.jpg"
    "$jpegtran" -restart 5B -scans "$td/scans.txt" "$models/ssd_example.jpg" > "$out/ssd-s.jpg"
    "$out/progressive" "$models/ssd_example.jpg" "$out/ssd-p.jpg" "$out/ssd-s.jpg" ||
        { echo "FAIL: progressive ssd_example.jpg differs from the baseline"; exit 1; }
else
    echo "SKIP: jpegtran is not installed (Debian libjpeg-turbo-progs): ssd_example.jpg is not transcoded to progressive; the committed fixtures still ran"
fi
"$out/progressive" -trunc "$td/s420-s.jpg" || { echo "FAIL: a truncated progressive JPEG was not refused as bad input"; exit 1; }
"$out/progressive" -status 3 arithmetic "$td/arith.jpg" "$td/arith-p.jpg" || { echo "FAIL: arithmetic coding not refused with 415"; exit 1; }
"$out/progressive" -scans || { echo "FAIL: the limit of 500 progressive scans"; exit 1; }
echo "PASS: progressive JPEGs decode exactly as their baseline twins at every scale; truncations 400, arithmetic 415"

echo "fuzz: peacock.png, $iters corruptions + every truncation"
"$out/fuzz" "$iters" "$models/peacock.png"
echo "fuzz: ssd_example.jpg, $((iters / 30 + 1)) corruptions + 256 random truncations"
"$out/fuzz" $((iters / 30 + 1)) "$models/ssd_example.jpg"
echo "fuzz: s420-s.jpg (progressive), $((iters / 3)) corruptions + every truncation"
"$out/fuzz" $((iters / 3)) "$td/s420-s.jpg"
echo "PASS: no crash, no sanitizer report"

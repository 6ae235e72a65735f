#!/bin/sh
# Regenerates the progressive JPEG fixtures of test/run.sh (committed, so the tests need no
# tools): small crops of .deps/models/ssd_example.jpg encoded by libjpeg-turbo's cjpeg
# (Debian libjpeg-turbo-progs 2.1.5) as baseline JPEGs, each with progressive versions
# transcoded losslessly by jpegtran. jpegtran keeps the quantised coefficients, so a
# progressive file must decode to exactly the bytes of its baseline twin at every scale.
#
#   NAME.jpg     baseline (sequential Huffman)
#   NAME-p.jpg   jpegtran -progressive (libjpeg's default script: DC first with Al = 1,
#                AC bands with successive approximation, refinement scans, EOB runs)
#   NAME-s.jpg   jpegtran -scans scans.txt (non-interleaved DC, odd bands, refinements of other
#                bands; s420 with a restart every 2 blocks, rst every block)
#
# Names: s444, s422, s420, s440 (cjpeg -sample), gray, rst (4:2:0, restart every 3 blocks
# in the progressive file, every MCU row in the baseline one), big (400x264 4:2:0); cmyk
# and ycck (Adobe APP14 transform 0 and 2, written by mkcmyk.c with the system's libjpeg,
# Debian libjpeg62-turbo-dev: the inverted CMYK Photoshop writes; YCCK sampled 2x2,1x1,1x1,2x2).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../../../../.deps/models/ssd_example.jpg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here"
djpeg -ppm "$src" > "$tmp/full.ppm"
# a 171x115 crop (odd sizes: partial MCUs on both edges) and a 640x424 one
jpegtran -crop 400x264+640+400 "$src" | djpeg -ppm > "$tmp/big.ppm"
jpegtran -crop 171x115+800+560 "$src" | djpeg -ppm > "$tmp/small.ppm"
enc() { # name, cjpeg options..., input
    name=$1; shift
    cjpeg -quality 90 -optimize "$@" > "$name.jpg"
}
enc s444 -sample 1x1 "$tmp/small.ppm"
enc s422 -sample 2x1 "$tmp/small.ppm"
enc s420 -sample 2x2 "$tmp/small.ppm"
enc s440 -sample 1x2 "$tmp/small.ppm"
enc gray -grayscale "$tmp/small.ppm"
enc rst -sample 2x2 -restart 1 "$tmp/small.ppm"
enc big -sample 2x2 -quality 85 "$tmp/big.ppm"
gcc -O2 -o "$tmp/mkcmyk" mkcmyk.c -ljpeg
"$tmp/mkcmyk" "$tmp/small.ppm" cmyk 90 > cmyk.jpg
"$tmp/mkcmyk" "$tmp/small.ppm" ycck 90 > ycck.jpg
for n in s444 s422 s420 s440 gray rst big cmyk ycck; do
    if [ "$n" = rst ]; then jpegtran -progressive -restart 3B "$n.jpg" > "$n-p.jpg"
    else jpegtran -progressive "$n.jpg" > "$n-p.jpg"; fi
done
for n in s444 s420 gray rst; do
    case $n in
    gray) jpegtran -scans scans-gray.txt "$n.jpg" > "$n-s.jpg" ;;
    rst) jpegtran -restart 1B -scans scans.txt "$n.jpg" > "$n-s.jpg" ;;
    s420) jpegtran -restart 2B -scans scans.txt "$n.jpg" > "$n-s.jpg" ;;
    *) jpegtran -scans scans.txt "$n.jpg" > "$n-s.jpg" ;;
    esac
done
# Arithmetic coding (SOF9, SOF10): refused with 415.
jpegtran -arithmetic s420.jpg > arith.jpg
jpegtran -arithmetic -progressive s420.jpg > arith-p.jpg
ls -l "$here"/*.jpg

#!/usr/bin/env bash
# ffmpeg.sh fetches the static ffmpeg that camera streams (rtsp://, video files) run as a child
# process, from the PyPI wheel imageio-ffmpeg, pinned by version and sha256 (no GitHub, no apt):
#   .deps/ffmpeg/ffmpeg     ffmpeg 7.0.2, static, x86_64 (GPL build: libx264, libvpx, mjpeg, rtsp)
# The wheel carries one binary per platform; only x86_64 is pinned here. `make deps-ffmpeg`
# calls it (and `make test` calls that); a failed fetch is not fatal: it prints why and the
# tests that need ffmpeg skip, saying so. Idempotent and offline once done.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads/pypi"
say() { printf 'ffmpeg: %s\n' "$*" >&2; }

VERSION=0.6.0
WHEEL="imageio_ffmpeg-${VERSION}-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256=c7e46fcec401dd990405049d2e2f475e2b397779df2519b544b8aab515195282
MEMBER=imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v7.0.2
BIN_SHA256=e7e7fb30477f717e6f55f9180a70386c62677ef8a4d4d1a5d948f4098aa3eb99

[ "$(uname -m)" = x86_64 ] || { say "only x86_64 is pinned (this is $(uname -m)); stream tests that need ffmpeg skip"; exit 0; }
if [ -x "$DEPS/ffmpeg/ffmpeg" ] && [ -f "$DEPS/ffmpeg/.ok" ]; then exit 0; fi
mkdir -p "$DL"
if ! [ -f "$DL/$WHEEL" ]; then
	say "fetching imageio-ffmpeg==$VERSION from PyPI (pip download; 29 MB)"
	python3 -m pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
		-d "$DL" "imageio-ffmpeg==$VERSION" >"$DL/imageio-ffmpeg.log" 2>&1 ||
		{ say "could not fetch imageio-ffmpeg==$VERSION: $(tail -1 "$DL/imageio-ffmpeg.log")"; exit 0; }
fi
got="$(sha256sum "$DL/$WHEEL" | cut -d' ' -f1)"
if [ "$got" != "$WHEEL_SHA256" ]; then
	say "sha256 mismatch for $WHEEL: want $WHEEL_SHA256, got $got (deleted; run make deps-ffmpeg again)"
	rm -f "$DL/$WHEEL"; exit 0
fi
rm -rf "$DEPS/ffmpeg.tmp" && mkdir -p "$DEPS/ffmpeg.tmp"
python3 - "$DL/$WHEEL" "$MEMBER" "$DEPS/ffmpeg.tmp/ffmpeg" <<'PY' || { say "could not unpack $WHEEL"; rm -rf "$DEPS/ffmpeg.tmp"; exit 0; }
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
got="$(sha256sum "$DEPS/ffmpeg.tmp/ffmpeg" | cut -d' ' -f1)"
if [ "$got" != "$BIN_SHA256" ]; then
	say "sha256 mismatch for $MEMBER: want $BIN_SHA256, got $got"; rm -rf "$DEPS/ffmpeg.tmp"; exit 0
fi
chmod 0755 "$DEPS/ffmpeg.tmp/ffmpeg"
rm -rf "$DEPS/ffmpeg" && mv "$DEPS/ffmpeg.tmp" "$DEPS/ffmpeg" && touch "$DEPS/ffmpeg/.ok"

#!/usr/bin/env bash
# deps-arch.sh ARCH fetches the TFLite C library edgehost links against on another CPU
# architecture, from the same PyPI wheel as amd64's (pymicro-wakeword 2.5.0, TF 2.17.1), pinned
# by version and sha256. `make deps ARCH=arm64|armhf` calls it (after scripts/deps.sh, which
# brings the headers, the models and Zig, the cross compiler).
#
#   .deps/tflite/2.17-arm64/lib/libtensorflowlite_c.so   aarch64, 216 exported names as amd64's
#                                                        (XNNPACK, custom allocation)
#   .deps/tflite/2.17-armhf/lib/libtensorflowlite_c.so   armv7l (hard float), 119 names: custom
#                                                        allocation, no XNNPACK C API
#   .deps/tflite/2.17-amd64/lib/libtensorflowlite_c.so   scripts/deps.sh's, copied (make release)
#   .deps/bin/cc-ARCH                                    `zig cc -target <triple>.2.36` (glibc 2.36 symbols
#                                                        and lower: Debian 12, Raspberry Pi OS bookworm)
set -euo pipefail

ARCH=${1:?usage: deps-arch.sh amd64|arm64|armhf}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads"
say() { printf 'deps-arch: %s\n' "$*" >&2; }
die() { printf 'deps-arch: ERROR: %s\n' "$*" >&2; exit 1; }
check() {
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[ "$got" = "$2" ] || die "sha256 mismatch for $1: want $2, got $got (delete it and run make deps ARCH=$ARCH again)"
}

case $ARCH in
amd64)
	# The release build of amd64 (make release) uses the same zig cc, for the same glibc
	# floor as the ARM builds; its library is scripts/deps.sh's, copied.
	PLATFORM=manylinux_2_35_x86_64 WHEEL_SUM=""
	LIB_SUM=25465edb5cd7aadd00249d4d28f1d922ce5cc90195ad4403458111dd63493bae
	TRIPLE=x86_64-linux-gnu.2.36 ;;
arm64)
	PLATFORM=manylinux_2_35_aarch64
	WHEEL_SUM=6c75b77c936efd19b8c35a094cb7e3fdbd4ebcd0f63635a0851ce591990829f2
	LIB_SUM=12062437bfde367b1be592ebc4a9fe64b8453f90b3b7dc21fade002c38e1ac1a
	TRIPLE=aarch64-linux-gnu.2.36 ;;
armhf)
	PLATFORM=manylinux_2_35_armv7l
	WHEEL_SUM=af92b862fe0488fba7422b9819b1a8c88781b2f90fb3e4b7f1dcfd1d90a6b69b
	LIB_SUM=fcb6ef6f3f9c68889868fb55aba544d43d0fe9703c1efeb2756e82b553d032ab
	TRIPLE=arm-linux-gnueabihf.2.36 ;;
*) die "unknown ARCH=$ARCH (amd64, arm64 or armhf)" ;;
esac
WHEEL=pymicro_wakeword-2.5.0-py3-none-$PLATFORM.whl
OUT="$DEPS/tflite/2.17-$ARCH/lib/libtensorflowlite_c.so"

if [ "$ARCH" = amd64 ]; then
	mkdir -p "$(dirname "$OUT")"
	cp "$DEPS/tflite/2.17/lib/libtensorflowlite_c.so" "$OUT.tmp" && check "$OUT.tmp" "$LIB_SUM" && mv "$OUT.tmp" "$OUT"
elif ! [ -f "$OUT" ] || [ "$(sha256sum "$OUT" | cut -d' ' -f1)" != "$LIB_SUM" ]; then
	if [ -f "$DL/$WHEEL" ]; then check "$DL/$WHEEL" "$WHEEL_SUM"; else
		say "fetching pymicro-wakeword==2.5.0 ($PLATFORM) from PyPI (pip download)"
		mkdir -p "$DL"
		# pip matches --platform exactly: the wheel's own tag is named, not a range.
		python3 -m pip download --no-deps --only-binary=:all: --platform "$PLATFORM" \
			--python-version 3.11 --progress-bar off -d "$DL" pymicro-wakeword==2.5.0 >&2 ||
			die "could not fetch pymicro-wakeword==2.5.0 for $PLATFORM from PyPI"
		[ -f "$DL/$WHEEL" ] || die "pip did not produce $WHEEL"
		check "$DL/$WHEEL" "$WHEEL_SUM"
	fi
	tmp="$DL/wheel-$ARCH"
	rm -rf "$tmp" && mkdir -p "$tmp" "$(dirname "$OUT")"
	python3 -m zipfile -e "$DL/$WHEEL" "$tmp" || die "could not unpack $WHEEL"
	cp "$tmp/pymicro_wakeword/lib/libtensorflowlite_c.so" "$OUT.tmp"
	check "$OUT.tmp" "$LIB_SUM"
	mv "$OUT.tmp" "$OUT"
	rm -rf "$tmp"
fi

# The cross C compiler: the Zig scripts/deps.sh fetched. 2.36, not lower: before glibc 2.34
# Go's cgo resolver needs libresolv, which zig does not link (res_search undefined at 2.31).
[ -x "$DEPS/zig/ziglang/zig" ] || die "no Zig in .deps/zig: run make deps first"
mkdir -p "$DEPS/bin"
cat > "$DEPS/bin/cc-$ARCH.tmp" <<WRAP
#!/bin/sh
# Written by scripts/deps-arch.sh: zig's clang for $TRIPLE, caches kept in .deps/zig-cache.
d=\$(cd "\$(dirname "\$0")/.." && pwd)
ZIG_GLOBAL_CACHE_DIR="\$d/zig-cache" ZIG_LOCAL_CACHE_DIR="\$d/zig-cache" exec "\$d/zig/ziglang/zig" cc -target $TRIPLE "\$@"
WRAP
chmod +x "$DEPS/bin/cc-$ARCH.tmp" && mv "$DEPS/bin/cc-$ARCH.tmp" "$DEPS/bin/cc-$ARCH"
say "ok: TFLite 2.17.1 for $ARCH in .deps/tflite/2.17-$ARCH, cross compiler .deps/bin/cc-$ARCH"

#!/usr/bin/env bash
# deps-emu.sh fetches what `make test-arm` runs the arm64 and armhf builds with, from Debian
# 12's archive without root (apt-get download on a private apt state that lists arm64 and
# armhf too, then dpkg-deb -x), pinned by version and sha256:
#   .deps/emu/qemu/usr/bin/qemu-{aarch64,arm}-static   qemu-user-static 7.2 (static, runs anywhere)
#   .deps/emu/sysroot-arm64/                           libc6, libstdc++6, libgcc-s1 of arm64:
#   .deps/emu/sysroot-armhf/                           the loader and libraries the binary and
#                                                      libtensorflowlite_c.so need (QEMU_LD_PREFIX)
#   .deps/emu/sysroot-amd64/                           the same of amd64: with arm64's, the OCI
#                                                      image's glibc layer (scripts/image.py)
# Idempotent, offline once done. About 71 MB of .debs, and the archive's lists for three
# architectures once (the longest part: ~2 min here).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads/deb-emu"
OUT="$DEPS/emu"
say() { printf 'deps-emu: %s\n' "$*" >&2; }
die() { printf 'deps-emu: ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=apt-private.sh
APT_PRIVATE="$DEPS/apt-emu" . "$ROOT/scripts/apt-private.sh"
updated=""
# fetch PKG:ARCH VERSION SHA256 DEST
fetch() {
	local pkg=${1%%:*} arch=${1#*:} version=$2 sum=$3 dest=$4
	local file="${pkg}_${version//:/%3a}_${arch}.deb"
	if ! [ -f "$DL/$file" ]; then
		if [ -z "$updated" ]; then
			_apt_setup
			APT_OPTS+=(-o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64" -o "APT::Architectures::=armhf")
			say "fetching the Debian archive's lists for amd64, arm64 and armhf (apt-get update, private state)"
			apt-get "${APT_OPTS[@]}" -qq update >&2 || die "apt-get update of the Debian archive failed"
			updated=1
		fi
		say "fetching $1=$version (apt-get download)"
		mkdir -p "$DL"
		(cd "$DL" && apt-get "${APT_OPTS[@]}" -qq download "$1=$version" >&2) || die "could not fetch $1=$version"
	fi
	local got
	got="$(sha256sum "$DL/$file" | cut -d' ' -f1)"
	[ "$got" = "$sum" ] || { rm -f "$DL/$file"; die "sha256 mismatch for $file: want $sum, got $got"; }
	mkdir -p "$dest" && dpkg-deb -x "$DL/$file" "$dest"
}

if ! [ -f "$OUT/.ok" ] || ! [ -d "$OUT/sysroot-amd64" ]; then
	rm -rf "$OUT.tmp"
	fetch qemu-user-static:amd64 1:7.2+dfsg-7+deb12u18+b3 c3e3ba2bd87f8c5b9a5da5ef21b5a3b82d7c63b89dd448d9ddaa4eabc5b6e402 "$OUT.tmp/qemu"
	fetch libc6:arm64 2.36-9+deb12u14 01f4330719fd4f65580e16ea5a0527f372fca750e8f588d26deaf09f2d3b1cf4 "$OUT.tmp/sysroot-arm64"
	fetch libstdc++6:arm64 12.2.0-14+deb12u1 26e138c677a985775331373828a6c286c551ff397cb735d00e2383cb273d1cb2 "$OUT.tmp/sysroot-arm64"
	fetch libgcc-s1:arm64 12.2.0-14+deb12u1 576926b283613db80168ddf76380a3bd877602778cf0d226caa7bfbfa71eacf3 "$OUT.tmp/sysroot-arm64"
	fetch libc6:armhf 2.36-9+deb12u14 758c68b92654747025b48476a45c315bf16df1321224abdd9be672bfd120be45 "$OUT.tmp/sysroot-armhf"
	fetch libstdc++6:armhf 12.2.0-14+deb12u1 66d53ddeb10a37f22e455611c2c515f9d444e523b55d873ff48bde47267963db "$OUT.tmp/sysroot-armhf"
	fetch libgcc-s1:armhf 12.2.0-14+deb12u1 f58562bf01efd6112b914182147ee149e0d4c90869046e31844da8803669eeb3 "$OUT.tmp/sysroot-armhf"
	fetch libc6:amd64 2.36-9+deb12u14 ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf "$OUT.tmp/sysroot-amd64"
	fetch libstdc++6:amd64 12.2.0-14+deb12u1 5cd3171216d4ab0fc911cfe9c35509bf2dd8f47761c43b7f6a4296701551a24d "$OUT.tmp/sysroot-amd64"
	fetch libgcc-s1:amd64 12.2.0-14+deb12u1 3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7 "$OUT.tmp/sysroot-amd64"
	# Only the two emulators are needed of qemu's 30.
	find "$OUT.tmp/qemu/usr/bin" -type f ! -name qemu-aarch64-static ! -name qemu-arm-static -delete
	rm -rf "$OUT.tmp/qemu/usr/share"
	rm -rf "$OUT" && mv "$OUT.tmp" "$OUT" && touch "$OUT/.ok"
fi
say "ok: qemu-user-static and the arm64/armhf sysroots in .deps/emu"

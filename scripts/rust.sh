#!/usr/bin/env bash
# rust.sh fetches a Rust toolchain for wasm32-wasi plugins into .deps/rust without root:
# Debian 12's rustc 1.63 with the wasm32-wasi standard library (libstd-rust-dev-wasm32) and
# its linker (lld-14), as .deb packages from the Debian archive (`apt-get download`), pinned
# by version and sha256, unpacked with dpkg-deb. `make rust-plugins` calls it. It is
# idempotent and works offline once it has run.
#
#   .deps/rust/bin/rustc   a wrapper: the unpacked rustc with its sysroot and libraries
#
# rustup's toolchains are not used: their wasm targets come from static.rust-lang.org, which
# this project's machines cannot reach (only package registries).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads/rust-debs"
DEST="$DEPS/rust"

# shellcheck source=apt-private.sh
. "$ROOT/scripts/apt-private.sh"
say() { printf 'rust: %s\n' "$*" >&2; }
die() { printf 'rust: ERROR: %s\n' "$*" >&2; exit 1; }

# package version sha256 (Debian 12 "bookworm" main).
PKGS=(
	"rustc 1.63.0+dfsg1-2 26dd439266153e38d3e6fbe0fe2dbbb41f20994afa688faa71f38427348589ed"
	"libstd-rust-1.63 1.63.0+dfsg1-2 3970c02845cd407e2389623f138e2e96443702c46a789d394ec63b58a482448e"
	"libstd-rust-dev-wasm32 1.63.0+dfsg1-2 959a7c281b4a7af90e0ad67961aec82594d0eb09442c5e06d8478974d7287fd1"
	"lld-14 1:14.0.6-12 3b77ab0cc30bbba9e874ba57cabc090116ed52d5eebaa043cf1e1412c4523a99"
	"libllvm14 1:14.0.6-12 cd986403cfe53f47c41b80667f6b344c40fe35de4c5081dad9358b4c77cf64a8"
)
STAMP="$DEST/.ok-$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -c1-16)"
[ -f "$STAMP" ] && [ -x "$DEST/bin/rustc" ] && exit 0

command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian's rustc (or install rustc 1.63+ with the wasm32-wasi target and set RUSTC=)"
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed to unpack the toolchain packages"
mkdir -p "$DL"
for p in "${PKGS[@]}"; do
	read -r name version sum <<<"$p"
	f="$(ls "$DL"/"${name}"_*.deb 2>/dev/null | head -1 || true)"
	if [ -z "$f" ]; then
		say "fetching $name=$version from the Debian archive (apt-get download)"
		apt_fetch "$DL" "$name=$version" ||
			die "could not fetch $name=$version from the Debian archive (check it is reachable)"
		f="$(ls "$DL"/"${name}"_*.deb | head -1)"
	fi
	got="$(sha256sum "$f" | cut -d' ' -f1)"
	[ "$got" = "$sum" ] || die "sha256 mismatch for $f: want $sum, got $got (delete it and run again)"
done
rm -rf "$DEST" && mkdir -p "$DEST/bin"
for f in "$DL"/*.deb; do dpkg-deb -x "$f" "$DEST/root" || die "could not unpack $f"; done
rm -rf "$DEST/root/usr/lib/rustlib/wasm32-unknown-unknown" "$DEST/root/usr/share/doc"
cat >"$DEST/bin/rustc" <<'WRAP'
#!/bin/sh
# rustc 1.63 (Debian 12) unpacked by scripts/rust.sh: its own libraries, sysroot and rust-lld.
R="$(cd "$(dirname "$0")/../root" && pwd)"
export LD_LIBRARY_PATH="$R/usr/lib/x86_64-linux-gnu:$R/usr/lib/llvm-14/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$R/usr/bin:$PATH"
exec "$R/usr/bin/rustc" --sysroot "$R/usr" "$@"
WRAP
chmod +x "$DEST/bin/rustc"
"$DEST/bin/rustc" --version >/dev/null || die "the unpacked rustc does not run"
touch "$STAMP"
say "$("$DEST/bin/rustc" --version) with wasm32-wasi in $DEST"

#!/usr/bin/env bash
# deps-pose.sh fetches MediaPipe's pose landmark model (the second model of the `people`
# cascade) from the npm package @mediapipe/pose, pinned by version and sha256, into
# .deps/models/pose_landmark_full.tflite. `make deps` runs it (after scripts/deps.sh, whose
# helpers it follows). Idempotent; offline once it has run.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads"
mkdir -p "$DL" "$DEPS/models"

die() { printf 'deps-pose: ERROR: %s\n' "$*" >&2; exit 1; }
check() {
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[ "$got" = "$2" ] || die "sha256 mismatch for $1: want $2, got $got (delete it and run make deps again)"
}

PKG=@mediapipe/pose VERSION=0.5.1675469404
TGZ=mediapipe-pose-$VERSION.tgz
TGZ_SUM=8bb349a7b3a3ba699df23be804ddd3b3eab810b50b15406894be257859388a84
MODEL_SUM=e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f
DST="$DEPS/models/pose_landmark_full.tflite"

if [ -f "$DST" ] && [ "$(sha256sum "$DST" | cut -d' ' -f1)" = "$MODEL_SUM" ]; then exit 0; fi
if ! [ -f "$DL/$TGZ" ]; then
	printf 'deps-pose: fetching %s@%s from the npm registry (npm pack, 41 MB once)\n' "$PKG" "$VERSION" >&2
	(cd "$DL" && npm pack --silent "$PKG@$VERSION" >/dev/null) || die "could not fetch $PKG@$VERSION (npm pack)"
fi
check "$DL/$TGZ" "$TGZ_SUM"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$DL/$TGZ" -C "$tmp" package/pose_landmark_full.tflite || die "could not unpack $TGZ"
check "$tmp/package/pose_landmark_full.tflite" "$MODEL_SUM"
cp "$tmp/package/pose_landmark_full.tflite" "$DST.tmp"
chmod 0644 "$DST.tmp"
mv "$DST.tmp" "$DST"

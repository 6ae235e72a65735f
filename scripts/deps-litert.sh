#!/usr/bin/env bash
# deps-litert.sh fetches LiteRT (the CompiledModel runtime behind `accelerator = ...` in
# config.toml) from PyPI, pinned by version and checked by sha256, into .deps/litert/. No
# Python is needed at run time: the wheels are unpacked, not installed. `make deps-litert`
# runs it; `deps-litert.sh openvino` also fetches OpenVINO (the Intel NPU dispatch's
# runtime, which also runs on an x86 CPU: the NPU test's device).
#
# Layout (the wheels' own site-packages layout, so the dispatch library's
# RUNPATH $ORIGIN/../../../../openvino/libs finds OpenVINO without LD_LIBRARY_PATH):
#   .deps/litert/2.3.0/ai_edge_litert/libLiteRt.so                 CompiledModel C API
#   .deps/litert/2.3.0/ai_edge_litert/libLiteRtWebGpuAccelerator.so GPU (WebGPU/Dawn on Vulkan)
#   .deps/litert/2.3.0/ai_edge_litert/vendors/intel_openvino/{dispatch,compiler}/*.so
#   .deps/litert/2.3.0/openvino/libs/*.so                          (openvino only)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DL="$ROOT/.deps/downloads"
DEST="$ROOT/.deps/litert/2.3.0"
mkdir -p "$DL" "$DEST"

say() { printf 'deps-litert: %s\n' "$*" >&2; }
die() { printf 'deps-litert: ERROR: %s\n' "$*" >&2; exit 1; }
check() {
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[ "$got" = "$2" ] || die "sha256 mismatch for $1: want $2, got $got (delete it and run again)"
}

# wheel NAME VERSION PLATFORM FILE SHA256 MARKER PATTERN...: fetch the wheel and unpack the
# members matching PATTERN into $DEST, once (MARKER records the wheel's digest).
wheel() {
	local name=$1 version=$2 platform=$3 file=$4 sum=$5 marker=$6
	shift 6
	if [ -f "$DEST/$marker" ] && [ "$(cat "$DEST/$marker")" = "$sum" ]; then return; fi
	if [ -f "$DL/$file" ]; then check "$DL/$file" "$sum"; else
		say "fetching $name==$version from PyPI (pip download)"
		python3 -m pip download --no-deps --only-binary=:all: --platform "$platform" --python-version 3.11 \
			--implementation cp --abi cp311 --progress-bar on -d "$DL" "$name==$version" >&2 ||
			die "could not fetch $name==$version from PyPI (pip download); check the PyPI registry is reachable"
		[ -f "$DL/$file" ] || die "PyPI package $name==$version did not contain $file"
		check "$DL/$file" "$sum"
	fi
	python3 - "$DL/$file" "$DEST" "$@" <<'PY' || die "could not unpack $file"
import fnmatch, os, sys, zipfile
whl, dest, pats = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(whl) as z:
    for m in z.namelist():
        if any(fnmatch.fnmatch(m, p) for p in pats):
            z.extract(m, dest)
PY
	echo "$sum" > "$DEST/$marker"
}

wheel ai-edge-litert 2.3.0 manylinux_2_27_x86_64 ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_x86_64.whl \
	1f15078a6725d2357d9de9221664c29afa0545d807559c5f7199ce5e40b96b23 .litert.ok \
	'ai_edge_litert/libLiteRt.so' 'ai_edge_litert/libLiteRtWebGpuAccelerator.so' 'ai_edge_litert/vendors/*.so'
[ -f "$DEST/ai_edge_litert/libLiteRt.so" ] || die "libLiteRt.so missing from the unpacked wheel"

if [ "${1:-}" = openvino ]; then
	# 57 MB download, 176 MB unpacked (the libs only: ~150 MB).
	wheel openvino 2026.3.1 manylinux_2_28_x86_64 openvino-2026.3.1-22476-cp311-cp311-manylinux_2_28_x86_64.whl \
		a767aab95940ce78901335f5e89e61087b81ce122a546e3023489303f8488cd3 .openvino.ok 'openvino/libs/*'
	[ -d "$DEST/openvino/libs" ] || die "openvino/libs missing from the unpacked wheel"
fi
say "ok: LiteRT 2.3.0 in .deps/litert/2.3.0${1:+ (with $1)}"

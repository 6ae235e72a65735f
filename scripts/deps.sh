#!/usr/bin/env bash
# deps.sh fetches edgehost's native TFLite libraries, headers and models from package
# registries (PyPI, npm, the Go module proxy), pinned by version and checked by sha256,
# into .deps/. It is idempotent and works offline once it has run. `make deps` calls it.
#
# Layout produced:
#   .deps/tflite/2.17/lib/libtensorflowlite_c.so   TF 2.17.1 (PyPI pymicro-wakeword 2.5.0), preferred
#   .deps/tflite/2.9/lib/libtensorflowlite_c.so    TF 2.9.0 (npm tfjs-tflite-node 0.0.2), fallback
#   .deps/tflite/include/tensorflow/lite/c/*.h     C API headers (from tfjs-tflite-node)
#   .deps/models/*                                 models, labels and test images
#   .deps/zig/ziglang/zig                          Zig 0.17.0 (PyPI ziglang): clang + lld + wasi-libc
#   .deps/bin/wasi-cc                              `zig cc -target wasm32-wasi` (the C plugins' compiler)
#   .deps/bin/wasm32-cc                            `zig cc -target wasm32-freestanding` (libc-free test modules)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads"
mkdir -p "$DL" "$DEPS/tflite/2.17/lib" "$DEPS/tflite/2.9/lib" "$DEPS/tflite/include/tensorflow/lite/c" "$DEPS/models"

say() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

# check FILE SHA256: fail naming the file when its digest differs.
check() {
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[ "$got" = "$2" ] || die "sha256 mismatch for $1: want $2, got $got (delete it and run make deps again)"
}

# fetch_pypi NAME VERSION FILE SHA256: the wheel FILE of NAME==VERSION from PyPI.
fetch_pypi() {
	local name=$1 version=$2 file=$3 sum=$4
	if [ -f "$DL/$file" ]; then check "$DL/$file" "$sum"; return; fi
	say "fetching $name==$version from PyPI (pip download)"
	python3 -m pip download --no-deps --only-binary=:all: --platform manylinux_2_35_x86_64 \
		--python-version 3.11 --progress-bar on -d "$DL" "$name==$version" >&2 ||
		die "could not fetch $name==$version from PyPI (pip download); check the PyPI registry is reachable"
	[ -f "$DL/$file" ] || die "PyPI package $name==$version did not contain $file"
	check "$DL/$file" "$sum"
}

# fetch_pypi_sdist NAME VERSION FILE SHA256: the source distribution FILE of NAME==VERSION.
fetch_pypi_sdist() {
	local name=$1 version=$2 file=$3 sum=$4
	if [ -f "$DL/$file" ]; then check "$DL/$file" "$sum"; return; fi
	say "fetching the sdist of $name==$version from PyPI (pip download --no-binary)"
	python3 -m pip download --no-deps --no-binary=:all: --progress-bar on -d "$DL" "$name==$version" >&2 ||
		die "could not fetch $name==$version from PyPI (pip download); check the PyPI registry is reachable"
	[ -f "$DL/$file" ] || die "PyPI package $name==$version did not contain $file"
	check "$DL/$file" "$sum"
}

# fetch_npm NAME VERSION TARBALL SHA256: the npm package tarball (npm pack, no install scripts).
fetch_npm() {
	local name=$1 version=$2 file=$3 sum=$4
	if [ -f "$DL/$file" ]; then check "$DL/$file" "$sum"; return; fi
	say "fetching $name@$version from the npm registry (npm pack)"
	(cd "$DL" && npm pack --silent "$name@$version" >/dev/null) ||
		die "could not fetch $name@$version from the npm registry (npm pack)"
	[ -f "$DL/$file" ] || die "npm pack $name@$version did not produce $file"
	check "$DL/$file" "$sum"
}

# install_file SRC DST SHA256: copy SRC to DST unless DST is already there and correct.
install_file() {
	if [ -f "$2" ] && [ "$(sha256sum "$2" | cut -d' ' -f1)" = "$3" ]; then return; fi
	[ -f "$1" ] || die "expected $1 in the fetched package, it is missing"
	cp "$1" "$2.tmp" && check "$2.tmp" "$3" && mv "$2.tmp" "$2"
}

# 1. TensorFlow Lite 2.17.1 C library (XNNPACK built in, custom allocation): PyPI pymicro-wakeword.
WHEEL=pymicro_wakeword-2.5.0-py3-none-manylinux_2_35_x86_64.whl
fetch_pypi pymicro-wakeword 2.5.0 "$WHEEL" 3869f536402b1254e3be3549d3a462ecd6ed21ce2c3e77ec8eb501c3c700417c
if ! [ -f "$DEPS/tflite/2.17/lib/libtensorflowlite_c.so" ]; then
	rm -rf "$DL/wheel" && mkdir -p "$DL/wheel"
	python3 -m zipfile -e "$DL/$WHEEL" "$DL/wheel" || die "could not unpack $WHEEL"
fi
install_file "$DL/wheel/pymicro_wakeword/lib/libtensorflowlite_c.so" "$DEPS/tflite/2.17/lib/libtensorflowlite_c.so" \
	25465edb5cd7aadd00249d4d28f1d922ce5cc90195ad4403458111dd63493bae
# The same wheel's okay_nabu wake-word model (a streaming model: its state lives in resource
# variables) and its settings, for the wakeword pipeline and the sequence tests.
mkdir -p "$DEPS/models"
if ! [ -f "$DL/wheel/pymicro_wakeword/models/okay_nabu.tflite" ]; then
	rm -rf "$DL/wheel" && mkdir -p "$DL/wheel"
	python3 -m zipfile -e "$DL/$WHEEL" "$DL/wheel" || die "could not unpack $WHEEL"
fi
install_file "$DL/wheel/pymicro_wakeword/models/okay_nabu.tflite" "$DEPS/models/okay_nabu.tflite" \
	d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094
install_file "$DL/wheel/pymicro_wakeword/models/okay_nabu.json" "$DEPS/models/okay_nabu.json" \
	f8026e2ce93a0855ca23483036fd2d74ee924a2588d9ea6a6c6c7478fbf4be57

# TFLite Micro's audio feature front end (microfrontend) and kissfft, C/C++ sources from the
# sdist of PyPI pymicro-features (the feature front end of pymicro-wakeword): the
# microfeatures-c plugin compiles them to wasm32 with .deps/bin/wasi-cc.
MF=pymicro_features-2.0.2
fetch_pypi_sdist pymicro-features 2.0.2 "$MF.tar.gz" 0d0bed7843ec78b6ced82d1a2dcddeb4fe5df61b3af80a281d0868c8e279c727
if ! [ -f "$DEPS/microfrontend/$MF/.ok" ]; then
	rm -rf "$DEPS/microfrontend/$MF" && mkdir -p "$DEPS/microfrontend"
	tar -xzf "$DL/$MF.tar.gz" -C "$DEPS/microfrontend" || die "could not unpack $MF.tar.gz"
	touch "$DEPS/microfrontend/$MF/.ok"
fi

# 2. TensorFlow Lite 2.9.0 C library and C API headers: npm tfjs-tflite-node.
fetch_npm tfjs-tflite-node 0.0.2 tfjs-tflite-node-0.0.2.tgz 3be1632328a76a2475e5b6833253763c802c859433becb4d879ee1860e3b5284
if ! [ -f "$DEPS/tflite/2.9/lib/libtensorflowlite_c.so" ] || ! [ -f "$DEPS/tflite/include/tensorflow/lite/c/c_api.h" ]; then
	rm -rf "$DL/tfjs" && mkdir -p "$DL/tfjs"
	tar -xzf "$DL/tfjs-tflite-node-0.0.2.tgz" -C "$DL/tfjs" || die "could not unpack tfjs-tflite-node-0.0.2.tgz"
fi
install_file "$DL/tfjs/package/cc_deps/linux_amd64/libtensorflowlite_c.so" "$DEPS/tflite/2.9/lib/libtensorflowlite_c.so" \
	dc89b4cd86d956516570bd483668e6dd98907f49901d0567dedc69a29a56b7f7
for h in c_api.h common.h c_api_types.h; do
	src="$DL/tfjs/package/cc_deps/include/tensorflow/lite/c/$h"
	[ -f "$DEPS/tflite/include/tensorflow/lite/c/$h" ] || cp "$src" "$DEPS/tflite/include/tensorflow/lite/c/$h"
done

# 3. Models and test inputs: the Go module github.com/mattn/go-tflite@v1.0.1 (its zip is
#    checked against go.sum / the checksum database by the go command).
GOTFLITE_DIR="$(cd "$ROOT" && go mod download -json github.com/mattn/go-tflite@v1.0.1 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -n "$GOTFLITE_DIR" ] && [ -d "$GOTFLITE_DIR" ] ||
	die "could not fetch Go module github.com/mattn/go-tflite@v1.0.1 from the Go module proxy"
E="$GOTFLITE_DIR/_example"
install_file "$E/label_image/mobilenet_quant_v1_224.tflite" "$DEPS/models/mobilenet_quant_v1_224.tflite" c4149e63f56056d9a564ceed1d96a84d7a50d90b0ff1da01f72afabe752ef097
install_file "$E/label_image/labels.txt" "$DEPS/models/mobilenet_labels.txt" 536feacc519de3d418de26b2effb4d75694a8c4c0063e36499a46fa8061e2da9
install_file "$E/label_image/peacock.png" "$DEPS/models/peacock.png" 4c416dc4cf757f523070d746f332ba8563d284570b683b2799bf4216048a77dc
install_file "$E/ssd/detect.tflite" "$DEPS/models/ssd_detect.tflite" e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13
install_file "$E/ssd/labelmap.txt" "$DEPS/models/ssd_labelmap.txt" c7e79c855f73cbba9f33d649d60e1676eb0a974021a41696d1ac0d4b7f7e0211
install_file "$E/ssd/example.jpg" "$DEPS/models/ssd_example.jpg" eb2d4bc00e4c69cb95c256179092f8d45a8d610e4f5a5ed3dfe8d3a69097e456
install_file "$E/segment/deeplabv3_257_mv_gpu.tflite" "$DEPS/models/deeplabv3_257_mv_gpu.tflite" 68a539782c2c6a72f8aac3724600124a85ed977162b44e84cbae5db717c933c6

# 4. MediaPipe face detection (short range): npm @mediapipe/face_detection.
fetch_npm @mediapipe/face_detection 0.4.1657300184 mediapipe-face_detection-0.4.1657300184.tgz a118cde74923dc4435257fbfbb613464a0f58d115dff6314d4ff96c8aebf6419
if ! [ -f "$DEPS/models/face_detection_short_range.tflite" ]; then
	rm -rf "$DL/facedet" && mkdir -p "$DL/facedet"
	tar -xzf "$DL/mediapipe-face_detection-0.4.1657300184.tgz" -C "$DL/facedet" package/face_detection_short_range.tflite
fi
install_file "$DL/facedet/package/face_detection_short_range.tflite" "$DEPS/models/face_detection_short_range.tflite" \
	3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633

# 5. A wasm32-wasi C toolchain without root or apt: PyPI ziglang 0.17.0 bundles clang, lld,
#    wasi-libc and compiler-rt. The wrappers keep zig's caches inside .deps/.
ZIGWHEEL=ziglang-0.17.0-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl
ZIGSUM=97079827064a7492cce5541ceb438ae8003ce1e54e399676da2d62fb7a5dc08b
if ! [ -x "$DEPS/zig/ziglang/zig" ] || ! [ -f "$DEPS/zig/.ok" ] || [ "$(cat "$DEPS/zig/.ok")" != "$ZIGSUM" ]; then
	if [ -f "$DL/$ZIGWHEEL" ]; then check "$DL/$ZIGWHEEL" "$ZIGSUM"; else
		say "fetching ziglang==0.17.0 from PyPI (pip download; ~100 MB, a C toolchain for wasm32-wasi)"
		python3 -m pip download --no-deps --only-binary=:all: --platform manylinux_2_12_x86_64 \
			--python-version 3.11 --progress-bar on -d "$DL" "ziglang==0.17.0" >&2 ||
			die "could not fetch ziglang==0.17.0 from PyPI (pip download); check the PyPI registry is reachable"
		[ -f "$DL/$ZIGWHEEL" ] || die "PyPI package ziglang==0.17.0 did not contain $ZIGWHEEL"
		check "$DL/$ZIGWHEEL" "$ZIGSUM"
	fi
	rm -rf "$DEPS/zig" && mkdir -p "$DEPS/zig"
	python3 -m zipfile -e "$DL/$ZIGWHEEL" "$DEPS/zig" || die "could not unpack $ZIGWHEEL"
	chmod +x "$DEPS/zig/ziglang/zig"
	echo "$ZIGSUM" > "$DEPS/zig/.ok"
fi
mkdir -p "$DEPS/bin"
for w in wasi:wasm32-wasi wasm32:wasm32-freestanding; do
	name=${w%%:*}; target=${w#*:}
	[ "$name" = wasi ] && name=wasi-cc || name=wasm32-cc
	# The wrapper finds zig relative to itself, so .deps/ can be moved, copied or shared.
	cat > "$DEPS/bin/$name.tmp" <<WRAP
#!/bin/sh
# Written by scripts/deps.sh: zig's clang for $target, caches kept in .deps/zig-cache.
d=\$(cd "\$(dirname "\$0")/.." && pwd)
ZIG_GLOBAL_CACHE_DIR="\$d/zig-cache" ZIG_LOCAL_CACHE_DIR="\$d/zig-cache" exec "\$d/zig/ziglang/zig" cc -target $target "\$@"
WRAP
	chmod +x "$DEPS/bin/$name.tmp" && mv "$DEPS/bin/$name.tmp" "$DEPS/bin/$name"
done
"$DEPS/bin/wasi-cc" --version >/dev/null 2>&1 || die "the zig toolchain in .deps/zig does not run (zig cc --version failed)"

say "ok: TFLite 2.17.1 and 2.9.0 in .deps/tflite, models in .deps/models, wasm32 C toolchain in .deps/bin"

#!/usr/bin/env bash
# release.sh VERSION ARCH... writes dist/edgehost-VERSION-linux-ARCH.tar.gz for each ARCH
# (amd64, arm64, armhf) from bin/linux-ARCH/edgehost (make build ARCH=...), that
# architecture's TFLite library, the example plugins and the bundled models. `make release`
# calls it. Reproducible: files in name order, mtimes from the last commit, owner 0:0, gzip
# without a name or time; the same tree gives byte-identical archives (and dist/SHA256SUMS).
#
# An archive unpacks to edgehost-VERSION-linux-ARCH/:
#   bin/edgehost                     RUNPATH $ORIGIN/../lib: runs from wherever it is unpacked
#   lib/libtensorflowlite_c.so       TF 2.17.1 for that architecture
#   plugins/*.wasm, models/*         what config.toml names (paths relative to the config file)
#   config.toml                      the repository's, paths rewritten for this layout
#   edgehost.service                 deploy/systemd's unit (expects /opt/edgehost)
#   README.md                        the README's "Running on a Raspberry Pi / Jetson" section
#   THIRD_PARTY.txt                  every third-party file: origin, version, sha256; Go modules
set -euo pipefail
VERSION=${1:?usage: release.sh VERSION ARCH...}
shift
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DIST="$ROOT/dist"
EPOCH="$(git log -1 --format=%ct)"
die() { printf 'release: ERROR: %s\n' "$*" >&2; exit 1; }

PLUGINS=(imagepre-c imagepre-go classify-c classify-go ssd-c ssd-go segment-rust)
# file  origin (package, version)
MODELS=(
	"mobilenet_quant_v1_224.tflite|Go module github.com/mattn/go-tflite v1.0.1 (_example/label_image)"
	"mobilenet_labels.txt|Go module github.com/mattn/go-tflite v1.0.1 (_example/label_image/labels.txt)"
	"peacock.png|Go module github.com/mattn/go-tflite v1.0.1 (_example/label_image)"
	"ssd_detect.tflite|Go module github.com/mattn/go-tflite v1.0.1 (_example/ssd/detect.tflite)"
	"ssd_labelmap.txt|Go module github.com/mattn/go-tflite v1.0.1 (_example/ssd/labelmap.txt)"
	"ssd_example.jpg|Go module github.com/mattn/go-tflite v1.0.1 (_example/ssd/example.jpg)"
	"deeplabv3_257_mv_gpu.tflite|Go module github.com/mattn/go-tflite v1.0.1 (_example/segment)"
)

mkdir -p "$DIST"
for ARCH in "$@"; do
	case $ARCH in
	amd64) lib=.deps/tflite/2.17/lib; wheel=manylinux_2_35_x86_64 ;;
	arm64) lib=.deps/tflite/2.17-arm64/lib; wheel=manylinux_2_35_aarch64 ;;
	armhf) lib=.deps/tflite/2.17-armhf/lib; wheel=manylinux_2_35_armv7l ;;
	*) die "unknown ARCH $ARCH" ;;
	esac
	name="edgehost-$VERSION-linux-$ARCH"
	stage="$DIST/.stage/$name"
	rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib" "$stage/plugins" "$stage/models"
	[ -x "bin/linux-$ARCH/edgehost" ] || die "bin/linux-$ARCH/edgehost missing: make build ARCH=$ARCH"
	install -m 0755 "bin/linux-$ARCH/edgehost" "$stage/bin/edgehost"
	install -m 0644 "$lib/libtensorflowlite_c.so" "$stage/lib/"
	for p in "${PLUGINS[@]}"; do
		[ -f "plugins/examples/$p/$p.wasm" ] || die "plugins/examples/$p/$p.wasm missing: make plugins"
		install -m 0644 "plugins/examples/$p/$p.wasm" "$stage/plugins/"
	done
	for m in "${MODELS[@]}"; do install -m 0644 ".deps/models/${m%%|*}" "$stage/models/"; done
	# config.toml with this layout's paths (relative to the config file).
	sed -e 's|"\.deps/models/|"models/|g' -e 's|"plugins/examples/[^/"]*/\([^/"]*\.wasm\)"|"plugins/\1"|g' \
		config.toml >"$stage/config.toml"
	if [ "$ARCH" = armhf ]; then
		# wazero's interpreter (no compiler for 32-bit ARM) is 33-73x slower than the compiler
		# on the example pre plugins (RATIONALE.md, "Interpreter fallback"): 10 s budgets.
		awk '/^\[pipelines\.[^]]*\.(pre|post)\]/ { print; print "timeout_ms = 10000              # armhf: wazero interpreter, 33-73x slower than its compiler"; next }
			/^timeout_ms[[:space:]]*=/ { next } { print }' "$stage/config.toml" >"$stage/config.toml.tmp"
		mv "$stage/config.toml.tmp" "$stage/config.toml"
	fi
	if grep -n '\.deps/\|plugins/examples/' "$stage/config.toml" | grep -v '^[0-9]*:\s*#'; then
		die "config.toml names a path the archive does not have (above)"
	fi
	chmod 0644 "$stage/config.toml"
	install -m 0644 deploy/systemd/edgehost.service "$stage/edgehost.service"
	{
		echo "# edgehost $VERSION for linux/$ARCH"
		echo
		echo "The full README: https://github.com/edgehost/edgehost (README.md); this is its section on boards."
		echo
		awk '/^## Running on a Raspberry Pi/{on=1; print; next} on && /^## /{exit} on' README.md
	} >"$stage/README.md"
	chmod 0644 "$stage/README.md"
	{
		echo "Third-party files in $name, with where each comes from (fetched by scripts/deps.sh,"
		echo "scripts/deps-arch.sh; pinned by sha256 there) and its sha256."
		echo
		printf '%s  %s  %s\n' "$(sha256sum "$stage/lib/libtensorflowlite_c.so" | cut -d' ' -f1)" lib/libtensorflowlite_c.so \
			"TensorFlow Lite 2.17.1 C library, Apache-2.0; from PyPI pymicro-wakeword 2.5.0 ($wheel wheel)"
		for m in "${MODELS[@]}"; do
			printf '%s  %s  %s\n' "$(sha256sum "$stage/models/${m%%|*}" | cut -d' ' -f1)" "models/${m%%|*}" "${m#*|}"
		done
		echo
		echo "Go toolchain and modules linked into bin/edgehost (go version -m; h1: hashes as in go.sum):"
		go version "$stage/bin/edgehost" | sed 's/^[^:]*: /  Go standard library and runtime: /'
		go version -m "$stage/bin/edgehost" | sed -n 's/^[[:space:]]*\(dep\|=>\)[[:space:]]*/  /p'
		echo
		echo "Own files (built from this repository at $(git rev-parse HEAD)):"
		(cd "$stage" && find bin plugins config.toml edgehost.service README.md -type f | LC_ALL=C sort | xargs sha256sum | sed 's/^/  /')
	} >"$stage/THIRD_PARTY.txt"
	chmod 0644 "$stage/THIRD_PARTY.txt"
	find "$stage" -type d -exec chmod 0755 {} +
	(cd "$DIST/.stage" && tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
		--format=gnu -cf - "$name" | gzip -n -9 >"$DIST/$name.tar.gz.tmp")
	mv "$DIST/$name.tar.gz.tmp" "$DIST/$name.tar.gz"
	rm -rf "$stage"
	printf 'release: %s (%s bytes)\n' "dist/$name.tar.gz" "$(stat -c %s "$DIST/$name.tar.gz")" >&2
done
rmdir "$DIST/.stage" 2>/dev/null || true
(cd "$DIST" && sha256sum edgehost-"$VERSION"-linux-*.tar.gz >SHA256SUMS)

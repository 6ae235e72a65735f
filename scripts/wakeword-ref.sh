#!/usr/bin/env bash
# wakeword-ref.sh makes the wake-word reference data (`make wakeword-ref`):
#   .deps/espeak-ng/          espeak-ng 1.51 and the libraries it loads, from Debian 12's archive
#                             (apt-get download + dpkg-deb -x, no root), pinned by version and sha256
#   .deps/wakeword-venv/      pymicro-wakeword 2.5.0 + pymicro-features 2.0.2 + numpy 2.2.6
#                             (pip --require-hashes, tools/wakeword/requirements.txt)
#   .deps/wakeword-ref/*.wav  the test clips (tools/wakeword/make_audio.py: espeak-ng, resampled
#                             once to 16 kHz by numpy, silence, seeded noise)
#   .deps/wakeword-ref/*.ref.jsonl  pymicro-wakeword's per-chunk features, outputs, detections
# host/pipeline's TestWakewordReference compares edgehost's wakeword pipeline with them.
# Idempotent: a finished run leaves .deps/wakeword-ref/.ok and is not repeated.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads/deb"
OUT="$DEPS/wakeword-ref"
STAMP="espeak-ng=1.51+dfsg-10+deb12u2 $(sha256sum "$ROOT/tools/wakeword/"*.py "$ROOT/tools/wakeword/requirements.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/.ok" 2>/dev/null)" = "$STAMP" ]; then exit 0; fi
mkdir -p "$DL"
# shellcheck source=apt-private.sh
. "$ROOT/scripts/apt-private.sh"
say() { printf 'wakeword-ref: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# PACKAGE VERSION SHA256: espeak-ng, and what it loads that a base system lacks (libpcaudio
# links PulseAudio, which links libsndfile and its codecs; -w writes a file, nothing plays).
DEBS="
espeak-ng 1.51+dfsg-10+deb12u2 a11396a690f85f55e6e6b2965505237ddf3dc95c51936aa61de936f1ccf8f4d0
libespeak-ng1 1.51+dfsg-10+deb12u2 2b127a95b50d92cbd7a615968d2ac1566e1cbc87e27bcda0c2894afb2407c6d2
espeak-ng-data 1.51+dfsg-10+deb12u2 573f5661c6a5adcf949018baad158c4c773bf5579390ee5235a890f1cd694106
libpcaudio0 1.2-2 5309759e4d129c7d9a601240cc6e62820ecfa86a1a98e207992ffa6a572dbcd2
libsonic0 0.2.0-12 9d60de6918ace0b10e3e4e95421befd08aaf03b5b2a3d71ceb799e0cf259916f
libpulse0 16.1+dfsg1-2+b1 7b2c5403cb726312219aad678becc6d6adcee1d8694fdffce0b6ec15ae010831
libasyncns0 0.8-6+b3 cadaff99f4178b1f580331045621b363abaaefc994e78eecba1857774a3cead2
libsndfile1 1.2.0-1+deb12u1 02dc3f08fe8476e82e005f412e3b7289ff641180f33a9be8073f4bde61c85e8e
libflac12 1.4.2+ds-2 4d8431c274eef13ec9ee2c0bf988c34b4342367dec053b7f69a432525be5b1fe
libvorbis0a 1.3.7-1 01c14f9d1109650077a4c5c337c285476a6932d4d448f5a190c2b845724dbf21
libvorbisenc2 1.3.7-1 75dd4d6f904c7db82f5112e60d8efea9e81dfedf94e970c5da7af2b3d81643c0
libopus0 1.3.1-3 c172e212f9039e741916aa8e12f3670d1e049dc0c16685325641288c2d83faa7
libogg0 1.3.5-3 f67acb0477aed0354f411172e37af338f3ac6bd4f3766134a2cf5539884b5a28
libmpg123-0 1.31.2-1+deb12u1 a10ad0d59995b859797a5f20d2833672051d0b2c7dab4c71f2e79258b2e3f631
libmp3lame0 3.100-6 b1292c749172e7623547ecf684da57d3ec6ca22109f08b11bbb9e6be6e6beb95
"
if ! [ -f "$DEPS/espeak-ng/.ok" ]; then
	rm -rf "$DEPS/espeak-ng.tmp" && mkdir -p "$DEPS/espeak-ng.tmp"
	while read -r pkg version sum; do
		[ -n "$pkg" ] || continue
		file="${pkg}_${version//:/%3a}_amd64.deb"
		if ! [ -f "$DL/$file" ]; then
			say "fetching $pkg=$version from the Debian archive (apt-get download)"
			apt_fetch "$DL" "$pkg=$version" >&2 || die "could not fetch $pkg=$version"
		fi
		[ "$(sha256sum "$DL/$file" | cut -d' ' -f1)" = "$sum" ] || die "sha256 mismatch for $file: want $sum (delete it and run again)"
		dpkg-deb -x "$DL/$file" "$DEPS/espeak-ng.tmp" || die "could not unpack $file"
	done <<<"$DEBS"
	rm -rf "$DEPS/espeak-ng" && mv "$DEPS/espeak-ng.tmp" "$DEPS/espeak-ng" && touch "$DEPS/espeak-ng/.ok"
fi
LIB="$DEPS/espeak-ng/usr/lib/x86_64-linux-gnu"
cat >"$DEPS/espeak-ng/espeak-ng" <<EOS
#!/bin/sh
LD_LIBRARY_PATH="$LIB:$LIB/pulseaudio" exec "$DEPS/espeak-ng/usr/bin/espeak-ng" "\$@"
EOS
chmod +x "$DEPS/espeak-ng/espeak-ng"

V="$DEPS/wakeword-venv"
if ! [ -f "$V/.ok" ] || ! cmp -s "$V/.ok" "$ROOT/tools/wakeword/requirements.txt"; then
	rm -rf "$V" && python3 -m venv "$V"
	"$V/bin/pip" install -q --disable-pip-version-check --require-hashes --only-binary=:all: --no-deps \
		-r "$ROOT/tools/wakeword/requirements.txt" || die "pip install (PyPI) failed"
	cp "$ROOT/tools/wakeword/requirements.txt" "$V/.ok"
fi

rm -rf "$OUT" && mkdir -p "$OUT"
"$V/bin/python" "$ROOT/tools/wakeword/make_audio.py" "$DEPS/espeak-ng/espeak-ng" "$LIB/espeak-ng-data" "$OUT"
"$V/bin/python" "$ROOT/tools/wakeword/reference.py" "$OUT" 2>&1 | grep -v '^INFO:' >&2
echo "$STAMP" >"$OUT/.ok"

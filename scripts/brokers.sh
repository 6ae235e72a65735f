#!/usr/bin/env bash
# brokers.sh fetches the two servers the MQTT and OCI tests run against, from Debian 12's
# archive without root (apt-get download + dpkg-deb -x), pinned by version and sha256:
#   .deps/mosquitto/usr/sbin/mosquitto            mosquitto 2.0.11 (MQTT 5 broker)
#   .deps/mosquitto/usr/bin/mosquitto_{pub,sub}   the command-line clients (README examples)
#   .deps/mosquitto/usr/lib/x86_64-linux-gnu/     libraries not in a base system (libwrap0, libdlt2,
#                                                 libmosquitto1, libcjson1)
#   .deps/registry/usr/bin/docker-registry        docker-registry 2.8.2 (OCI distribution registry)
#   .deps/jpegtools/usr/bin/jpegtran              libjpeg-turbo 2.1.5 tools, with .deps/bin/jpegtran as
#                                                 a wrapper: the progressive-JPEG tests transcode with it
# Idempotent and offline once done. `make brokers` calls it (and `make test` calls that); a
# failed fetch is not fatal: it prints why and the tests that need a server skip, saying so.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
DL="$DEPS/downloads/deb"
mkdir -p "$DL"

# shellcheck source=apt-private.sh
. "$ROOT/scripts/apt-private.sh"
say() { printf 'brokers: %s\n' "$*" >&2; }

# fetch PACKAGE VERSION SHA256 DEST: the .deb of PACKAGE=VERSION from the Debian archive,
# checked, unpacked into DEST. Returns non-zero (with a message) on any failure.
fetch() {
	local pkg=$1 version=$2 sum=$3 dest=$4
	local file="${pkg}_${version//:/%3a}_amd64.deb"
	if ! [ -f "$DL/$file" ]; then
		say "fetching $pkg=$version from the Debian archive (apt-get download)"
		apt_fetch "$DL" "$pkg=$version" 2>"$DL/$pkg.err" || {
			say "could not fetch $pkg=$version: $(tail -1 "$DL/$pkg.err")"; return 1; }
	fi
	local got
	got="$(sha256sum "$DL/$file" | cut -d' ' -f1)"
	if [ "$got" != "$sum" ]; then
		say "sha256 mismatch for $file: want $sum, got $got (delete it and run make brokers again)"
		rm -f "$DL/$file"; return 1
	fi
	mkdir -p "$dest" && dpkg-deb -x "$DL/$file" "$dest" || { say "could not unpack $file"; return 1; }
}

ok=0
if ! [ -x "$DEPS/mosquitto/usr/bin/mosquitto_pub" ] || ! [ -f "$DEPS/mosquitto/.ok" ]; then
	rm -rf "$DEPS/mosquitto.tmp"
	if fetch mosquitto 2.0.11-1.2+deb12u2 a49e90d58d84bded78b96f09aece0e3a3dd432fb4b0620ef5012f3718094c24b "$DEPS/mosquitto.tmp" &&
		fetch libwrap0 7.6.q-32 cbce2669a3ba4d74cfdc52b14f38014893e23d85a33d109a3422c342eefc55f8 "$DEPS/mosquitto.tmp" &&
		fetch libdlt2 2.18.8-6 4ae1785ddcfdd94a7ed70a180bb73d09b9fca2f6af815b27fe64e726a30a86f4 "$DEPS/mosquitto.tmp" &&
		fetch mosquitto-clients 2.0.11-1.2+deb12u2 a51d89c0185d4d4af752eabdfcd0c02682799e4903d40fa1a6c240a9a804b664 "$DEPS/mosquitto.tmp" &&
		fetch libmosquitto1 2.0.11-1.2+deb12u2 91aaf63e3ce4cafdbeaf33be4111917ff8095870701d9693d094a9716330992f "$DEPS/mosquitto.tmp" &&
		fetch libcjson1 1.7.15-1+deb12u4 ae043c62e2740072f3c5cc0324ec36659331208f2155de74c89a24801627338c "$DEPS/mosquitto.tmp"; then
		rm -rf "$DEPS/mosquitto" && mv "$DEPS/mosquitto.tmp" "$DEPS/mosquitto" && touch "$DEPS/mosquitto/.ok"
	else
		rm -rf "$DEPS/mosquitto.tmp"; ok=1
	fi
fi
if ! [ -x "$DEPS/registry/usr/bin/docker-registry" ] || ! [ -f "$DEPS/registry/.ok" ]; then
	rm -rf "$DEPS/registry.tmp"
	if fetch docker-registry 2.8.2+ds1-1 a9bd06c0e006854608f8469b4371743f40604ad90975532bb3b7ceeb72fe2913 "$DEPS/registry.tmp"; then
		rm -rf "$DEPS/registry" && mv "$DEPS/registry.tmp" "$DEPS/registry" && touch "$DEPS/registry/.ok"
	else
		rm -rf "$DEPS/registry.tmp"; ok=1
	fi
fi
if ! [ -x "$DEPS/jpegtools/usr/bin/jpegtran" ] || ! [ -f "$DEPS/jpegtools/.ok" ]; then
	rm -rf "$DEPS/jpegtools.tmp"
	if fetch libjpeg-turbo-progs 1:2.1.5-2 6a4a7c3923a7a0266809d33c8faa6fb15ff4915cba410d630b3c3e2e0cd1d2d7 "$DEPS/jpegtools.tmp" &&
		fetch libjpeg62-turbo 1:2.1.5-2 95ec30140789a342add8f8371ed018924de51b539056522b66f207b25cba9cad "$DEPS/jpegtools.tmp"; then
		rm -rf "$DEPS/jpegtools" && mv "$DEPS/jpegtools.tmp" "$DEPS/jpegtools" && touch "$DEPS/jpegtools/.ok"
		mkdir -p "$DEPS/bin"
		cat > "$DEPS/bin/jpegtran" <<'EOF'
#!/bin/sh
d="$(cd "$(dirname "$0")/../jpegtools" && pwd)"
LD_LIBRARY_PATH="$d/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/usr/bin/jpegtran" "$@"
EOF
		chmod +x "$DEPS/bin/jpegtran"
	else
		rm -rf "$DEPS/jpegtools.tmp"; ok=1
	fi
fi
[ $ok = 0 ] || say "some servers could not be fetched: the MQTT/OCI tests that need them will skip"
exit 0

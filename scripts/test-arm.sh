#!/usr/bin/env bash
# test-arm.sh VERSION: `make test-arm`. Unpacks dist/edgehost-VERSION-linux-{amd64,arm64,armhf}.tar.gz
# as a user would (and the OCI image's arm64 root filesystem: same answers as the arm64
# archive, on the image's own glibc), serves each under the emulation profile (below) and sends every shipped
# pipeline its bundled input over HTTP: amd64 natively, arm64 and armhf under Debian's
# qemu-user-static (.deps/emu, scripts/deps-emu.sh). Then compares with amd64:
#   classify, classify-go, segment   byte-identical JSON
#   detect                           the same detections (labels, order), each score within
#                                    3/256 (three uint8 quantisation steps) and each box edge
#                                    within 24 px of amd64's (XNNPACK on and off differ that
#                                    much on amd64 itself: RATIONALE.md, "ARM builds")
# armhf's TFLite has no XNNPACK C API, so it runs TFLite's own kernels: its reference is amd64's
# archive served with xnnpack = false (XNNPACK's quantised kernels round differently: with it,
# amd64 says peacock 0.980469, without it and on armhf 0.984375).
# No root: an unprivileged user + mount namespace mounts its own binfmt_misc (kernel >= 6.7)
# and registers qemu there, so edgehost's model-probe child (a re-exec of itself) runs too.
# Where the kernel refuses, it says so and falls back to running edgehost under qemu
# directly, with EDGEHOST_PROBE_EMULATOR telling edgehost to start its probe through qemu
# (TEST_ARM_NO_BINFMT=1 takes that path on purpose).
set -euo pipefail
VERSION=${1:?usage: test-arm.sh VERSION}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EMU="$ROOT/.deps/emu"
T="$(mktemp -d "${TMPDIR:-/tmp}/edgehost-test-arm.XXXXXX")"
# The logs, /status answers and outputs stay in dist/test-arm/ (replaced at every run).
trap 'rm -rf "$ROOT/dist/test-arm"; [ -d "$T/out" ] && cp -r "$T/out" "$ROOT/dist/test-arm"; rm -rf "$T"' EXIT
say() { printf 'test-arm: %s\n' "$*" >&2; }
die() { printf 'test-arm: FAIL: %s\n' "$*" >&2; exit 1; }
ARCHS=(amd64 arm64 armhf)
declare -A QEMU=([arm64]=qemu-aarch64-static [armhf]=qemu-arm-static)
# The ELF headers binfmt_misc matches (Debian's qemu-user-binfmt entries): EM_AARCH64, EM_ARM.
declare -A MAGIC=(
	[arm64]='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
	[armhf]='\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00')
declare -A MASK=(
	[arm64]='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
	[armhf]='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff')

for a in "${ARCHS[@]}"; do
	mkdir -p "$T/$a"
	tar -xzf "$ROOT/dist/edgehost-$VERSION-linux-$a.tar.gz" -C "$T/$a"
	d="$T/$a/edgehost-$VERSION-linux-$a"
	# The emulation profile: the shipped config with budgets for a machine ~100x slower
	# (a plugin's 1 s default is spent by a Go guest's start-up alone under qemu).
	awk '/^\[pipelines\.[^]]*\.(pre|post)\]/ { print; print "timeout_ms = 300000"; next }
		/^timeout_ms[[:space:]]*=/ { next }
		/^queue_timeout[[:space:]]*=/ { print "queue_timeout = \"600s\""; next }
		/^request_timeout[[:space:]]*=/ { print "request_timeout = \"600s\""; next }
		/^address[[:space:]]*=/ { print "address = \"127.0.0.1:PORT\""; next }
		{ print }' "$d/config.toml" >"$d/emulation.toml"
	if [ "$a" != amd64 ]; then
		printf '#!/bin/sh\nexec %s -L %s "$@"\n' "$EMU/qemu/usr/bin/${QEMU[$a]}" "$EMU/sysroot-$a" >"$T/qemu-$a"
		chmod +x "$T/qemu-$a"
	fi
done

# armhf's library has no XNNPACK: its reference is amd64 without XNNPACK (TFLite's own kernels).
d="$T/amd64/edgehost-$VERSION-linux-amd64"
sed 's/^xnnpack = true/xnnpack = false/' "$d/emulation.toml" >"$d/emulation-noxnnpack.toml"

# serve NAME DIR [CONFIG]: start DIR/bin/edgehost, wait for /v2/health/ready, send each
# pipeline its input, write $T/out/NAME.PIPELINE, stop it. Runs inside the namespace for the
# ARM builds.
cat >"$T/serve.sh" <<'SERVE'
set -euo pipefail
n=$1 d=$2 cfg=$2/${3:-emulation.toml}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/127.0.0.1:PORT/127.0.0.1:$port/" "$cfg"
mkdir -p "$T/out"
start=$SECONDS
$PREFIX "$d/bin/edgehost" --config "$cfg" serve >"$T/out/$n.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null; do
	kill -0 $pid 2>/dev/null || { cat "$T/out/$n.log" >&2; echo "edgehost ($n) exited before ready" >&2; exit 1; }
	[ $((SECONDS - start)) -lt 600 ] || { echo "edgehost ($n) not ready after 600 s" >&2; exit 1; }
	sleep 1
done
ready=$((SECONDS - start)) times=""
curl -sf "http://127.0.0.1:$port/status" >"$T/out/$n.status"
for p in classify:peacock.png classify-go:peacock.png detect:ssd_example.jpg segment:ssd_example.jpg; do
	t0=$SECONDS
	curl -sSf --data-binary "@$d/models/${p#*:}" "http://127.0.0.1:$port/v1/pipelines/${p%%:*}" >"$T/out/$n.${p%%:*}" ||
		{ cat "$T/out/$n.log" >&2; echo "$n ${p%%:*}: request failed" >&2; exit 1; }
	times="$times, ${p%%:*} $((SECONDS - t0)) s"
done
echo "$n: ready in $ready s$times; wasm engine $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wasm_engine"])' "$T/out/$n.status")" >>"$T/out/times"
SERVE

# inner NAME DIR WRAPPER: inside the user+mount namespace; mount binfmt_misc, register the
# qemu WRAPPER for MAGIC_A/MASK_A, serve.
cat >"$T/inner.sh" <<'INNER'
set -euo pipefail
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf ':edgehost-%s:M::%s:%s:%s:F' "$1" "$MAGIC_A" "$MASK_A" "$3" >/proc/sys/fs/binfmt_misc/register
PREFIX= bash "$T/serve.sh" "$1" "$2"
INNER

# The OCI image's arm64 root filesystem (make release: dist/edgehost-VERSION-oci), its layers
# unpacked in order; served with the image's own glibc (qemu -L the root) on its own config.
R="$T/image-arm64"
python3 - "$ROOT/dist/edgehost-$VERSION-oci" "$R" <<'UNPACK'
import json, os, sys, tarfile
lay, root = sys.argv[1], sys.argv[2]
blob = lambda d: os.path.join(lay, "blobs", "sha256", d.split(":")[1])
top = json.load(open(os.path.join(lay, "index.json")))["manifests"][0]
idx = json.load(open(blob(top["digest"])))
man = next(m for m in idx["manifests"] if m["platform"]["architecture"] == "arm64")
for l in json.load(open(blob(man["digest"])))["layers"]:
    with tarfile.open(blob(l["digest"])) as t:
        t.extractall(root, filter="tar") if hasattr(tarfile, "data_filter") else t.extractall(root)
UNPACK
# cache_dir: the arm64 archive's (same binary, same plugins), so the image's run skips the
# model probes and the plugin compilation the arm64 run did under qemu (half its start-up).
sed -e 's|^address = .*|address = "127.0.0.1:PORT"|' -e "s|/tmp/edgehost-cache|$T/arm64/edgehost-$VERSION-linux-arm64/.cache/wazero|" \
	-e 's|^timeout_ms[[:space:]]*=.*||' -e 's|^\(\[pipelines\.[^]]*\.\(pre\|post\)\]\)$|\1\ntimeout_ms = 300000|' \
	-e 's|^queue_timeout[[:space:]]*=.*|queue_timeout = "600s"|' "$R/opt/edgehost/config.toml" >"$R/opt/edgehost/emulation.toml"
printf '#!/bin/sh\nexec %s -L %s "$@"\n' "$EMU/qemu/usr/bin/qemu-aarch64-static" "$R" >"$T/qemu-image"
chmod +x "$T/qemu-image"

export T VERSION
PREFIX= bash "$T/serve.sh" amd64 "$T/amd64/edgehost-$VERSION-linux-amd64"
PREFIX= bash "$T/serve.sh" amd64-noxnnpack "$T/amd64/edgehost-$VERSION-linux-amd64" emulation-noxnnpack.toml
binfmt=yes
if [ -n "${TEST_ARM_NO_BINFMT:-}" ]; then
	binfmt=no
	say "TEST_ARM_NO_BINFMT set: running the ARM builds under qemu directly, the model probe through EDGEHOST_PROBE_EMULATOR"
elif ! unshare --user --map-root-user --mount sh -c 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc' 2>"$T/unshare.err"; then
	binfmt=no
	say "the kernel refused a binfmt_misc of our own ($(tail -1 "$T/unshare.err")): running the ARM builds under qemu directly, the model probe through EDGEHOST_PROBE_EMULATOR"
fi
for run in arm64:arm64:"$T/arm64/edgehost-$VERSION-linux-arm64":"$T/qemu-arm64" \
	armhf:armhf:"$T/armhf/edgehost-$VERSION-linux-armhf":"$T/qemu-armhf" \
	image-arm64:arm64:"$R/opt/edgehost":"$T/qemu-image"; do
	IFS=: read -r n a d w <<<"$run"
	if [ $binfmt = yes ]; then
		MAGIC_A=${MAGIC[$a]} MASK_A=${MASK[$a]} unshare --user --map-root-user --mount bash "$T/inner.sh" "$n" "$d" "$w"
	else
		EDGEHOST_PROBE_EMULATOR="$w" PREFIX="$w" bash "$T/serve.sh" "$n" "$d"
	fi
done

# Compare with amd64.
python3 - "$T/out" <<'CMP'
import json, sys
out = sys.argv[1]
def load(a, p):
    return open(f"{out}/{a}.{p}", "rb").read()
fails = []
for a, r in (("arm64", "amd64"), ("armhf", "amd64-noxnnpack")):
    for p in ("classify", "classify-go", "segment"):
        if load(a, p) != load(r, p):
            fails.append(f"{a} {p}: differs from {r}:\n  {r} {load(r, p)[:300]!r}\n  {a} {load(a, p)[:300]!r}")
        else:
            print(f"test-arm: {a} {p}: identical to {r} ({len(load(a, p))} bytes)")
    ref = json.loads(load(r, "detect"))["detections"]
    got = json.loads(load(a, "detect"))["detections"]
    worst_s = worst_b = 0.0
    if [d["label"] for d in ref] != [d["label"] for d in got]:
        fails.append(f"{a} detect: labels {[d['label'] for d in got]}, {r} {[d['label'] for d in ref]}")
    else:
        for want, g in zip(ref, got):
            worst_s = max(worst_s, abs(want["score"] - g["score"]))
            worst_b = max(worst_b, max(abs(x - y) for x, y in zip(want["box"], g["box"])))
        if worst_s > 3 / 256 + 1e-6 or worst_b > 24:
            fails.append(f"{a} detect: scores up to {worst_s:.4f} apart (max 3/256), box edges up to {worst_b:.1f} px (max 24)")
        else:
            print(f"test-arm: {a} detect: {len(got)} detections as {r}, scores within {worst_s:.4f} (≤ 3/256), box edges within {worst_b:.1f} px (≤ 24)")
for p in ("classify", "classify-go", "detect", "segment"):
    if load("image-arm64", p) != load("arm64", p):
        fails.append(f"image-arm64 {p}: differs from the arm64 archive's answer")
    else:
        print(f"test-arm: image-arm64 {p}: identical to the arm64 archive's answer")
if fails:
    print("\n".join("test-arm: FAIL: " + f for f in fails), file=sys.stderr)
    sys.exit(1)
CMP
sed 's/^/test-arm: /' "$T/out/times"
say "ok (binfmt_misc in a user namespace: $binfmt)"

#!/usr/bin/env bash
# deps-vulkan.sh fetches a software Vulkan stack for the GPU test, without root and without
# touching the system: Mesa 25.0.7's lavapipe from bookworm-backports (Debian 12's own Mesa
# 22.3.6 is refused by Dawn: "shaderUniform*ArrayDynamicIndexing required"), the Vulkan loader
# and the libraries lavapipe needs that Debian 12 does not have at those versions. apt runs on
# a private state (scripts/apt-private.sh: the machine's archive plus its backports, no lock, no install); each .deb
# is pinned by version and sha256 and unpacked with dpkg-deb -x into .deps/vulkan/root.
# Use: VK_ICD_FILENAMES=.deps/vulkan/lvp_icd.json LD_LIBRARY_PATH=.deps/vulkan/root/usr/lib/x86_64-linux-gnu
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
V="$ROOT/.deps/vulkan"
say() { printf 'deps-vulkan: %s\n' "$*" >&2; }
die() { printf 'deps-vulkan: ERROR: %s\n' "$*" >&2; exit 1; }

# package=version sha256 (the Packages files' digests, checked again here)
DEBS=(
	"mesa-vulkan-drivers=25.0.7-2~bpo12+1 3899f1800424c60a05df5d6913076a526ca8fdbabec43672cd397563d1ca3263"
	"libdrm2=2.4.123-1~bpo12+1 9cc2f341964286295124a32d3625edb76730500625e54a1e682761f883064d7b"
	"libdrm-amdgpu1=2.4.123-1~bpo12+1 334e2ae389af0e9cb607c2ccfbbf7ae9feb34131ff998550baeffeeae6cda296"
	"libvulkan1=1.3.239.0-1 622f28b807ba55a1f5ad1622ff83aa2c5b11fedbec074850e04c10a8f28b43d3"
	"libllvm15=1:15.0.6-4+b1 9f0751109ba89e65b1313a4f3e34a29977a0db6fa30ed475e2c6bd555fa9e866"
	"libz3-4=4.8.12-3.1 6221ca25ad5abcfbe1965801029d85a88b4775320384b4b716de8fab7a4d2f7a"
)
STAMP="$(printf '%s\n' "${DEBS[@]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$V/.ok" ] && [ "$(cat "$V/.ok")" = "$STAMP" ]; then exit 0; fi

mkdir -p "$V/debs"
# shellcheck source=apt-private.sh
. "$ROOT/scripts/apt-private.sh"
need=()
for d in "${DEBS[@]}"; do
	pv=${d%% *}
	ls "$V/debs/${pv%%=*}"_*.deb >/dev/null 2>&1 || need+=("$pv")
done
if [ ${#need[@]} -gt 0 ]; then
	say "fetching ${need[*]} from Debian (apt-get download, private state)"
	apt_fetch "$V/debs" "${need[@]}" || die "could not fetch ${need[*]} from the Debian archive (bookworm, bookworm-backports)"
fi
rm -rf "$V/root" && mkdir -p "$V/root"
for d in "${DEBS[@]}"; do
	pv=${d%% *} sum=${d##* }
	f=$(ls "$V/debs/${pv%%=*}"_*.deb | head -1)
	got=$(sha256sum "$f" | cut -d' ' -f1)
	[ "$got" = "$sum" ] || die "sha256 mismatch for $f: want $sum, got $got (delete it and run again)"
	dpkg-deb -x "$f" "$V/root"
done
LIB="$V/root/usr/lib/x86_64-linux-gnu"
[ -f "$LIB/libvulkan_lvp.so" ] || die "lavapipe (libvulkan_lvp.so) missing after unpacking"
printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s/libvulkan_lvp.so", "api_version": "1.4.305"}}\n' "$LIB" > "$V/lvp_icd.json"
echo "$STAMP" > "$V/.ok"
say "ok: Mesa 25.0.7 lavapipe in .deps/vulkan (VK_ICD_FILENAMES=.deps/vulkan/lvp_icd.json)"

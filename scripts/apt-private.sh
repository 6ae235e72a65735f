# apt-private.sh is sourced by the scripts that fetch Debian packages (rust.sh, brokers.sh,
# deps-vulkan.sh). apt runs on a private state under .deps/apt: the machine's own configured
# archive (its sources, copied) plus that archive's bookworm-backports, its own package lists
# and cache, no lock and no install, so it works without root and on a machine whose system
# lists were never fetched (`apt-get update` has not run). Packages are only downloaded; the
# callers check each .deb's sha256 and unpack it with dpkg-deb -x.
#
#   apt_fetch DIR PKG=VERSION...   download the .debs into DIR (lists fetched once per run)

APT_PRIVATE="${APT_PRIVATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.deps/apt}"
APT_OPTS=()
_apt_updated=""

_apt_setup() {
	[ ${#APT_OPTS[@]} -gt 0 ] && return 0
	command -v apt-get >/dev/null || { echo "apt-get is needed to fetch Debian packages" >&2; return 1; }
	mkdir -p "$APT_PRIVATE/lists/partial" "$APT_PRIVATE/cache/archives/partial" "$APT_PRIVATE/sources.list.d"
	rm -f "$APT_PRIVATE/sources.list.d/"*
	local f n=0
	if [ -s /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$APT_PRIVATE/sources.list.d/system.list"; fi
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && cp "$f" "$APT_PRIVATE/sources.list.d/$((n++))-$(basename "$f")"
	done
	# bookworm-backports from the same archive the machine is configured with
	local uri
	uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -E '^[[:space:]]*(URIs:|deb )' | grep -v -- '-security' | grep -oE 'https?://[^ ]*/debian/?' | head -1)"
	if [ -n "$uri" ]; then
		printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bookworm-backports main\n' "$uri" \
			>"$APT_PRIVATE/sources.list.d/zz-backports.list"
	fi
	APT_OPTS=(-o "Dir::Etc::sourcelist=/nonexistent" -o "Dir::Etc::sourceparts=$APT_PRIVATE/sources.list.d"
		-o "Dir::State::Lists=$APT_PRIVATE/lists" -o "Dir::Cache=$APT_PRIVATE/cache"
		-o Debug::NoLocking=1 -o "APT::Sandbox::User=$(id -un)")
}

apt_fetch() {
	local dir=$1
	shift
	_apt_setup || return 1
	if [ -z "$_apt_updated" ]; then
		apt-get "${APT_OPTS[@]}" -qq update >&2 || { echo "apt-get update of the Debian archive failed; check it is reachable" >&2; return 1; }
		_apt_updated=1
	fi
	mkdir -p "$dir" && (cd "$dir" && apt-get "${APT_OPTS[@]}" -qq download "$@" >&2)
}

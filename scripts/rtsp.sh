#!/usr/bin/env bash
# rtsp.sh installs the RTSP server the stream tests publish to: npm rtsp-streaming-server
# 2.1.0 and its dependencies, exactly as scripts/rtsp/package-lock.json pins them (version and
# sha512 of every tarball; `npm ci` refuses anything else), into .deps/rtsp. Needs node and
# npm (Debian's). Not fatal: without it the RTSP stream test skips, saying so.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.deps/rtsp"
say() { printf 'rtsp: %s\n' "$*" >&2; }
[ -f "$DEST/.ok" ] && exit 0
command -v npm >/dev/null || { say "no npm: the RTSP stream test will skip"; exit 0; }
rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
cp "$ROOT/scripts/rtsp/package.json" "$ROOT/scripts/rtsp/package-lock.json" "$ROOT/scripts/rtsp/server.js" "$DEST.tmp/"
if (cd "$DEST.tmp" && npm ci --no-audit --no-fund --ignore-scripts >npm.log 2>&1); then
	rm -rf "$DEST" && mv "$DEST.tmp" "$DEST" && touch "$DEST/.ok"
else
	say "npm ci failed: $(tail -1 "$DEST.tmp/npm.log")"; rm -rf "$DEST.tmp"
fi
exit 0

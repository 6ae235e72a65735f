#!/usr/bin/env bash
# stream_rss.sh: edgehost's RSS over a 30 fps MJPEG camera stream into detect (issue 27's
# "RSS flat (±10 %) over 10 minutes"): a Go camera on loopback, mosquitto for the sink,
# `edgehost serve` sampled every 30 s. STREAM_RSS_SECS shortens it (default 600). Needs make
# build plugins brokers. Writes the table to .deps/bench/stream-rss.md; fails if not flat.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh
go build -o bin/streambench ./bench/streambench
./bin/streambench -root "$ROOT" -rss "${STREAM_RSS_SECS:-600}s" -out .deps/bench/stream-rss.md

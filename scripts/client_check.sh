#!/usr/bin/env bash
# client_check.sh: serves the shipped config.toml and drives it with an unmodified Triton /
# KServe client (tritonclient.http from PyPI, pinned), then stops edgehost with SIGTERM and
# checks that it exits 0. Used by CI; `make client-check` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.deps/venv
if [ ! -x "$VENV/bin/python" ]; then
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q 'tritonclient[http]==2.73.0' 'numpy<3'
fi
PORT=18080
./bin/edgehost --config config.toml serve --addr "127.0.0.1:$PORT" > .deps/client_check.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
	curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
	sleep 0.5
done
"$VENV/bin/python" scripts/triton_client_check.py "127.0.0.1:$PORT" .deps/models/peacock.png
kill -TERM $PID
wait $PID
echo "edgehost stopped cleanly on SIGTERM (exit 0)"

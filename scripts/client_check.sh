#!/usr/bin/env bash
# client_check.sh: serves the shipped config.toml, with the KServe v2 gRPC service on, and
# drives it with unmodified Triton / KServe clients (tritonclient.http and tritonclient.grpc
# from PyPI, pinned), then stops edgehost with SIGTERM and checks that it exits 0. Used by
# CI; `make client-check` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.deps/client-venv
REQS="tritonclient[http,grpc]==2.73.0 numpy<3"
if [ "$(cat "$VENV/.ok" 2>/dev/null)" != "$REQS" ]; then
	rm -rf "$VENV"
	python3 -m venv "$VENV"
	# shellcheck disable=SC2086 # one argument per requirement
	"$VENV/bin/pip" install -q --disable-pip-version-check $REQS
	echo "$REQS" > "$VENV/.ok"
fi
PORT=18080
GRPC_PORT=18001
./bin/edgehost --config config.toml serve --addr "127.0.0.1:$PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" > .deps/client_check.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
	curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
	sleep 0.5
done
"$VENV/bin/python" scripts/triton_client_check.py "127.0.0.1:$PORT" .deps/models/peacock.png
"$VENV/bin/python" scripts/triton_grpc_check.py "127.0.0.1:$GRPC_PORT" .deps/models/peacock.png
kill -TERM $PID
wait $PID
echo "edgehost stopped cleanly on SIGTERM (exit 0)"

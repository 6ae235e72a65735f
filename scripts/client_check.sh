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
# Sequences (wakeword pipeline): a clip of make wakeword-ref with its reference detections when
# there, else two seconds of quiet noise (order and errors still checked).
CLIP=.deps/wakeword-ref/nabu-en-us-120.wav
if ! [ -f "$CLIP" ]; then
	CLIP=.deps/client_check_noise.wav
	"$VENV/bin/python" -c 'import wave,numpy as np; w=wave.open("'"$CLIP"'","wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes((np.random.default_rng(1).normal(0,300,32000)).astype("<i2").tobytes())'
fi
"$VENV/bin/python" scripts/triton_sequence_check.py "127.0.0.1:$PORT" "127.0.0.1:$GRPC_PORT" "$CLIP"
kill -TERM $PID
wait $PID
echo "edgehost stopped cleanly on SIGTERM (exit 0)"

# The same clients against TLS with client certificates (mTLS) and a bearer token: a CA, a
# server certificate for 127.0.0.1, a client certificate, one from another CA (openssl).
SEC=.deps/client-secure
rm -rf "$SEC" && mkdir -p "$SEC"
(
	cd "$SEC"
	for ca in ca otherca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$ca" -keyout $ca.key -out $ca.pem 2>/dev/null
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=edgehost" -keyout server.key -out server.csr 2>/dev/null
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -extfile <(printf "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth") -out server.pem 2>/dev/null
	for c in client:ca other:otherca; do
		n=${c%%:*} ca=${c##*:}
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" -keyout $n.key -out $n.csr 2>/dev/null
		openssl x509 -req -in $n.csr -CA $ca.pem -CAkey $ca.key -set_serial 3 -days 2 -extfile <(printf "extendedKeyUsage=clientAuth") -out $n.pem 2>/dev/null
	done
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > token
	chmod 600 token ./*.key
)
cp config.toml "$SEC/config.toml"
# TOML lets a sub-table of [server] come after the other tables: append them.
cat >> "$SEC/config.toml" <<EOF

[server.tls]
cert_file = "$PWD/$SEC/server.pem"
key_file = "$PWD/$SEC/server.key"
client_ca_file = "$PWD/$SEC/ca.pem"

[[server.tokens]]
file = "$PWD/$SEC/token"
EOF
sed -i "s#\"\(\.deps\|plugins\)/#\"$PWD/\1/#g; s#^cache_dir = .*#cache_dir = \"\"#" "$SEC/config.toml"
./bin/edgehost --config "$SEC/config.toml" validate
./bin/edgehost --config "$SEC/config.toml" serve --addr "127.0.0.1:$PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" > .deps/client_check_secure.log 2>&1 &
PID=$!
for _ in $(seq 1 120); do
	curl -sf --cacert "$SEC/ca.pem" --cert "$SEC/client.pem" --key "$SEC/client.key" "https://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
	sleep 0.5
done
"$VENV/bin/python" scripts/triton_secure_check.py "127.0.0.1:$PORT" "127.0.0.1:$GRPC_PORT" "$SEC" .deps/models/peacock.png
kill -TERM $PID
wait $PID
echo "edgehost (TLS + token) stopped cleanly on SIGTERM (exit 0)"

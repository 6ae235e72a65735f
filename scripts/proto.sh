#!/usr/bin/env bash
# proto.sh: regenerates the Go code of the KServe v2 gRPC service
# (host/grpcserver/inference/*.pb.go) from grpc_predict_v2.proto. `make proto` runs it; the
# generated files are committed, so building edgehost never needs protoc.
# The tools come from registries, pinned, into .deps/protoc (git-ignored):
#   protoc             PyPI grpcio-tools (python -m grpc_tools.protoc)
#   protoc-gen-go      Go module google.golang.org/protobuf
#   protoc-gen-go-grpc Go module google.golang.org/grpc/cmd/protoc-gen-go-grpc
set -euo pipefail
cd "$(dirname "$0")/.."
GRPCIO_TOOLS=1.85.1
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.0
D=.deps/protoc
stamp="$GRPCIO_TOOLS $PROTOC_GEN_GO $PROTOC_GEN_GO_GRPC"
if [ "$(cat "$D/.ok" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$D"
	python3 -m venv "$D"
	"$D/bin/pip" install -q --disable-pip-version-check --only-binary=:all: "grpcio-tools==$GRPCIO_TOOLS" ||
		{ echo "proto.sh: pip install grpcio-tools==$GRPCIO_TOOLS (PyPI) failed"; exit 1; }
	GOBIN="$PWD/$D/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
	GOBIN="$PWD/$D/bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
	echo "$stamp" > "$D/.ok"
fi
P=host/grpcserver/inference
PKG=github.com/edgehost/edgehost/$P
PATH="$PWD/$D/bin:$PATH" "$D/bin/python" -m grpc_tools.protoc -I "$P" \
	--go_out=. --go_opt=module=github.com/edgehost/edgehost --go_opt="Mgrpc_predict_v2.proto=$PKG;inference" \
	--go-grpc_out=. --go-grpc_opt=module=github.com/edgehost/edgehost --go-grpc_opt="Mgrpc_predict_v2.proto=$PKG;inference" \
	"$P/grpc_predict_v2.proto"
echo "generated: $(ls $P/*.pb.go | tr '\n' ' ')"

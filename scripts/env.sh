# Source this to use the go command directly (make does it for you):  . scripts/env.sh [2.17|2.9]
_EH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_EH_TFLITE="${1:-${TFLITE:-2.17}}"
export CGO_ENABLED=1
export CGO_CFLAGS="-I$_EH_ROOT/host/tflite/include -I$_EH_ROOT/.deps/tflite/include -O2"
export CGO_LDFLAGS="-L$_EH_ROOT/.deps/tflite/$_EH_TFLITE/lib -Wl,-rpath,$_EH_ROOT/.deps/tflite/$_EH_TFLITE/lib"
export EDGEHOST_ROOT="$_EH_ROOT"

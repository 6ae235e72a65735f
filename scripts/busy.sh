#!/usr/bin/env bash
# busy.sh [-n N] COMMAND...: runs COMMAND while N CPU-bound processes (default: one per core)
# keep every core busy, as on a loaded device or a shared CI machine. The hogs are stopped by
# PID when COMMAND ends, however it ends; the exit status is COMMAND's. `make test-busy` uses it.
set -u
n=$(nproc)
if [ "${1:-}" = "-n" ]; then n=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: busy.sh [-n N] COMMAND..." >&2; exit 2; }
pids=()
stop() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; }
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 "$n"); do
	( trap - INT TERM; exec nice -n 0 bash -c 'while :; do :; done' ) &
	pids+=($!)
done
echo "busy.sh: ${#pids[@]} CPU-bound processes on $(nproc) cores (pids ${pids[*]})" >&2
"$@"
status=$?
stop
exit $status

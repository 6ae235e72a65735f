#!/usr/bin/env bash
# fuzz.sh FUZZTIME PKG:NAME...: each fuzz target for FUZZTIME, from its seeds. Go's fuzzing
# coordinator sometimes ends a bounded run with a bare "context deadline exceeded" when the time
# runs out while a worker is still busy (no failing input, nothing written): such a run is
# tried once more. A real failure writes its input under testdata/fuzz and fails at once.
set -uo pipefail
time=$1
shift
for t in "$@"; do
	pkg=${t%%:*} name=${t##*:}
	for try in 1 2; do
		echo "fuzz $name ($time, try $try)"
		out=$(go test -run '^$' -fuzz "^$name\$" -fuzztime "$time" -fuzzminimizetime 3s "$pkg" 2>&1)
		rc=$?
		printf '%s\n' "$out" | tail -n 20
		[ $rc = 0 ] && break
		if [ $try = 1 ] && printf '%s' "$out" | grep -q 'context deadline exceeded' && ! printf '%s' "$out" | grep -q 'Failing input written'; then
			echo "fuzz $name: the run ended on the coordinator's deadline with no failing input; once more"
			continue
		fi
		exit 1
	done
done

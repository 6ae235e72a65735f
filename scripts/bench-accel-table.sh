#!/usr/bin/env bash
# bench-accel-table.sh reads `BenchmarkBackends/MODEL/BACKEND-N  iters  NS ns/op` lines (several
# rounds) and prints a markdown table: the median ms per invoke of each backend per model and
# its ratio to the classic backend. `make bench-accel` pipes into it.
awk '
{ split($1, p, "/"); model = p[2]; be = p[3]; sub(/-[0-9]+$/, "", be)
  v[model, be] = v[model, be] " " $3 / 1e6; if (!(model in seen)) { seen[model] = 1; models[++nm] = model }
  if (!(be in bseen)) { bseen[be] = 1; bes[++nb] = be } }
function median(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n == 0 ? -1 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }
END {
  printf "| model |"; for (b = 1; b <= nb; b++) printf " %s ms |", bes[b]; for (b = 2; b <= nb; b++) printf " %s / classic |", bes[b]; print ""
  printf "|---|"; for (b = 1; b < 2 * nb; b++) printf "---|"; print ""
  for (m = 1; m <= nm; m++) { printf "| %s |", models[m]; c = median(v[models[m], "classic"])
    for (b = 1; b <= nb; b++) { x = median(v[models[m], bes[b]]); if (x < 0) printf " - |"; else printf " %.2f |", x }
    for (b = 2; b <= nb; b++) { x = median(v[models[m], bes[b]]); if (x < 0 || c <= 0) printf " - |"; else printf " %.2fx |", x / c }
    print "" } }'

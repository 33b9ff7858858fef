#!/usr/bin/env bash
# ab-purchase.sh BIN_A BIN_B [PAIRS]: two server builds compared the way
# docs/performance.md compares them, by scripts/profile-purchase.sh runs that
# alternate A and B (PAIRS pairs, default 4) on one machine state, so drift in the
# machine falls on both. Prints each run (purchases/s, p99, server CPU per purchase
# over the window and until its checkpoint is done) and the means. WINDOW_A /
# WINDOW_B give each side its own commit window (the same binary twice compares
# windows); USERS, SECS and CONNS pass through.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 2 ]] || { echo "usage: $0 BIN_A BIN_B [PAIRS]" >&2; exit 2; }
bins=("$1" "$2"); pairs=${3:-4}
windows=("${WINDOW_A:-${WINDOW:-}}" "${WINDOW_B:-${WINDOW:-}}")
results=$(mktemp); trap 'rm -f "$results"' EXIT
for pair in $(seq 1 "$pairs"); do
    for side in 0 1; do
        out=$(SLUICE_BIN="${bins[$side]}" WINDOW="${windows[$side]}" scripts/profile-purchase.sh 2>&1) \
            || { echo "$out" >&2; exit 1; }
        rate=$(sed -n 's/.*created_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
        p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")
        cpu=$(awk '/^process, window/ {print $NF}' <<<"$out")
        settled=$(awk '/^process, until checkpointed/ {print $NF}' <<<"$out")
        label=$([[ $side == 0 ]] && echo A || echo B)
        echo "pair $pair $label: ${rate}/s p99 ${p99} ms, ${cpu} us CPU per purchase (${settled} until checkpointed)" >&2
        echo "$label $rate $cpu $settled" >>"$results"
    done
done
awk '{n[$1]++; r[$1] += $2; c[$1] += $3; t[$1] += $4}
     END {for (k in n) printf "%s: mean %.0f/s, %.1f us CPU per purchase, %.1f until checkpointed (%d runs)\n",
                              k, r[k] / n[k], c[k] / n[k], t[k] / n[k], n[k]}' \
    "$results" | sort

#!/usr/bin/env bash
# profile-purchase.sh: one durable-purchase run as scripts/bench.sh makes it (same
# server settings, pre-issued tokens, wrk script), with what docs/performance.md
# reads off it: the server's CPU per thread, its context switches and its commit
# metrics over the wrk window, and the process's CPU until the window's writes are
# checkpointed (the window starts on a settled store: scripts/settle.sh). Optional,
# during the window:
#   PERF=1   perf record of the server (PERF_ARGS, default: --call-graph dwarf at 299 Hz)
#            into target/bench/purchase.perf.data;
#   PSTAT=1  perf stat of the server's syscalls per thread (target/bench/purchase.pstat).
# Settings: USERS (250000), SECS (5), CONNS (64), WINDOW (store.commit_window_us,
# default config/default.toml's), WORKERS (2), SLUICE_BIN (target/release/sluice).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/settle.sh
source scripts/settle.sh
USERS=${USERS:-250000}; SECS=${SECS:-5}; CONNS=${CONNS:-64}; WORKERS=${WORKERS:-2}
WINDOW=${WINDOW:-$(awk -F' *= *' '/^commit_window_us/ {print $2}' config/default.toml)}
server_bin=${SLUICE_BIN:-target/release/sluice}
mkdir -p target/bench
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [[ "${PERF:-0}" == 1 || "${PSTAT:-0}" == 1 ]] && ! command -v perf >/dev/null; then
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
cargo build --release -q
cargo bench --bench throughput --no-run -q 2>/dev/null
bench_bin=$(ls -t target/release/deps/throughput-* | grep -v '\.d$' | head -n 1)
tokens=target/bench/profile-tokens.txt

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
store=$(mktemp -d)
SLUICE__SERVER__BIND="127.0.0.1:$port" SLUICE__STORE__PATH="$store" SLUICE__LOG__LEVEL=warn \
    SLUICE__SERVER__WORKERS="$WORKERS" SLUICE__STORE__COMMIT_WINDOW_US="$WINDOW" \
    SLUICE__LIMITS__JOIN_PER_IP_PER_SEC=0 SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC=0 \
    SLUICE__LIMITS__USER_PER_SEC=0 "$server_bin" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$store" "$tokens"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$bench_bin" --prepare "http://127.0.0.1:$port" "$tokens" --users "$USERS" --clients 64 | tail -n 1
settle "$port"

recorder=""
if [[ "${PSTAT:-0}" == 1 ]]; then
    events=$(printf 'syscalls:sys_enter_%s,' write futex epoll_wait sendto recvfrom fdatasync pwrite64)
    perf stat --per-thread -e "${events%,}" -p "$pid" -o target/bench/purchase.pstat -- sleep $((SECS - 1)) &
    recorder=$!
elif [[ "${PERF:-0}" == 1 ]]; then
    # shellcheck disable=SC2086
    perf record -o target/bench/purchase.perf.data -F 299 ${PERF_ARGS:---call-graph dwarf,32768} \
        -p "$pid" -- sleep $((SECS - 1)) 2>/dev/null &
    recorder=$!
fi
snapshot() { # per thread: "tid(name) cpu_ticks context_switches"
    for t in /proc/"$pid"/task/*; do
        echo "$(basename "$t")$(awk '{print $2, $14 + $15}' "$t/stat") $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status")"
    done | sort
}
commit_metrics() {
    curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^sluice_commit_(seconds|jobs)_(count|sum) ' | tr ' \n' '= '
}
process_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # every thread's, the exited too
before=$(snapshot); metrics_before=$(commit_metrics); ticks_before=$(process_ticks)
out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s scripts/wrk/purchase.lua "http://127.0.0.1:$port" -- "$tokens" 2 | tail -n 1)
after=$(snapshot); metrics_after=$(commit_metrics); ticks_after=$(process_ticks)
[[ -n "$recorder" ]] && wait "$recorder"
echo "$out"
settle "$port"
ticks_settled=$(process_ticks)
python3 - "$out" "$before" "$after" "$metrics_before" "$metrics_after" "$ticks_before" "$ticks_after" "$ticks_settled" <<'PY'
import re, sys
out, before, after, mb, ma = sys.argv[1:6]
p0, p1, p2 = map(int, sys.argv[6:9])  # the whole process, in ticks
created = int(re.search(r"created=(\d+)", out).group(1))
def rows(s):
    d = {}
    for line in s.splitlines():
        name, ticks, cs = line.rsplit(" ", 2)
        d[name] = (int(ticks), int(cs))
    return d
b, a = rows(before), rows(after)
groups = {}
for name, (t, c) in a.items():
    t0, c0 = b.get(name, (0, 0))
    kind = re.sub(r"^\d+\(|\)$", "", name)
    kind = re.sub(r"-\d+$", "", kind)
    g = groups.setdefault(kind, [0, 0, 0])
    g[0] += t - t0; g[1] += c - c0; g[2] += 1
print(f"\n{'threads':28} {'CPU us/purchase':>16} {'switches/purchase':>18}")
for kind, (t, c, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
    if t:
        print(f"{kind + f' (x{n})':28} {t * 10000 / created:>16.1f} {c / created:>18.3f}")
print(f"{'process, window':28} {(p1 - p0) * 10000 / created:>16.1f}")
print(f"{'process, until checkpointed':28} {(p2 - p0) * 10000 / created:>16.1f}")
def metrics(s):
    return {k: float(v) for k, v in (kv.split("=") for kv in s.split())}
m0, m1 = metrics(mb), metrics(ma)
d = {k: m1[k] - m0.get(k, 0) for k in m1}
commits = d.get("sluice_commit_seconds_count", 0)
if commits:
    print(f"\ncommits {commits:.0f}: {1e6 * d['sluice_commit_seconds_sum'] / commits:.0f} us each "
          f"(append + fdatasync + memtable), {created / commits:.1f} purchases each")
PY

#!/usr/bin/env bash
# bench.sh: one run on this machine, side by side, every figure and the ratios:
#   - the no-op endpoint (/healthz) under wrk: the HTTP ceiling of the same server;
#   - durable purchases with pre-issued tokens under wrk (one new order per request),
#     at group-commit window 0 (one flush per commit) and at the default;
#   - HTTP joins (the bench client's join phase while pre-issuing tokens);
#   - the seed designs' Redis + Lua stock deduction (EVALSHA: check bought, check
#     stock, DECRBY, mark user) under redis-benchmark with 50 clients, no pipelining,
#     in memory only (the required anchor) and again with appendfsync always;
#   - the server CPU each request cost during those wrk runs (from /proc: sluice's
#     process; the peer's process and its redis-server apart), which says where the
#     ratios come from on two shared cores; for sluice also until its checkpoint
#     has put the window's writes into sled (each purchase window starts on a
#     settled store: scripts/settle.sh);
#   - the peer (benches/peer.rs): the seed design's whole purchase path on the same
#     stack (actix-web, the same JWT check, one EVALSHA that checks the limit and the
#     stock, decrements, marks the user and XADDs the order), driven by the same wrk
#     script and tokens as sluice's purchase, against its own throwaway Redis in
#     memory and then one with appendfsync always.
# sluice's purchase at the default window and the two peer runs go in ROUNDS (3)
# rounds, one after another, each on fresh tokens: a single run of either moved by
# 10-20% between runs with nothing changed, so the table gives the median of each
# figure and the ratios are medians of each round's own ratio.
# PEER_ONLY=1 runs only those rounds. Writes target/bench/results.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
USERS=${USERS:-400000}   # tokens pre-issued per purchase run (more than 5 s can use)
# Another build of the server to measure (e.g. an older commit's), same clients.
server_bin=${SLUICE_BIN:-target/release/sluice}
SECS=${SECS:-5}
PEER_ONLY=${PEER_ONLY:-0}
ROUNDS=${ROUNDS:-3}
mkdir -p target/bench

# shellcheck source=scripts/services.sh
source scripts/services.sh >/dev/null
# shellcheck source=scripts/settle.sh
source scripts/settle.sh
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
cargo bench --bench throughput --bench peer --no-run -q 2>/dev/null
bench_bin=$(ls -t target/release/deps/throughput-* | grep -v '\.d$' | head -n 1)
peer_bin=$(ls -t target/release/deps/peer-* | grep -v '\.d$' | head -n 1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server_pid=""
start_server() { # $1 = commit window in microseconds
    port=$(free_port)
    store=$(mktemp -d)
    SLUICE__SERVER__BIND="127.0.0.1:$port" SLUICE__STORE__PATH="$store" SLUICE__LOG__LEVEL=warn \
        SLUICE__SERVER__WORKERS=2 SLUICE__STORE__COMMIT_WINDOW_US="$1" \
        SLUICE__LIMITS__JOIN_PER_IP_PER_SEC=0 SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC=0 \
        SLUICE__LIMITS__USER_PER_SEC=0 "$server_bin" &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
    echo "bench.sh: server did not start" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; rm -rf "$store"; }
# CPU time used so far by the processes $@ (user + system, all threads), in clock ticks.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
ticks_per_sec=$(getconf CLK_TCK)
# Microseconds of CPU per request: $1 ticks over $2 requests.
per_request() { python3 -c "import sys; t, n = map(float, sys.argv[1:]); print(f'{t * 1e6 / $ticks_per_sec / n:.1f}' if n else 0)" "$1" "$2"; }

default_window=$(awk -F' *= *' '/^commit_window_us/ {print $2}' config/default.toml)

noop=0; noop_cpu=0
if [[ "$PEER_ONLY" != 1 ]]; then
    start_server "$default_window"
    echo "bench.sh: no-op endpoint, wrk -t2 -c64 -d${SECS}s" >&2
    before=$(cpu_ticks "$server_pid")
    noop_out=$(wrk -t2 -c64 -d"${SECS}s" "http://127.0.0.1:$port/healthz")
    noop_cpu=$(per_request $(($(cpu_ticks "$server_pid") - before)) "$(awk '/requests in/ {print $1}' <<<"$noop_out")")
    noop=$(awk '/Requests\/sec/ {print $2}' <<<"$noop_out")
    stop_server
fi

# The window starts on a settled store (the preparation's joins checkpointed: the
# peer has no such work to carry into its window), and the CPU is counted twice: over
# the window, and until the window's own writes are in sled too.
purchase() { # $1 = window; prints "created_per_sec p99_ms joins_per_sec cpu_us_per_purchase cpu_us_settled"
    start_server "$1"
    local joins
    joins=$("$bench_bin" --prepare "http://127.0.0.1:$port" target/bench/tokens.txt --users "$USERS" --clients 64 \
        | sed -n 's/.*joins \([0-9]*\)\/s.*/\1/p')
    settle "$port"
    local out before cpu settled
    before=$(cpu_ticks "$server_pid")
    out=$(wrk -t2 -c64 -d"${SECS}s" -s scripts/wrk/purchase.lua "http://127.0.0.1:$port" -- target/bench/tokens.txt 2 | tail -n 1)
    cpu=$(($(cpu_ticks "$server_pid") - before))
    settle "$port"
    settled=$(($(cpu_ticks "$server_pid") - before))
    echo "bench.sh: window ${1} us: $out" >&2
    fresh_users_only "sluice's purchase run" "$out"
    local sold
    sold=$(curl -fsS "http://127.0.0.1:$port/api/activities/bench" | python3 -c 'import sys,json; v=json.load(sys.stdin); assert v["capacity"]==v["available"]+v["held"]+v["sold"]; print(v["sold"])')
    stop_server
    local created
    created=$(sed -n 's/.*created=\([0-9]*\).*/\1/p' <<<"$out")
    [[ "$sold" -ge "$created" ]] || { echo "bench.sh: sold $sold < acknowledged $created" >&2; exit 1; }
    echo "$(sed -n 's/.*created_per_sec=\([0-9]*\).*/\1/p' <<<"$out") $(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$out") $joins" \
        "$(per_request "$cpu" "$created") $(per_request "$settled" "$created")"
}
# A run whose clients used up the pre-issued users (wrk then replays bought ones)
# measured less than the server can do: refuse its figure rather than print it.
fresh_users_only() { # $1 = what ran, $2 = wrk's summary line
    local replays
    replays=$(sed -n 's/.*replays=\([0-9]*\).*/\1/p' <<<"$2")
    [[ "${replays:-0}" -eq 0 ]] || { echo "bench.sh: $1 used up its $USERS users ($replays replays): raise USERS" >&2; exit 1; }
}
p0=0; p0_p99=0; evalsha=0; evalsha_fsync=0
if [[ "$PEER_ONLY" != 1 ]]; then
    echo "bench.sh: durable purchases, wrk, window 0" >&2
    read -r p0 p0_p99 _ _ _ < <(purchase 0)
fi

# The peer, on the tokens of the last purchase run (their JWTs are its users). Each
# run is a subshell (`< <(peer_run)`) whose EXIT trap stops its Redis and peer and
# removes its directory, also when it fails.
peer_run() { # $@ = redis-server persistence flags; prints "created_per_sec p99_ms peer_cpu_us redis_cpu_us"
    local rport pport out created orders peer_ticks redis_ticks
    rport=$(free_port); dir=$(mktemp -d); rpid=""; ppid=""
    trap 'kill $ppid $rpid 2>/dev/null || true; wait $ppid $rpid 2>/dev/null || true; rm -rf "$dir"' EXIT
    redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --save '' "$@" >"$dir/redis.log" 2>&1 &
    rpid=$!
    for _ in $(seq 1 100); do redis-cli -p "$rport" PING >/dev/null 2>&1 && break; sleep 0.1; done
    pport=$(free_port)
    "$peer_bin" --bind "127.0.0.1:$pport" --redis "redis://127.0.0.1:$rport/" --workers 2 >"$dir/peer.log" 2>&1 &
    ppid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$pport/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "http://127.0.0.1:$pport/healthz" >/dev/null || { echo "bench.sh: peer did not start: $(cat "$dir/peer.log")" >&2; exit 1; }
    peer_ticks=$(cpu_ticks "$ppid"); redis_ticks=$(cpu_ticks "$rpid")
    out=$(wrk -t2 -c64 -d"${SECS}s" -s scripts/wrk/purchase.lua "http://127.0.0.1:$pport" -- target/bench/tokens.txt 2 | tail -n 1)
    peer_ticks=$(($(cpu_ticks "$ppid") - peer_ticks)); redis_ticks=$(($(cpu_ticks "$rpid") - redis_ticks))
    echo "bench.sh: peer, redis $*: $out" >&2
    fresh_users_only "the peer" "$out"
    created=$(sed -n 's/.*created=\([0-9]*\).*/\1/p' <<<"$out")
    orders=$(redis-cli -p "$rport" XLEN peer:orders)
    [[ "$orders" -ge "$created" && "$created" -gt 0 ]] || { echo "bench.sh: peer streamed $orders orders, acknowledged $created" >&2; exit 1; }
    echo "$(sed -n 's/.*created_per_sec=\([0-9]*\).*/\1/p' <<<"$out") $(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")" \
        "$(per_request "$peer_ticks" "$created") $(per_request "$redis_ticks" "$created")"
}
# Each round: "purchase p99 joins cpu | peer in memory: rate p99 peer_cpu redis_cpu |
# peer always: the same | purchase cpu until settled", thirteen fields.
rounds=""
for round in $(seq 1 "$ROUNDS"); do
    echo "bench.sh: round $round of $ROUNDS: sluice's purchase (window ${default_window} us), then the peer (benches/peer.rs), Redis in memory and appendfsync always" >&2
    read -r pd pd_p99 joins pd_cpu pd_settled < <(purchase "$default_window")
    read -r pm pm_p99 pm_cpu rm_cpu < <(peer_run --appendonly no)
    read -r pf pf_p99 pf_cpu rf_cpu < <(peer_run --appendonly yes --appendfsync always)
    [[ -n "$pd" && -n "$pm" && -n "$pf" ]] || { echo "bench.sh: a run of round $round failed" >&2; exit 1; }
    rounds+="$pd $pd_p99 $joins $pd_cpu $pm $pm_p99 $pm_cpu $rm_cpu $pf $pf_p99 $pf_cpu $rf_cpu $pd_settled;"
    rm -f target/bench/tokens.txt
done

if [[ "$PEER_ONLY" != 1 ]]; then
    redis_port=${SLUICE_TEST_REDIS_URL##*:}
    rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
lua='local bought = redis.call("SISMEMBER", KEYS[2], ARGV[1])
if bought == 1 then return -1 end
local stock = tonumber(redis.call("GET", KEYS[1]) or "0")
if stock <= 0 then return 0 end
redis.call("DECRBY", KEYS[1], 1)
redis.call("SADD", KEYS[2], ARGV[1])
return 1'
    rcli FLUSHALL >/dev/null
    rcli SET stock 100000000 >/dev/null
    sha=$(rcli SCRIPT LOAD "$lua")
    echo "bench.sh: Redis EVALSHA stock deduction, redis-benchmark -c 50" >&2
    evalsha_run() {
        redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -n "$1" -r 100000000 --csv \
            EVALSHA "$sha" 2 stock bought __rand_int__ | tail -n 1 | cut -d, -f2 | tr -d '"'
    }
    evalsha=$(evalsha_run 300000)
    # The same script with each write fsynced before its reply (appendfsync always), as
    # sluice acknowledges a purchase only once it is durable: an anchor with equal
    # durability, printed beside the required (memory-only) one.
    rcli CONFIG SET appendonly yes >/dev/null
    rcli CONFIG SET appendfsync always >/dev/null
    echo "bench.sh: the same with appendonly yes, appendfsync always" >&2
    evalsha_fsync=$(evalsha_run 100000)
    rcli CONFIG SET appendonly no >/dev/null
fi

python3 - "$noop" "$p0" "$p0_p99" "$evalsha" "$evalsha_fsync" "$default_window" "$noop_cpu" "$rounds" <<'PY'
import json, statistics, sys
noop, p0, p0_p99, evalsha, evalsha_fsync = map(float, sys.argv[1:6])
w = sys.argv[6]
noop_cpu = float(sys.argv[7])
rounds = [list(map(float, r.split())) for r in sys.argv[8].split(";") if r.strip()]
med = lambda i: statistics.median(r[i] for r in rounds)
pd, pd_p99, joins, pd_cpu = med(0), med(1), med(2), med(3)
peer_mem, peer_mem_p99, peer_mem_cpu, redis_mem_cpu = med(4), med(5), med(6), med(7)
peer_fsync, peer_fsync_p99, peer_fsync_cpu, redis_fsync_cpu = med(8), med(9), med(10), med(11)
pd_settled = med(12)
print()
print(f"{len(rounds)} rounds (sluice's purchase, peer in memory, peer appendfsync always):")
for n, r in enumerate(rounds, 1):
    print(f"  round {n}: {r[0]:>7.0f}/s {r[4]:>7.0f}/s {r[8]:>7.0f}/s   "
          f"ratios {r[0] / r[4]:.2f} {r[0] / r[8]:.2f}   CPU {r[3]:.1f} / {r[6] + r[7]:.1f} / {r[10] + r[11]:.1f} us")
print("the figures below are the rounds' medians")
rows = [
    ("no-op endpoint /healthz (wrk)", noop, ""),
    ("HTTP join, durable (bench client)", joins, ""),
    ("durable purchase, commit window 0 (wrk)", p0, f"p99 {p0_p99:.1f} ms"),
    (f"durable purchase, window {w} us default (wrk)", pd, f"p99 {pd_p99:.1f} ms"),
    ("Redis EVALSHA stock deduction, 50 clients", evalsha, "in memory only"),
    ("Redis EVALSHA, appendfsync always", evalsha_fsync, "durable before the reply"),
    ("peer: JWT + EVALSHA/XADD, Redis in memory (wrk)", peer_mem, f"p99 {peer_mem_p99:.1f} ms"),
    ("peer: the same, appendfsync always (wrk)", peer_fsync, f"p99 {peer_fsync_p99:.1f} ms"),
]
print()
for name, v, note in rows:
    if v:  # PEER_ONLY=1 leaves the other rows out
        print(f"{name:48} {v:>10.0f}/s  {note}")
print()
def ratio(name, num, den):
    if den:
        print(f"{name:52} {num / den:.2f}")
ratio("durable purchase / no-op (target >= 0.7):", pd, noop)
ratio("durable purchase / EVALSHA (target >= 1.0):", pd, evalsha)
ratio("durable purchase / EVALSHA, appendfsync always:", pd, evalsha_fsync)
ratio_mem = statistics.median(r[0] / r[4] for r in rounds)
ratio_fsync = statistics.median(r[0] / r[8] for r in rounds)
print(f"{'durable purchase / peer, Redis in memory (>= 1.0):':52} {ratio_mem:.2f} (median of the rounds')")
print(f"{'durable purchase / peer, appendfsync always (>= 1.0):':52} {ratio_fsync:.2f} (median of the rounds')")
if p0:
    print(f"group commit speed-up (window {w} us vs 0):    {pd / p0:.1f}x")
print()
print("server CPU per request during the wrk runs (wrk itself takes the rest of the two cores):")
if noop_cpu:
    print(f"  no-op endpoint                                 {noop_cpu:>6.1f} us")
print(f"  sluice durable purchase, window {w} us          {pd_cpu:>6.1f} us ({pd_settled:.1f} until its checkpoint is done)")
print(f"  peer, Redis in memory: peer + redis-server     {peer_mem_cpu + redis_mem_cpu:>6.1f} us ({peer_mem_cpu:.1f} + {redis_mem_cpu:.1f})")
print(f"  peer, appendfsync always: peer + redis-server  {peer_fsync_cpu + redis_fsync_cpu:>6.1f} us ({peer_fsync_cpu:.1f} + {redis_fsync_cpu:.1f})")
json.dump({"noop_rps": noop, "join_rps": joins, "purchase_window0_rps": p0, "purchase_window0_p99_ms": p0_p99,
           "purchase_default_rps": pd, "purchase_default_p99_ms": pd_p99, "default_window_us": int(w),
           "redis_evalsha_rps": evalsha, "redis_evalsha_fsync_always_rps": evalsha_fsync,
           "peer_memory_rps": peer_mem, "peer_memory_p99_ms": peer_mem_p99,
           "peer_fsync_always_rps": peer_fsync, "peer_fsync_always_p99_ms": peer_fsync_p99,
           "cpu_us_per_request": {"noop": noop_cpu, "purchase_default": pd_cpu,
                                  "purchase_default_until_settled": pd_settled,
                                  "peer_memory": [peer_mem_cpu, redis_mem_cpu],
                                  "peer_fsync_always": [peer_fsync_cpu, redis_fsync_cpu]},
           "ratio_peer_memory": ratio_mem, "ratio_peer_fsync_always": ratio_fsync,
           "rounds": [dict(zip(["purchase_rps", "purchase_p99_ms", "join_rps", "purchase_cpu_us",
                                "peer_memory_rps", "peer_memory_p99_ms", "peer_memory_cpu_us", "redis_memory_cpu_us",
                                "peer_fsync_always_rps", "peer_fsync_always_p99_ms", "peer_fsync_always_cpu_us",
                                "redis_fsync_always_cpu_us", "purchase_cpu_us_until_settled"], r)) for r in rounds]},
          open("target/bench/results.json", "w"), indent=2)
PY

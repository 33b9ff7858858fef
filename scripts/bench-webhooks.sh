#!/usr/bin/env bash
# bench-webhooks.sh: webhook delivery in a simulated sale, and what webhooks cost the
# purchase path, in one run on this machine (issue 16). Loopback only.
#
#   A. webhooks off: durable purchases exactly as scripts/bench.sh measures them (the
#      bench client pre-issues USERS tokens; wrk -t2 -c64 with scripts/wrk/purchase.lua
#      for SECS s; default commit window, limits off) -> created/s, p99.
#   B. webhooks on: the same, after registering one receiver for ["order.created"]
#      (scripts/webhook-receiver.py: stdlib asyncio, answers 204, records each
#      delivery's webhook-id, arrival time and the body's event timestamp) ->
#      created/s, p99; then, waiting (at most DRAIN_LIMIT s) until the receiver has an
#      event for every order sold: events/s delivered (unique / (last - first arrival)),
#      delivery delay (arrival - event time) p50/p99, duplicates and exactly-once
#      (unique ids == orders sold), the backlog seen in the admin health during the load.
#   D. webhooks on, a slower sale (USERS_D users, wrk -t1 -c1: one purchase at a time,
#      fewer per second than one receiver is sent): the same delivery figures, for the
#      delay of a receiver that keeps up (in B the sale outruns delivery, so B's delay
#      is mostly the wait in the backlog).
#   C. outage: the receiver answers 503 while SECS_C s of purchases run, then OUTAGE_SECS
#      more seconds, then comes back -> backlog, time from "up" to the last event
#      (time to drain), and the rate of the drain. It depends on the retry backoff:
#      the server runs with MIN_BACKOFF_MS / MAX_BACKOFF_MS (printed).
#
# Event timestamps have whole-second precision (RFC 3339 without fractions), so a
# delay is known only within 1 s: the table gives the bounds (arrival - end of the
# event's second .. arrival - start of it) and an estimate that spreads each second's
# events evenly over it in commit order (webhook-id sequence), from the seconds the
# sale ran whole (not its first and last).
#
# The receiver is one Python process on the same two cores as the server and wrk;
# sluice sends each receiver its events one at a time, so events/s is a round-trip
# figure for this pair, not a server limit alone.
#
# Each run starts its own server (fresh store) and receiver on free ports, in a temp
# dir removed on exit; every wait is bounded (DRAIN_LIMIT s for a receiver to get all).
#
# USERS=300000 SECS=5 SECS_C=2 scripts/bench-webhooks.sh; writes target/bench/webhooks.json.
# SMOKE=1 USERS=20000 SECS=2 scripts/bench-webhooks.sh: a functional run (its purchase
# figures are lower bounds when the users run out: wrk then replays bought ones).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
USERS=${USERS:-300000}
SECS=${SECS:-5}
SECS_C=${SECS_C:-2}
USERS_C=${USERS_C:-120000}
USERS_D=${USERS_D:-30000}
OUTAGE_SECS=${OUTAGE_SECS:-3}
MIN_BACKOFF_MS=${MIN_BACKOFF_MS:-100}
MAX_BACKOFF_MS=${MAX_BACKOFF_MS:-1000}
DRAIN_LIMIT=${DRAIN_LIMIT:-180}
SMOKE=${SMOKE:-0}  # 1: a functional run; a load that uses up its users is not refused
server_bin=${SLUICE_BIN:-target/release/sluice}
ADMIN='Authorization: Bearer sluice-dev-admin-key'
mkdir -p target/bench

command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
cargo bench --bench throughput --no-run -q 2>/dev/null
bench_bin=$(ls -t target/release/deps/throughput-* | grep -v '\.d$' | head -n 1)

work=$(mktemp -d)
server_pid=""; recv_pid=""; poll_pid=""
cleanup() {
    local rc=$?
    for p in $poll_pid $server_pid $recv_pid; do kill "$p" 2>/dev/null || true; done
    for p in $poll_pid $server_pid $recv_pid; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
    return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "bench-webhooks.sh: $*" >&2; exit 1; }
say() { echo "bench-webhooks.sh: $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
default_window=$(awk -F' *= *' '/^commit_window_us/ {print $2}' config/default.toml)

start_server() {
    port=$(free_port)
    store="$work/store-$port"
    mkdir -p "$store"
    SLUICE__SERVER__BIND="127.0.0.1:$port" SLUICE__STORE__PATH="$store" SLUICE__LOG__LEVEL=warn \
        SLUICE__SERVER__WORKERS=2 SLUICE__STORE__COMMIT_WINDOW_US="$default_window" \
        SLUICE__LIMITS__JOIN_PER_IP_PER_SEC=0 SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC=0 \
        SLUICE__LIMITS__USER_PER_SEC=0 \
        SLUICE__WEBHOOKS__MIN_BACKOFF_MS="$MIN_BACKOFF_MS" SLUICE__WEBHOOKS__MAX_BACKOFF_MS="$MAX_BACKOFF_MS" \
        "$server_bin" >"$work/server-$port.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
    die "server did not start: $(tail -n 5 "$work/server-$port.log")"
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; rm -rf "$store"; }

start_receiver() { # $1 = tag
    rport=$(free_port)
    dumpf="$work/receiver-$1.json"
    python3 scripts/webhook-receiver.py "$rport" "$dumpf" &
    recv_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$rport/__stats" >/dev/null 2>&1 && return; sleep 0.1; done
    die "receiver did not start"
}
rstat() { curl -fsS "http://127.0.0.1:$rport/__stats" | python3 -c "import sys,json; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
stop_receiver() { curl -fsS "http://127.0.0.1:$rport/__dump" >/dev/null; kill "$recv_pid"; wait "$recv_pid" 2>/dev/null || true; recv_pid=""; }

register() {
    curl -fsS -X POST "http://127.0.0.1:$port/api/admin/webhooks" -H "$ADMIN" -H 'Content-Type: application/json' \
        -d "{\"url\": \"http://127.0.0.1:$rport/hook\", \"events\": [\"order.created\"]}" >/dev/null
}
# The receiver's backlog as the server's admin health shows it, every 0.25 s, to a file.
start_pending_poll() {
    (while :; do
        curl -fsS -H "$ADMIN" "http://127.0.0.1:$port/api/admin/webhooks" 2>/dev/null |
            python3 -c 'import sys,json,time; print(time.time(), json.load(sys.stdin)["webhooks"][0]["health"]["pending"])' \
                >>"$work/pending.txt" 2>/dev/null || true
        sleep 0.25
    done) &
    poll_pid=$!
}
stop_pending_poll() { kill "$poll_pid" 2>/dev/null || true; wait "$poll_pid" 2>/dev/null || true; poll_pid=""; }

prepare() { # $1 = users
    "$bench_bin" --prepare "http://127.0.0.1:$port" "$work/tokens.txt" --users "$1" --clients 64 >/dev/null
}
load() { # $1 = seconds, $2 = threads, $3 = connections; prints wrk's summary line; refuses a run that replayed
    local out replays
    out=$(wrk -t"$2" -c"$3" -d"${1}s" -s scripts/wrk/purchase.lua "http://127.0.0.1:$port" -- "$work/tokens.txt" "$2" | tail -n 1)
    replays=$(sed -n 's/.*replays=\([0-9]*\).*/\1/p' <<<"$out")
    [[ "${replays:-0}" -eq 0 || "$SMOKE" == 1 ]] || die "the load used up its users ($replays replays): raise USERS"
    echo "$out"
}
sold() { curl -fsS "http://127.0.0.1:$port/api/activities/bench" | python3 -c 'import sys,json; v=json.load(sys.stdin); assert v["capacity"]==v["available"]+v["held"]+v["sold"]; print(v["sold"])'; }
field() { sed -n "s/.*$1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }
wait_for() { # $1 = unique events wanted; waits at most DRAIN_LIMIT s
    local deadline=$((SECONDS + DRAIN_LIMIT)) u
    while :; do
        u=$(rstat unique)
        [[ "$u" -ge "$1" ]] && return 0
        [[ $SECONDS -ge $deadline ]] && { say "receiver has $u of $1 events after ${DRAIN_LIMIT} s"; return 0; }
        sleep 0.2
    done
}

say "uptime: $(uptime)"
say "A: webhooks off, $USERS users, wrk -t2 -c64 -d${SECS}s"
start_server
prepare "$USERS"
outA=$(load "$SECS" 2 64)
say "A: $outA"
soldA=$(sold)
stop_server

# B (wrk -t2 -c64, as A) and D (one connection: a sale slower than delivery).
run_on() { # $1 = tag, $2 = users, $3 = wrk threads, $4 = connections; sets out_$1, sold_$1, end_$1
    start_receiver "$1"
    start_server
    prepare "$2"
    register
    : >"$work/pending.txt"
    start_pending_poll
    local out s
    out=$(load "$SECS" "$3" "$4")
    printf -v "end_$1" '%s' "$(date +%s.%N)"
    say "$1: $out"
    s=$(sold)
    wait_for "$s"
    stop_pending_poll
    cp "$work/pending.txt" "$work/pending-$1.txt"
    stop_receiver
    stop_server
    printf -v "out_$1" '%s' "$out"
    printf -v "sold_$1" '%s' "$s"
}
say "B: webhooks on (order.created to a healthy receiver), $USERS users, wrk -t2 -c64 -d${SECS}s"
run_on B "$USERS" 2 64
say "D: webhooks on, a slower sale: $USERS_D users, wrk -t1 -c1 -d${SECS}s"
run_on D "$USERS_D" 1 1

say "C: outage: receiver 503 for the ${SECS_C} s load + ${OUTAGE_SECS} s, backoff ${MIN_BACKOFF_MS}..${MAX_BACKOFF_MS} ms"
start_receiver C
start_server
prepare "$USERS_C"
register
curl -fsS "http://127.0.0.1:$rport/__down" >/dev/null
outC=$(load "$SECS_C" 2 64)
say "C: $outC"
soldC=$(sold)
sleep "$OUTAGE_SECS"
curl -fsS "http://127.0.0.1:$rport/__up" >/dev/null
wait_for "$soldC"
stop_receiver
stop_server

python3 - "$work" "$outA" "$out_B" "$outC" "$out_D" "$soldA" "$sold_B" "$soldC" "$sold_D" "$end_B" "$end_D" \
    "$USERS" "$SECS" "$SECS_C" "$OUTAGE_SECS" "$MIN_BACKOFF_MS" "$MAX_BACKOFF_MS" "$default_window" "$USERS_C" "$USERS_D" <<'PY'
import calendar, json, re, sys, time
work, outA, outB, outC, outD = sys.argv[1:6]
soldA, soldB, soldC, soldD = map(int, sys.argv[6:10])
endB, endD = map(float, sys.argv[10:12])
users, secs, secs_c, outage_secs, min_b, max_b, window, users_c, users_d = sys.argv[12:21]

def wrk(line):
    f = dict(re.findall(r"(\w+)=([0-9.]+)", line))
    return int(f["created"]), float(f["created_per_sec"]), float(f["p99_ms"]), int(f["errors"])

cache = {}
def sec(ts):
    if ts not in cache:
        cache[ts] = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    return cache[ts]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")

def seq(wid):
    return int(wid.rsplit("_", 1)[1])

def analyse(tag, sold, load_end=None):
    d = json.load(open(f"{work}/receiver-{tag}.json"))
    recs = d["records"]
    first = {}
    for wid, arr, ts in recs:  # the first arrival of each id
        first.setdefault(wid, (arr, ts))
    unique = len(first)
    arrivals = sorted(a for a, _ in first.values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    lo, hi, est, by_sec = [], [], [], {}
    for wid, (arr, ts) in first.items():
        s = sec(ts)
        lo.append(max(0.0, arr - (s + 1))); hi.append(arr - s)  # (a delay is not negative)
        by_sec.setdefault(s, []).append((seq(wid), arr))
    # The estimate spreads each second's events evenly over it, in commit order; the
    # first and last second of the sale are partial (wrk starts and stops inside
    # them), so with three or more seconds they are left out of it.
    secs_seen = sorted(by_sec)
    full = secs_seen[1:-1] if len(secs_seen) >= 3 else secs_seen
    for s in full:
        evs = sorted(by_sec[s])
        for i, (_, arr) in enumerate(evs):
            est.append(arr - (s + (i + 0.5) / len(evs)))
    r = dict(d, unique=unique, duplicates=len(recs) - unique, span=span,
             rate=(unique - 1) / span if span > 0 else float("nan"),
             exactly_once=unique == sold and len(recs) == unique,
             p50=pct(est, 50), p99=pct(est, 99), max=max(est, default=float("nan")),
             p50_bounds=[pct(lo, 50), pct(hi, 50)], p99_bounds=[pct(lo, 99), pct(hi, 99)], arrivals=arrivals)
    if load_end is not None:
        pend = [tuple(map(float, l.split())) for l in open(f"{work}/pending-{tag}.txt") if l.strip()]
        r["pending_max"] = max((p for _, p in pend), default=float("nan"))
        after = [p for t, p in pend if t >= load_end]
        r["pending_at_load_end"] = after[0] if after else float("nan")
        r["last_after_load"] = arrivals[-1] - load_end if arrivals else float("nan")
    return r

cA, rA, pA, eA = wrk(outA)
cB, rB, pB, eB = wrk(outB)
cC, rC, pC, eC = wrk(outC)
cD, rD, pD, eD = wrk(outD)
B = analyse("B", soldB, endB)
D = analyse("D", soldD, endD)
C = analyse("C", soldC)
up_at = C["up_at"]
c_drain = C["arrivals"][-1] - up_at if C["arrivals"] else float("nan")
c_first = C["arrivals"][0] - up_at if C["arrivals"] else float("nan")

def delivery_rows(t, X, sold, acked):
    return [
        (f"{t}  events delivered (unique / first..last arrival)", f"{X['rate']:,.0f} events/s", f"{X['unique']} over {X['span']:.2f} s"),
        (f"{t}  exactly once (unique ids == orders sold)", "yes" if X["exactly_once"] else "NO",
         f"{X['unique']} unique, {X['duplicates']} duplicates, {sold} sold, {acked} acknowledged"),
        (f"{t}  delivery delay p50 (estimate; bounds)", f"{X['p50']:.3f} s", "{:.3f} .. {:.3f} s".format(*X["p50_bounds"])),
        (f"{t}  delivery delay p99 (estimate; bounds)", f"{X['p99']:.3f} s", "{:.3f} .. {:.3f} s".format(*X["p99_bounds"])),
        (f"{t}  delivery delay max (estimate)", f"{X['max']:.3f} s", ""),
        (f"{t}  backlog (admin health pending, 0.25 s polls)", f"max {X['pending_max']:,.0f}", f"{X['pending_at_load_end']:,.0f} just after the load"),
        (f"{t}  last event after the load ended", f"{X['last_after_load']:.2f} s", ""),
    ]

rows = [
    ("A  purchase, webhooks off (wrk -c64)", f"{rA:,.0f} created/s", f"p99 {pA:.2f} ms; {cA} created, {eA} errors, sold {soldA}"),
    ("B  purchase, webhooks on, order.created (wrk -c64)", f"{rB:,.0f} created/s", f"p99 {pB:.2f} ms; {cB} created, {eB} errors, sold {soldB}"),
    ("   B / A", f"{rB / rA:.2f}", ""),
] + delivery_rows("B", B, soldB, cB) + [
    ("D  purchase, webhooks on, one connection (wrk -c1)", f"{rD:,.0f} created/s", f"p99 {pD:.2f} ms; {cD} created, {eD} errors, sold {soldD}"),
] + delivery_rows("D", D, soldD, cD) + [
    ("C  purchase while the receiver is down (wrk -c64)", f"{rC:,.0f} created/s", f"p99 {pC:.2f} ms; {cC} created, sold {soldC}"),
    ("C  backlog when the receiver came back", f"{soldC:,} events", f"{C['refused']} attempts answered 503 during the outage"),
    ("C  time to drain (up -> last event)", f"{c_drain:.2f} s", f"first event {c_first:.2f} s after up; backoff {min_b}..{max_b} ms"),
    ("C  drain rate (unique / up..last event)", f"{C['unique'] / c_drain:,.0f} events/s" if c_drain > 0 else "n/a", ""),
    ("C  exactly once (unique ids == orders sold)", "yes" if C["exactly_once"] else "NO", f"{C['unique']} unique, {C['duplicates']} duplicates"),
]
print()
print(f"users {users} (C {users_c}, D {users_d}), load {secs} s (C: {secs_c} s; receiver down {secs_c} + {outage_secs} s), "
      f"commit window {window} us, webhooks backoff {min_b}..{max_b} ms")
for name, v, note in rows:
    print(f"{name:52} {v:>18}  {note}")

def pub(X):
    return {k: X[k] for k in ("unique", "duplicates", "rate", "exactly_once", "p50", "p99", "max", "p50_bounds", "p99_bounds",
                              "pending_max", "pending_at_load_end", "last_after_load") if k in X}
json.dump({
    "users": int(users), "users_outage": int(users_c), "users_slow": int(users_d), "secs": float(secs),
    "secs_outage_load": float(secs_c), "outage_extra_secs": float(outage_secs),
    "min_backoff_ms": int(min_b), "max_backoff_ms": int(max_b), "commit_window_us": int(window),
    "off": {"created_per_sec": rA, "p99_ms": pA, "created": cA, "sold": soldA},
    "on": {"created_per_sec": rB, "p99_ms": pB, "created": cB, "sold": soldB, "delivery": pub(B)},
    "on_off_ratio": rB / rA,
    "slow_sale": {"created_per_sec": rD, "p99_ms": pD, "created": cD, "sold": soldD, "delivery": pub(D)},
    "outage": {"created_per_sec": rC, "p99_ms": pC, "backlog": soldC, "refused_attempts": C["refused"],
               "drain_s": c_drain, "first_event_after_up_s": c_first,
               "drain_events_per_sec": C["unique"] / c_drain if c_drain > 0 else None,
               "unique": C["unique"], "duplicates": C["duplicates"], "exactly_once": C["exactly_once"]},
}, open("target/bench/webhooks.json", "w"), indent=2)
PY

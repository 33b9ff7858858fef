#!/usr/bin/env bash
# bench.sh: one run on this machine, side by side:
#   - the server's no-op endpoint (/healthz, the HTTP ceiling), HTTP joins and durable
#     purchases with pre-issued tokens, at commit window 0 and at the default
#     (cargo bench --bench throughput: the real server over loopback HTTP);
#   - the seed designs' Redis + Lua stock deduction (EVALSHA: check bought, check
#     stock, DECRBY, mark user) driven by redis-benchmark with 50 clients.
# Prints every figure and the ratios; writes target/bench/results.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
USERS=${USERS:-20000}
CLIENTS=${CLIENTS:-64}
mkdir -p target/bench

# shellcheck source=scripts/services.sh
source scripts/services.sh >/dev/null

echo "bench.sh: sluice over HTTP ($USERS users, $CLIENTS connections)" >&2
cargo bench --bench throughput -- --users "$USERS" --clients "$CLIENTS" --json target/bench/throughput.json

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
echo "bench.sh: Redis EVALSHA stock deduction (redis-benchmark -c 50, no pipelining)" >&2
evalsha=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -n 300000 -r 100000000 --csv \
    EVALSHA "$sha" 2 stock bought __rand_int__ | tail -n 1 | cut -d, -f2 | tr -d '"')

python3 - "$evalsha" <<'PY'
import json, sys
rows = json.load(open("target/bench/throughput.json"))
evalsha = float(sys.argv[1])
w0, wd = rows[0], rows[1]
print()
print(f"{'figure':44} {'per second':>12}")
print(f"{'no-op endpoint (/healthz)':44} {wd['noop_rps']:>12.0f}")
print(f"{'HTTP join (durable)':44} {wd['join_rps']:>12.0f}")
print(f"{'durable purchase, commit window 0':44} {w0['purchase_rps']:>12.0f}")
print(f"{'durable purchase, window ' + str(wd['commit_window_us']) + ' us (default)':44} {wd['purchase_rps']:>12.0f}")
print(f"{'Redis EVALSHA stock deduction, 50 clients':44} {evalsha:>12.0f}")
print()
print(f"purchase / no-op (target >= 0.7):      {wd['purchase_rps'] / wd['noop_rps']:.2f}")
print(f"purchase / Redis EVALSHA (target >= 1): {wd['purchase_rps'] / evalsha:.2f}")
print(f"group commit speed-up (default / 0):   {wd['purchase_rps'] / w0['purchase_rps']:.1f}x")
json.dump({"throughput": rows, "redis_evalsha_rps": evalsha}, open("target/bench/results.json", "w"), indent=2)
PY

#!/usr/bin/env bash
# bench-gate.sh: a gate in front of a site, measured in one run on this machine:
#   - pass issuance: USERS people join a gate and are admitted at once, each getting a
#     signed pass (the bench client's HTTP joins, 64 connections);
#   - GET /api/gate/{id}/verify with a valid pass (what nginx's auth_request sends
#     for every request of the site) under wrk, beside the no-op /healthz of the same
#     server. Goal: verify >= 0.8x the no-op.
# Writes target/bench/gate.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
USERS=${USERS:-100000}
SECS=${SECS:-5}
server_bin=${SLUICE_BIN:-target/release/sluice}
mkdir -p target/bench
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
cargo bench --bench throughput --no-run -q 2>/dev/null
bench_bin=$(ls -t target/release/deps/throughput-* | grep -v '\.d$' | head -n 1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
store=$(mktemp -d)
SLUICE__SERVER__BIND="127.0.0.1:$port" SLUICE__STORE__PATH="$store" SLUICE__LOG__LEVEL=warn \
    SLUICE__SERVER__WORKERS=2 SLUICE__LIMITS__JOIN_PER_IP_PER_SEC=0 \
    SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC=0 SLUICE__LIMITS__USER_PER_SEC=0 "$server_bin" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true; rm -rf "$store" target/bench/passes.txt' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

issued=$("$bench_bin" --prepare "http://127.0.0.1:$port" target/bench/passes.txt --users "$USERS" --clients 64 --gate \
    | sed -n 's/.*joins \([0-9]*\)\/s.*/\1/p')
pass=$(head -n 1 target/bench/passes.txt | cut -d' ' -f2)
[[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $pass" "http://127.0.0.1:$port/api/gate/bench/verify")" == 204 ]] \
    || { echo "bench-gate.sh: the pass does not verify" >&2; exit 1; }

rps() { wrk -t2 -c64 -d"${SECS}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
codes() { wrk -t2 -c64 -d1s "$@" | grep -c 'Non-2xx' || true; }
noop=$(rps "http://127.0.0.1:$port/healthz")
verify=$(rps -H "Authorization: Bearer $pass" "http://127.0.0.1:$port/api/gate/bench/verify")
[[ "$(codes -H "Authorization: Bearer $pass" "http://127.0.0.1:$port/api/gate/bench/verify")" == 0 ]] \
    || { echo "bench-gate.sh: verify answered non-2xx under load" >&2; exit 1; }
noop2=$(rps "http://127.0.0.1:$port/healthz")
verify2=$(rps -H "Authorization: Bearer $pass" "http://127.0.0.1:$port/api/gate/bench/verify")

python3 - "$issued" "$noop" "$verify" "$noop2" "$verify2" <<'PY'
import json, sys
issued, noop, verify, noop2, verify2 = map(float, sys.argv[1:6])
print()
print(f"{'passes issued (HTTP join, admitted at once)':48} {issued:>10.0f}/s")
print(f"{'no-op /healthz (wrk -t2 -c64), runs 1 / 2':48} {noop:>10.0f} / {noop2:.0f}/s")
print(f"{'GET /api/gate/{id}/verify, valid pass, 1 / 2':48} {verify:>10.0f} / {verify2:.0f}/s")
print(f"verify / no-op (goal >= 0.8): {verify / noop:.2f} / {verify2 / noop2:.2f}")
json.dump({"passes_issued_per_sec": issued, "noop_rps": [noop, noop2], "verify_rps": [verify, verify2]},
          open("target/bench/gate.json", "w"), indent=2)
PY

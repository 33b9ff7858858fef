#!/usr/bin/env bash
# callgrind-gate.sh: instructions per request (not rates: repeatable on a shared
# machine) of the release binary under callgrind, phase by phase over keep-alive
# connections: the no-op /healthz, GET /api/gate/{id}/verify with a valid pass
# (bearer), HTTP joins to a gate (each issues a signed pass) and, for reference,
# HTTP joins to a sale. Each phase's counters are dumped (callgrind_control -d) and
# divided by its N requests. Prints one line per phase; keeps the dumps in
# target/callgrind/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-2000}
server_bin=${SLUICE_BIN:-target/release/sluice}
out=target/callgrind
rm -rf "$out" && mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
store=$(mktemp -d)
SLUICE__SERVER__BIND="127.0.0.1:$port" SLUICE__STORE__PATH="$store" SLUICE__LOG__LEVEL=warn \
    SLUICE__SERVER__WORKERS=2 SLUICE__LIMITS__JOIN_PER_IP_PER_SEC=0 \
    SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC=0 SLUICE__LIMITS__USER_PER_SEC=0 \
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" "$server_bin" 2>"$out/valgrind.log" &
vg_pid=$!
trap 'kill $vg_pid 2>/dev/null || true; wait $vg_pid 2>/dev/null || true; rm -rf "$store"' EXIT
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

python3 - "$port" "$N" "$vg_pid" "$out" <<'PY'
import base64, glob, hashlib, hmac, http.client, json, os, subprocess, sys, time
port, n, vg_pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
SECRET = b"sluice-dev-jwt-secret-change-me-0123456789"
ADMIN = "Bearer sluice-dev-admin-key"
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def jwt(sub):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    c = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 3600}).encode())
    s = b64(hmac.new(SECRET, f"{h}.{c}".encode(), hashlib.sha256).digest())
    return f"{h}.{c}.{s}"
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
def call(method, path, auth=None, body=None):
    headers = {"Authorization": auth} if auth else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()
adm = {"rate_per_sec": 100000, "max_active": 1000000}
assert call("POST", "/api/admin/activities", ADMIN, {"id": "cg", "name": "cg", "kind": "gate",
    "gate": {"origin_url": "http://127.0.0.1/", "pass_ttl_secs": 3600}, "admission": adm})[0] == 201
assert call("POST", "/api/admin/activities", ADMIN, {"id": "cs", "name": "cs", "kind": "sale",
    "stock": 10 * n + 100, "admission": dict(adm, token_ttl_secs=3600)})[0] == 201
st, body = call("POST", "/api/activities/cg/join", "Bearer " + jwt("cg-first"))
pass_ = json.loads(body)["pass"]
bearer = "Bearer " + pass_
# Warm-up: every path once per worker at least.
for i in range(50):
    assert call("GET", "/healthz")[0] == 200
    assert call("GET", "/api/gate/cg/verify", bearer)[0] == 204
    assert call("POST", "/api/activities/cg/join", "Bearer " + jwt(f"cg-w{i}"))[0] == 201
    assert call("POST", "/api/activities/cs/join", "Bearer " + jwt(f"cs-w{i}"))[0] == 201
users = {p: [jwt(f"{p}-{i}") for i in range(n)] for p in ("cg", "cs")}
def dump(name):
    subprocess.run(["callgrind_control", "-d", name, vg_pid], check=True, capture_output=True)
    time.sleep(1)
dump("setup")
phases = [
    ("healthz", lambda i: call("GET", "/healthz")[0] == 200),
    ("verify", lambda i: call("GET", "/api/gate/cg/verify", bearer)[0] == 204),
    ("gate_join", lambda i: call("POST", "/api/activities/cg/join", "Bearer " + users["cg"][i])[0] == 201),
    ("sale_join", lambda i: call("POST", "/api/activities/cs/join", "Bearer " + users["cs"][i])[0] == 201),
]
for name, f in phases:
    for i in range(n):
        assert f(i), name
    dump(name)
def total(path):
    for line in open(path):
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
# Dumps are numbered in order: 1 the setup, then one per phase.
print(f"N = {n} requests per phase, one keep-alive connection")
for k, (name, _) in enumerate(phases, start=2):
    p = f"{out}/callgrind.out.{k}"
    print(f"{name:10} {total(p) / n:>12,.0f} instructions/request   ({os.path.basename(p)})")
PY

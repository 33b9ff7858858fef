#!/usr/bin/env bash
# test.sh: the whole check (format, lints, all tests including those needing Redis/PostgreSQL); CI runs it via .ci/run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Throwaway Redis + PostgreSQL on free ports, stopped and deleted on exit (EXIT trap):
# exports SLUICE_TEST_REDIS_URL, SLUICE_TEST_PG_URL and the *_STOP/*_START helpers.
# shellcheck source=scripts/services.sh
source scripts/services.sh

step() { echo "test.sh: == $* ==" >&2; }

# The OpenAPI document's validator (tests/openapi.rs, an ignored test run below).
step "openapi-spec-validator"
if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
    python3 -m pip install --quiet openapi-spec-validator
fi

# The Standard Webhooks reference library: a receiver in tests/api/webhooks.rs
# verifies every delivery with it (an ignored test run below).
step "standardwebhooks"
if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
    python3 -m pip install --quiet standardwebhooks
fi

# PyJWT with its JWKS client: checks gate passes offline (tests/api/gate.rs runs
# scripts/check-pass.py), an implementation of JWT/JWKS that is not sluice's.
step "pyjwt"
if ! python3 -c 'import jwt, cryptography' 2>/dev/null; then
    python3 -m pip install --quiet 'pyjwt[crypto]'
fi

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# --include-ignored: the ignored tests are the ones that need the services started above.
step "cargo test"
cargo test --workspace -- --include-ignored

# The crash campaign with a small N (docs/durability.md has the full run): the debug
# binaries, kill -9 twenty times under load, every acknowledged operation checked.
# (The journal-damage and full-disk tests ran above, in tests/crash.)
step "crash campaign (20 kills)"
cargo build -q -p sluice -p sluice-simulations
campaign_out=$(mktemp -d)
target/debug/simulate crash-campaign --spawn-server target/debug/sluice \
    --kills 20 --life-ms 4000 --max-secs 170 --out-dir "$campaign_out"
rm -rf "$campaign_out"

# The flash-sale and hospital scenarios at a small size on the debug binaries (about
# 5 and 12 s): each ends with its fairness verdicts (its own verifier and
# scripts/verify-fairness.py) and the post-event report checked against what the
# simulated users measured; any failed check exits 1 and fails the suite. 1,000
# patients keep the shuffle's 10 x 10 chi-square at 10 expected per cell.
step "simulations: flash-sale, hospital"
sim_out=$(mktemp -d)
target/debug/simulate flash-sale --spawn-server target/debug/sluice \
    --users 1000 --stock 100 --rate 100 --max-secs 60 --out-dir "$sim_out"
target/debug/simulate hospital --spawn-server target/debug/sluice \
    --patients 1000 --doctors 2 --slots-per-doctor 8 --capacity 3 \
    --unpaid-fraction 0.2 --payment-timeout 2 --max-secs 60 --out-dir "$sim_out"
rm -rf "$sim_out"

# browser tests: the real binary (built by cargo test above) on a free port with a
# throwaway store, driven by Playwright in Debian's headless Chromium: the flows,
# axe-core (WCAG 2.2 A/AA, from the lock file) in every page state, keyboard only, a
# hidden tab, and Chromium with JavaScript disabled (docs/accessibility.md). gate.mjs
# starts its own nginx (installed by services.sh) in front of an origin site guarded by
# auth_request to the same server (docs/gate.md).
step "browser tests"
if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
fi
browser_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
browser_store=$(mktemp -d)
SLUICE__SERVER__BIND="127.0.0.1:$browser_port" SLUICE__STORE__PATH="$browser_store" \
    SLUICE__LOG__LEVEL=warn target/debug/sluice &
browser_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$browser_port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
browser_rc=0
(
    cd tests/browser
    npm ci --no-audit --no-fund --loglevel=error
    SLUICE_URL="http://127.0.0.1:$browser_port" node run.mjs
    SLUICE_URL="http://127.0.0.1:$browser_port" node report.mjs
    SLUICE_URL="http://127.0.0.1:$browser_port" node gate.mjs
) || browser_rc=$?
kill "$browser_pid" 2>/dev/null || true
wait "$browser_pid" 2>/dev/null || true
rm -rf "$browser_store"
if [[ $browser_rc -ne 0 ]]; then
    echo "test.sh: browser tests failed (screenshots in tests/browser/artifacts/)" >&2
    exit "$browser_rc"
fi

echo "test.sh: all passed"

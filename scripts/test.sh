#!/usr/bin/env bash
# test.sh: the whole check (format, lints, all tests including those needing Redis/PostgreSQL); CI runs it via .ci/run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Throwaway Redis + PostgreSQL on free ports, stopped and deleted on exit (EXIT trap):
# exports SLUICE_TEST_REDIS_URL, SLUICE_TEST_PG_URL and the *_STOP/*_START helpers.
# shellcheck source=scripts/services.sh
source scripts/services.sh

step() { echo "test.sh: == $* ==" >&2; }

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# --include-ignored: the ignored tests are the ones that need the services started above.
step "cargo test"
cargo test --workspace -- --include-ignored

# browser tests:
# (the lead adds the browser-test step here; services are still up at this point)

echo "test.sh: all passed"

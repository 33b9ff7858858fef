# services.sh: throwaway Redis and PostgreSQL for the tests; SOURCE it (test.sh does), don't run it.
# shellcheck shell=bash
#
# Installs what is missing (apt-get: also nginx and haproxy, which the front-door tests
# start themselves, one per test, on free ports), starts both servers on free ports with their data
# in temp dirs, and exports for the tests:
#   SLUICE_TEST_REDIS_URL  redis://127.0.0.1:PORT
#   SLUICE_TEST_PG_URL     postgres://postgres@127.0.0.1:PORT/sluice_test
#   SLUICE_TEST_{REDIS,PG}_{STOP,START}  shell commands that stop/start exactly these
#                          instances (same port, same data dir), for outage tests.
# An EXIT trap stops both and deletes the temp dirs; a caller that needs its own EXIT
# trap must call sluice_services_cleanup from it. Never uses 5432/6379: other servers
# on this machine own them.

if [[ -n "${SLUICE_SERVICES_TMP:-}" ]]; then
    return 0 # already started by an outer source
fi

sluice_services_die() {
    echo "services.sh: $*" >&2
    exit 1
}

# Runs a command as the postgres OS user when we are root (initdb/postgres refuse root).
sluice_as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

sluice_pg_bindir() {
    local d
    # Newest major version first.
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

sluice_install_missing() {
    local pkgs=()
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server)
    sluice_pg_bindir >/dev/null || pkgs+=(postgresql)
    # The front-door tests (tests/front) start their own nginx and HAProxy on free
    # ports with generated configs; they only need the binaries.
    [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || pkgs+=(nginx)
    [[ -x /usr/sbin/haproxy ]] || command -v haproxy >/dev/null || pkgs+=(haproxy)
    # TLS tests make their certificates with the openssl CLI; the unit is verified by
    # systemd-analyze.
    command -v openssl >/dev/null || pkgs+=(openssl)
    command -v systemd-analyze >/dev/null || pkgs+=(systemd)
    [[ ${#pkgs[@]} -eq 0 ]] && return 0
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    echo "services.sh: installing ${pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >/dev/null ||
        sluice_services_die "apt-get update failed"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
        sluice_services_die "apt-get install ${pkgs[*]} failed"
}

# A TCP port nobody listens on, below the ephemeral range (32768+) so outgoing
# connections cannot be holding it. (Racy by nature; start failures are reported.)
sluice_free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        [[ $p == 5432 || $p == 6379 ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            if ! command -v ss >/dev/null || [[ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]]; then
                echo "$p"
                return 0
            fi
        fi
    done
    return 1
}

# Writes an executable helper script and prints the command that runs it.
sluice_helper() {
    local file="$1"
    shift
    {
        echo '#!/usr/bin/env bash'
        echo 'set -euo pipefail'
        printf '%s\n' "$@"
    } >"$file"
    chmod 755 "$file"
    echo "bash $file"
}

sluice_services_cleanup() {
    local rc=$?
    if [[ -n "${SLUICE_TEST_REDIS_STOP:-}" ]]; then
        bash -c "$SLUICE_TEST_REDIS_STOP" >/dev/null 2>&1 || true
    fi
    if [[ -n "${SLUICE_TEST_PG_STOP:-}" ]]; then
        bash -c "$SLUICE_TEST_PG_STOP" >/dev/null 2>&1 || true
    fi
    if [[ -n "${SLUICE_SERVICES_TMP:-}" && -d "$SLUICE_SERVICES_TMP" ]]; then
        rm -rf "$SLUICE_SERVICES_TMP"
    fi
    unset SLUICE_SERVICES_TMP SLUICE_TEST_REDIS_STOP SLUICE_TEST_PG_STOP
    return $rc
}

sluice_start_redis() {
    local dir="$SLUICE_SERVICES_TMP/redis" port
    mkdir -p "$dir"
    port=$(sluice_free_port) || sluice_services_die "no free port for Redis"
    local q_dir q_port
    q_dir=$(printf '%q' "$dir")
    q_port=$(printf '%q' "$port")
    export SLUICE_TEST_REDIS_START SLUICE_TEST_REDIS_STOP SLUICE_TEST_REDIS_URL
    SLUICE_TEST_REDIS_START=$(sluice_helper "$dir/start.sh" \
        "redis-server --port $q_port --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \\" \
        "    --dir $q_dir --pidfile $q_dir/redis.pid --logfile $q_dir/redis.log" \
        "for _ in \$(seq 1 100); do" \
        "    [[ \"\$(redis-cli -h 127.0.0.1 -p $q_port ping 2>/dev/null)\" == PONG ]] && exit 0" \
        "    sleep 0.1" \
        "done" \
        "echo \"Redis on port $q_port did not come up; log:\" >&2; tail -n 20 $q_dir/redis.log >&2; exit 1")
    SLUICE_TEST_REDIS_STOP=$(sluice_helper "$dir/stop.sh" \
        "redis-cli -h 127.0.0.1 -p $q_port shutdown save >/dev/null 2>&1 || true" \
        "for _ in \$(seq 1 100); do" \
        "    redis-cli -h 127.0.0.1 -p $q_port ping >/dev/null 2>&1 || exit 0" \
        "    sleep 0.1" \
        "done" \
        "echo \"Redis on port $q_port did not stop\" >&2; exit 1")
    bash -c "$SLUICE_TEST_REDIS_START" ||
        sluice_services_die "cannot start a throwaway Redis on port $port (see above)"
    SLUICE_TEST_REDIS_URL="redis://127.0.0.1:$port"
}

sluice_start_pg() {
    local bindir dir="$SLUICE_SERVICES_TMP/pg" port
    bindir=$(sluice_pg_bindir) || sluice_services_die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin"
    mkdir -p "$dir"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || sluice_services_die "no 'postgres' OS user to run initdb as"
        chown postgres: "$dir"
        # The postgres user must be able to reach the data dir.
        chmod 755 "$SLUICE_SERVICES_TMP"
    fi
    port=$(sluice_free_port) || sluice_services_die "no free port for PostgreSQL"
    sluice_as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; sluice_services_die "initdb failed"; }
    local run_as="" q_dir q_port q_ctl
    [[ "$(id -u)" == 0 ]] && run_as="runuser -u postgres -- "
    q_dir=$(printf '%q' "$dir")
    q_port=$(printf '%q' "$port")
    q_ctl=$(printf '%q' "$bindir/pg_ctl")
    export SLUICE_TEST_PG_START SLUICE_TEST_PG_STOP SLUICE_TEST_PG_URL
    SLUICE_TEST_PG_START=$(sluice_helper "$dir/start.sh" \
        "${run_as}$q_ctl -D $q_dir/data -l $q_dir/postgres.log -w -t 30 \\" \
        "    -o \"-p $q_port -k $q_dir -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null")
    # fast: disconnect clients and stop cleanly, as an operator would.
    SLUICE_TEST_PG_STOP=$(sluice_helper "$dir/stop.sh" \
        "${run_as}$q_ctl -D $q_dir/data -m fast -w -t 30 stop >/dev/null")
    bash -c "$SLUICE_TEST_PG_START" ||
        { tail -n 20 "$dir/postgres.log" >&2 || true; sluice_services_die "cannot start a throwaway PostgreSQL on port $port"; }
    "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE sluice_test" >/dev/null ||
        sluice_services_die "cannot create database sluice_test on port $port"
    SLUICE_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/sluice_test"
}

sluice_install_missing
export SLUICE_SERVICES_TMP
SLUICE_SERVICES_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-services.XXXXXX") ||
    sluice_services_die "cannot create a temp dir"
trap sluice_services_cleanup EXIT
# Make Ctrl-C / kill go through the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM
sluice_start_redis
sluice_start_pg
echo "services.sh: Redis at $SLUICE_TEST_REDIS_URL, PostgreSQL at $SLUICE_TEST_PG_URL" >&2

#!/usr/bin/env bash
# sentinel-group.sh: a throwaway Redis primary, one replica and three sentinels on
# free ports (temp dirs, no persistence), for running the cluster simulation against
# Sentinel by hand (docs/cluster.md). Prints the settings, then waits; Ctrl-C stops
# everything and deletes the dirs.
#
#   scripts/sentinel-group.sh            # prints SENTINELS=... PRIMARY_PORT=... REPLICA_PORT=...
#   target/release/simulate cluster ... --sentinel "$SENTINELS"
#   redis-cli -p "$PRIMARY_PORT" shutdown nosave   # the Redis primary dies mid-sale
set -euo pipefail

command -v redis-server >/dev/null || { echo "install redis-server" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-sentinels.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() { # name port args...
    local name=$1 port=$2
    shift 2
    mkdir -p "$dir/$name"
    redis-server "$@" --port "$port" --bind 127.0.0.1 --dir "$dir/$name" \
        --logfile "$dir/$name/log" &
    pids+=($!)
    for _ in $(seq 1 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$name on $port did not start" >&2
    exit 1
}

primary=$(free_port)
replica=$(free_port)
start primary "$primary" --save '' --appendonly no
start replica "$replica" --save '' --appendonly no --replicaof 127.0.0.1 "$primary"
sentinels=()
for i in 1 2 3; do
    port=$(free_port)
    mkdir -p "$dir/s$i"
    cat >"$dir/s$i/sentinel.conf" <<EOF
sentinel monitor sluice 127.0.0.1 $primary 2
sentinel down-after-milliseconds sluice 1000
sentinel failover-timeout sluice 4000
sentinel parallel-syncs sluice 1
EOF
    start "s$i" "$port" "$dir/s$i/sentinel.conf" --sentinel
    sentinels+=("127.0.0.1:$port")
done
echo "SENTINELS=$(IFS=,; echo "${sentinels[*]}") PRIMARY_PORT=$primary REPLICA_PORT=$replica"
echo "sentinel-group.sh: logs in $dir; Ctrl-C stops the group" >&2
wait

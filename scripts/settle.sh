#!/usr/bin/env bash
# settle.sh, sourced by the benchmark scripts: settle PORT waits (at most 120 s) until
# the sluice server on PORT holds its whole journal in sled (`sluice_journal_bytes`
# 0 on /metrics), so a measured window starts without a setup's checkpoint still
# running and a figure taken after it includes the window's own checkpoint. A quiet
# store checkpoints once `store.checkpoint_ms` has passed since its last one.
settle() {
    local bytes
    for _ in $(seq 1 480); do
        bytes=$(curl -fsS "http://127.0.0.1:$1/metrics" | awk '$1 == "sluice_journal_bytes" {print $2}')
        [[ "$bytes" == 0 ]] && return 0
        sleep 0.25
    done
    echo "settle: the store on port $1 still had ${bytes:-?} journal bytes after 120 s" >&2
    return 1
}

#!/usr/bin/env bash
# Run `wtilde compute` on a workstation until the store is complete, resuming after a crash.
#
#   deployments/local/wtilde-local.sh DATASET --out w.zarr [wtilde compute options]
#   nohup deployments/local/wtilde-local.sh sma --out sma.zarr > wtilde.log 2>&1 &     # survives logout
#
# The embedded LocalCluster uses one single-threaded worker process per core (--workers N
# --threads-per-worker T to change it); the dashboard listens on 127.0.0.1 only. If the run stops
# with an error after making progress (e.g. the machine ran out of memory and a worker was killed),
# it is started again and resumes from the store's ledger; it gives up after WTILDE_MAX_RESTARTS
# (default 5) attempts without progress, or on Ctrl-C.
set -u
WTILDE=${WTILDE:-wtilde}
PYTHON=${PYTHON:-python}
MAX=${WTILDE_MAX_RESTARTS:-5}

STORE=""
prev=""
for a in "$@"; do
    case "$a" in --out=*) STORE=${a#--out=} ;; esac
    [ "$prev" = "--out" ] && STORE=$a
    prev=$a
done
[ -n "$STORE" ] || { echo "wtilde-local: no --out STORE.zarr among the arguments" >&2; exit 2; }

done_blocks() {
    "$PYTHON" -c 'import sys; from wtilde_dask.store import WTildeStore as S; print(S.open(sys.argv[1]).n_done())' \
        "$STORE" 2>/dev/null || echo 0
}

trap 'echo "wtilde-local: interrupted"; exit 130' INT TERM
failures=0
while :; do
    before=$(done_blocks)
    "$WTILDE" compute "$@"
    rc=$?
    [ "$rc" = 0 ] && exit 0
    after=$(done_blocks)
    if [ "$after" -gt "$before" ]; then
        failures=0
    else
        failures=$((failures + 1))
    fi
    if [ "$failures" -ge "$MAX" ]; then
        echo "wtilde-local: $failures attempts in a row made no progress (exit $rc): giving up" >&2
        exit "$rc"
    fi
    echo "wtilde-local: wtilde compute exited with $rc ($after blocks stored): resuming in 10 s" >&2
    sleep 10
done

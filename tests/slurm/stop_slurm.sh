#!/usr/bin/env bash
# Stop what tests/slurm/start_slurm.sh started (and nothing else).
#
# A SLURM that was already running before start_slurm.sh is left alone. For daemons the start script
# started, it cancels the jobs left in the queue, then ends slurmd, slurmctld and munged by the
# process ids it recorded in $WTILDE_SLURM_STATE.
set -uo pipefail

STATE=${WTILDE_SLURM_STATE:-/run/wtilde-slurm}
export PATH="$PATH:/usr/sbin:/sbin"
say() { echo "== slurm: $*"; }

if [ ! -d "$STATE" ] || [ -z "$(ls -A "$STATE" 2>/dev/null)" ]; then
    say "nothing started by start_slurm.sh: leaving SLURM as it is"
    exit 0
fi

if [ -s "$STATE/slurmctld.pid" ]; then
    # every job on this private test cluster comes from the tests
    timeout 10 scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1 || true
    sleep 1
fi

stop_pid() {   # name pidfile
    local name=$1 file=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

stop_pid slurmd "$STATE/slurmd.pid"
stop_pid slurmctld "$STATE/slurmctld.pid"
stop_pid munged "$STATE/munged.pid"
rmdir "$STATE" 2>/dev/null || true
exit 0

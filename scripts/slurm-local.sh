#!/usr/bin/env bash
# A real single-node SLURM for tests and demos: munged + slurmctld + slurmd,
# all state in one folder, stopped through their pid files (never by name).
#
#   scripts/slurm-local.sh start [DIR]   install if missing, start; prints `export SLURM_CONF=...`
#   scripts/slurm-local.sh stop  [DIR]   stop the daemons started in DIR
#   scripts/slurm-local.sh status [DIR]  sinfo for DIR
#
# DIR defaults to $GEOKR_SLURM_DIR, else (start) a new temp folder, else
# (stop/status) the folder of $SLURM_CONF.  Needs root (SlurmUser=root).
# Ports: $GEOKR_SLURM_PORT (slurmctld, default 6817) and that + 1 (slurmd).
set -euo pipefail

die() { echo "slurm-local: $*" >&2; exit 1; }

ensure_installed() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root"
    command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null
        apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null
    }
}

state_dir() {  # $1: start|other, $2: optional DIR
    if [ -n "${2:-}" ]; then echo "$2"
    elif [ -n "${GEOKR_SLURM_DIR:-}" ]; then echo "$GEOKR_SLURM_DIR"
    elif [ "$1" = start ]; then mktemp -d /tmp/geokr-slurm.XXXXXX
    elif [ -n "${SLURM_CONF:-}" ]; then dirname "$SLURM_CONF"
    else die "no state folder: give DIR, or set GEOKR_SLURM_DIR or SLURM_CONF"
    fi
}

write_conf() {  # $1: DIR
    local dir=$1 host cpus mem port
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    port=${GEOKR_SLURM_PORT:-6817}
    cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh at $(date -u +%FT%TZ); single node, everything under $dir
ClusterName=geokr-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MinJobAge=30
KillWait=5
SchedulerParameters=sched_interval=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {  # $1: DIR
    local dir=$1
    install -d -m 0755 -o munge -g munge "$dir/munge"
    runuser -u munge -- /usr/sbin/munged \
        --socket="$dir/munge/munge.socket.2" \
        --pid-file="$dir/munge/munged.pid" \
        --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed"
}

wait_ready() {  # $1: DIR
    local i
    for i in $(seq 1 60); do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then return 0; fi
        sleep 0.5
    done
    die "slurm did not come up within 30 s; logs: $1/log"
}

cmd_start() {
    local dir
    ensure_installed
    dir=$(state_dir start "${1:-}")
    mkdir -p "$dir"/{state,spool,run,log}
    dir=$(cd "$dir" && pwd)
    chmod 0755 "$dir"
    [ -f "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null \
        && die "already running in $dir (stop it first)"
    write_conf "$dir"
    export SLURM_CONF=$dir/slurm.conf
    start_munge "$dir"
    slurmctld -c -f "$SLURM_CONF"   # -c: clean start, no jobs from an old state
    slurmd -f "$SLURM_CONF"
    wait_ready "$dir"
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop_pidfiles() {  # $@: pid files; TERM to all, then wait (KILL after 10 s)
    local f pid i pids=()
    for f in "$@"; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null && pids+=("$pid")
        rm -f "$f"
    done
    for pid in "${pids[@]}"; do
        for i in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    done
    return 0
}

cmd_stop() {
    local dir
    dir=$(state_dir stop "${1:-}")
    stop_pidfiles "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"
    stop_pidfiles "$dir/munge/munged.pid"
    echo "stopped slurm in $dir"
}

cmd_status() {
    local dir
    dir=$(state_dir status "${1:-}")
    SLURM_CONF=$dir/slurm.conf sinfo
}

case "${1:-}" in
    start) cmd_start "${2:-}" ;;
    stop) cmd_stop "${2:-}" ;;
    status) cmd_status "${2:-}" ;;
    *) die "usage: $0 start|stop|status [DIR]" ;;
esac

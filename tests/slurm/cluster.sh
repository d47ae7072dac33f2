#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for the workflow's SLURM test (tests/test_slurm.py).
#   tests/slurm/cluster.sh install       Debian's slurm-wlm and munge, with apt-get (root; skipped if present)
#   tests/slurm/cluster.sh start DIR     munged, slurmctld and slurmd, their files and PIDs in DIR, the
#                                        configuration DIR/slurm.conf linked from /etc/slurm/slurm.conf
#   tests/slurm/cluster.sh stop DIR      stops the daemons started in DIR, by PID, and removes the link
# The link: the executor's job steps call `srun` without $SLURM_CONF, so the configuration must be where
# a real cluster keeps it; an /etc/slurm/slurm.conf that is not ours is never replaced.
# No systemd: the daemons run in the foreground, in the background of this script. Accounting is off, so
# Snakemake's SLURM executor must poll with `--slurm-status-command squeue`; MinJobAge keeps finished jobs
# visible to squeue for 300 s (at least 3x the executor's first-check delay).
set -euo pipefail
cmd=${1:?usage: cluster.sh install|start DIR|stop DIR}

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "cluster.sh: timed out waiting for: $*" >&2; return 1; }
        sleep 0.5
    done
}

case $cmd in
install)
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then exit 0; fi
    [[ $EUID -eq 0 ]] || { echo "cluster.sh install: run as root (apt-get)" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    ;;
start)
    dir=$(realpath -m "${2:?cluster.sh start DIR}")
    mkdir -p "$dir/state" "$dir/spool" /run/munge /run/slurm
    chown munge:munge /run/munge
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile /etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
    host=$(hostname -s)
    cat >"$dir/slurm.conf" <<CONF
ClusterName=lottery-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MinJobAge=300
ReturnToService=2
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=64000 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    if [[ -e /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) != "$dir/slurm.conf" ]]; then
        echo "cluster.sh: /etc/slurm/slurm.conf exists and is not this cluster's; not replacing it" >&2; exit 1
    fi
    mkdir -p /etc/slurm && ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F >"$dir/munged.out" 2>&1 &  # execs: $! is munged
    echo $! >"$dir/munged.pids"
    wait_for 20 munge -n
    /usr/sbin/slurmctld -D -i >"$dir/slurmctld.out" 2>&1 &
    echo $! >"$dir/slurmctld.pids"
    wait_for 30 scontrol ping
    /usr/sbin/slurmd -D >"$dir/slurmd.out" 2>&1 &
    echo $! >"$dir/slurmd.pids"
    wait_for 30 bash -c "sinfo -h -o %t | grep -qx idle"
    ;;
stop)
    dir=$(realpath -m "${2:?cluster.sh stop DIR}")
    for daemon in slurmd slurmctld munged; do  # the reverse order of start
        [[ -f $dir/$daemon.pids ]] || continue
        pid=$(cat "$dir/$daemon.pids")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        rm "$dir/$daemon.pids"
    done
    if [[ $(readlink /etc/slurm/slurm.conf) == "$dir/slurm.conf" ]]; then rm /etc/slurm/slurm.conf; fi
    ;;
*)
    echo "usage: cluster.sh install|start DIR|stop DIR" >&2; exit 2 ;;
esac

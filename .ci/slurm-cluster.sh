#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for the workflow's cluster test (tests/
# test_cluster.py; tooling.md §3). Needs root and Debian's slurmctld, slurmd,
# slurm-client and munge; no systemd: the daemons are started by hand.
#   .ci/slurm-cluster.sh start    # munge, slurmctld, slurmd; waits for the node to be idle
#   .ci/slurm-cluster.sh stop     # kills them by PID file, removes slurm.conf
set -euo pipefail

CONF=/etc/slurm/slurm.conf
PIDS=(/run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid)

start() {
    if [[ -e $CONF ]]; then
        echo "$CONF exists: not touching a configured SLURM installation" >&2
        exit 3
    fi
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # RealMemory must not exceed the machine's memory, or the node drains
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))
    install -d -o munge -g munge -m 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 40); do munge -n > /dev/null 2>&1 && break; sleep 0.25; done
    install -d -o slurm -g slurm /var/spool/slurmctld /run/slurm /var/log/slurm
    install -d /var/spool/slurmd
    cat > "$CONF" <<CONFEOF
ClusterName=patchcxr-ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# finished jobs stay visible to squeue for 5 minutes: Snakemake's status command
MinJobAge=300
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONFEOF
    /usr/sbin/slurmctld
    /usr/sbin/slurmd
    for _ in $(seq 1 120); do
        sinfo -h -o %T 2> /dev/null | grep -q idle && { sinfo; return 0; }
        sleep 0.5
    done
    echo "the SLURM node did not become idle" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    local f pid
    for f in "${PIDS[@]}"; do
        [[ -s $f ]] || continue
        pid=$(< "$f")
        kill "$pid" 2> /dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2> /dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2> /dev/null || true
    done
    # with slurm.conf left behind every snakemake start waits 10 s for a controller
    rm -f "$CONF"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Installs Slurm (Debian's slurm-wlm and munge) and starts a single-node cluster on this
# machine: munged with a local key, slurmctld and slurmd, one partition holding every core.
# Run as root. CI runs it before the tests, so that tests/slurm.rs submits the scripts of
# examples/slurm/ to a real Slurm; it installs the packages itself, so a machine that already
# has them does not hide a missing step.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }

# The partition shares each core among up to four jobs: tests/slurm.rs runs two copies of one
# shard at once (a double submission), which two cores would otherwise serialize.

# munge: a local key, shared by the controller and the node (the same machine).
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force

host="$(hostname -s)"
cpus="$(nproc)"
memory="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=smoothing-ci
SlurmctldHost=${host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
JobRequeue=1
MinJobAge=600
NodeName=${host} CPUs=${cpus} RealMemory=${memory} State=UNKNOWN
PartitionName=main Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
# Ready once the node answers as idle (or mixed, if a job already runs).
for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
        echo "slurm: node ${host} up with ${cpus} CPUs"
        exit 0
    fi
    sleep 1
done
echo "slurm did not start; see /var/log/slurm/" >&2
sinfo -N >&2 || true
exit 1

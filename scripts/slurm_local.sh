#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (for testing jobscripts/), started without systemd:
# munge, slurmctld and slurmd as plain daemons, no cgroups. Needs root and the Debian packages
# slurmctld slurmd slurm-client munge (scripts/setup.sh --tests installs them). Does nothing
# when a SLURM controller already answers. Usage: scripts/slurm_local.sh
set -euo pipefail
if scontrol ping 2>/dev/null | grep -q UP; then exit 0; fi
[[ $(id -u) == 0 ]] || { echo "scripts/slurm_local.sh: needs root to start munge and SLURM" >&2; exit 1; }
host=$(hostname -s)
cpus=$(nproc)
mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
conf=/etc/slurm/slurm.conf
if [[ ! -f $conf ]] || ! grep -q "rewarm local cluster" "$conf"; then
  mkdir -p /etc/slurm
  [[ -f $conf ]] && cp "$conf" "$conf.before-rewarm"
  cat >"$conf" <<CONF
# rewarm local cluster (scripts/slurm_local.sh): one node, no cgroups, no accounting
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurmctld.log
SlurmdLogFile=/var/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
chown slurm:slurm /var/spool/slurmctld 2>/dev/null || true
pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged 2>/dev/null || munged --force
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then exit 0; fi
  sleep 1
done
echo "scripts/slurm_local.sh: the local SLURM node did not come up; see /var/log/slurmctld.log and /var/log/slurmd.log" >&2
exit 1

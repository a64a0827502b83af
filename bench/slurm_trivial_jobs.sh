#!/usr/bin/env bash
# The Slurm side of bench/trivial_jobs.sh: N trivial jobs (`true`, 1 CPU + 1
# GPU each) on a one-node Slurm 22.05 (Debian slurm-wlm) with 2 CPUs and 8
# GRES GPUs, sched/backfill and select/cons_tres, from the first sbatch to the
# last completion. Runs slurmctld and slurmd on this machine (root) with a
# private configuration and state directory; installs slurm-wlm and munge if
# missing. Prints: slurm jobs=N seconds=S
set -euo pipefail
N=${1:-100}
[ "$(id -u)" = 0 ] || { echo "needs root (runs slurmctld/slurmd)" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
work=$(mktemp -d /tmp/icos-slurm.XXXXXX)
chmod 755 "$work"
host=$(hostname -s)
cpus=2
cat > "$work/slurm.conf" <<CONF
ClusterName=icosbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldPort=$(( 17000 + RANDOM % 1000 ))
SlurmdPort=$(( 18000 + RANDOM % 1000 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MpiDefault=none
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus Gres=gpu:8 RealMemory=1000 State=UNKNOWN
PartitionName=bench Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# Eight stand-in GPU device files (character devices like /dev/null): Slurm's
# gres/gpu wants device files; the jobs (`true`) never open them.
mkdir -p "$work/state" "$work/spool" "$work/dev"
for i in 0 1 2 3 4 5 6 7; do mknod "$work/dev/gpu$i" c 1 3; done
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/dev/gpu[0-7]\n' "$host" "$work" > "$work/gres.conf"
export SLURM_CONF=$work/slurm.conf
pgrep -x munged >/dev/null || { mkdir -p /run/munge && chown munge:munge /run/munge; su -s /bin/sh munge -c munged 2>/dev/null || munged --force; }
slurmctld -D -f "$SLURM_CONF" > "$work/ctld.out" 2>&1 &
ctld=$!
slurmd -D -f "$SLURM_CONF" > "$work/slurmd.out" 2>&1 &
sd=$!
trap '[ -n "${KEEP:-}" ] || scancel --user=root >/dev/null 2>&1 || true; kill $ctld $sd 2>/dev/null; wait $ctld $sd 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo -h -o %T | grep -q idle || { cat "$work"/*.log >&2; echo "slurm did not come up" >&2; exit 1; }
cd "$work"
start=$(date +%s.%N)
for i in $(seq "$N"); do sbatch -Q --gres=gpu:1 -c 1 -o /dev/null --wrap true; done
while [ -n "$(squeue -h -o %i 2>/dev/null)" ]; do sleep 0.2; done
end=$(date +%s.%N)
/usr/bin/python3 -c "print('slurm jobs=%d seconds=%.2f' % ($N, $end - $start))"

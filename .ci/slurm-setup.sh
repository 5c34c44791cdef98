#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests marked `slurm`
# (tests/cluster/test_slurm_plugin.py).
#
#   .ci/slurm-setup.sh                 # as root, or a user with passwordless sudo
#   export KETPET_SLURM=1              # then run pytest
#
# Installs Debian's slurm-wlm and munge (apt-get), writes /etc/slurm/slurm.conf for this host
# (partition "debug", 2 CPUs, job completion logged to $JOBCOMP_LOG), creates the munge key,
# starts munged, slurmctld and slurmd without systemd, and waits until the node is idle.
# Idempotent: a second run with everything up only checks it (about a second). Exits non-zero
# with a one-line reason when something fails.
set -euo pipefail

JOBCOMP_LOG=/var/log/slurm/jobcomp.log
CONF=/etc/slurm/slurm.conf
WAIT_SECONDS=${SLURM_SETUP_WAIT:-60}

die() { echo "slurm-setup: error: $*" >&2; exit 1; }
say() { echo "slurm-setup: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (no sudo available)"
    exec sudo --non-interactive "$0" "$@"
fi

# ---- packages -------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge with apt-get"
    started=$SECONDS
    # No daemon may start during the install: they are configured and started below.
    policy_created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_ok=1
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold slurm-wlm munge >/dev/null || apt_ok=0
    [ "$policy_created" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$apt_ok" -eq 1 ] || die "apt-get install slurm-wlm munge failed"
    say "packages installed in $((SECONDS - started)) s"
fi

# ---- slurm.conf -----------------------------------------------------------------------------
host=$(hostname -s)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_mem=$((mem_mb * 9 / 10))  # a bit under the real amount, or slurmd marks the node invalid
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
new_conf=$(cat <<EOF
# Written by ketpet_bids .ci/slurm-setup.sh: a one-node test cluster on ${host}.
ClusterName=ketpet
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# Start jobs whose dependencies are met within a second (the default loop runs every 60 s),
# and cancel jobs whose dependency failed instead of leaving them pending for ever.
SchedulerParameters=sched_interval=1,bf_interval=1,kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${JOBCOMP_LOG}
NodeName=${host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=${real_mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
conf_changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$CONF"
    conf_changed=1
fi
touch "$JOBCOMP_LOG"

# ---- munge ----------------------------------------------------------------------------------
munge_user=root
id munge >/dev/null 2>&1 && munge_user=munge
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown "$munge_user:" /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
    say "starting munged"
    if [ "$munge_user" = root ]; then
        munged --force || die "munged did not start (see /var/log/munge/munged.log)"
    else
        runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
    fi
    for _ in $(seq 50); do munge_works && break; sleep 0.1; done
    munge_works || die "munge credentials do not work (see /var/log/munge/munged.log)"
fi

# ---- slurmctld and slurmd -------------------------------------------------------------------
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {  # stop the daemon whose pid file is $1 (only when the configuration changed)
    alive "$1" || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    die "daemon $pid ($1) did not stop"
}
if [ "$conf_changed" -eq 1 ]; then
    stop /run/slurmd.pid
    stop /run/slurmctld.pid
fi
if ! alive /run/slurmctld.pid; then
    say "starting slurmctld"
    slurmctld || die "slurmctld did not start: $(tail -n 3 /var/log/slurm/slurmctld.log 2>/dev/null)"
fi
if ! alive /run/slurmd.pid; then
    say "starting slurmd"
    slurmd || die "slurmd did not start: $(tail -n 3 /var/log/slurm/slurmd.log 2>/dev/null)"
fi

# ---- wait for the node ----------------------------------------------------------------------
deadline=$((SECONDS + WAIT_SECONDS))
while :; do
    state=$(sinfo --noheader --nodes="$host" --format=%T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*|drained*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated) ;;
    *) die "node $host is '${state:-not reported}' after ${WAIT_SECONDS} s; see /var/log/slurm/slurmctld.log and slurmd.log" ;;
esac
say "ready: $(sinfo --version), node $host $state, partition debug, job log $JOBCOMP_LOG"

#!/usr/bin/env bash
# A real OpenStack Cinder with a one-node Ceph backend, on loopback, for the tests.
#
#   bash scripts/cinder.sh start        # install (if needed), start ceph, rabbitmq, cinder; print the URL
#   bash scripts/cinder.sh stop         # stop what `start` started (by pid); the data stays
#   bash scripts/cinder.sh status       # exit 0 (and print the URL) when cinder-api answers
#   bash scripts/cinder.sh purge        # stop, then delete the data dir (not the venv)
#   bash scripts/cinder.sh env [USER]   # shell exports for USER (default cinder, the service user)
#   bash scripts/cinder.sh url          # the block-storage URL, http://127.0.0.1:PORT/v3
#   bash scripts/cinder.sh ceph-env     # CEPH_CONF/CEPH_ARGS exports for the `cinder` ceph client
#   bash scripts/cinder.sh clouds       # a clouds.yaml (has_image: false) for the seeded users
#
#   eval "$(bash scripts/cinder.sh env)"; .venv/bin/openstack volume service list
#
# What runs (everything on 127.0.0.1, everything under CINDER_DATA_DIR):
#   * Ceph 16.2 (pacific, Debian's packages): ceph-mon `a`, ceph-mgr `x`, one
#     BlueStore ceph-osd on a sparse file, pool `volumes`, cephx client
#     `client.cinder`. Its own conf (ceph/ceph.conf) and keyrings: nothing is
#     written to /etc/ceph (every ceph tool and rbd-fuse take `-c CONF`).
#   * RabbitMQ 3.10 (Debian's), node zun-cinder@localhost with its own epmd,
#     ports and mnesia dir.
#   * cinder 28.0.0 (2026.1) from PyPI in .venv-cinder (Debian's /usr/bin/python3
#     with --system-site-packages, for python3-rados/python3-rbd), under the
#     2026.1 upper constraints: cinder-api (keystonemiddleware auth against the
#     project's Keystone), cinder-scheduler, cinder-volume (RBD driver), SQLite.
#
# Keystone: the one of scripts/keystone.sh (same KEYSTONE_DATA_DIR/KEYSTONE_PORT
# environment): used as it is when it answers, started otherwise (and then
# stopped again by `stop`). Seeded idempotently:
#   user cinder / cinder-secret, project service, roles admin + service
#   services cinderv3 (volumev3) and cinder (block-storage), public/internal/admin
#   endpoints http://127.0.0.1:PORT/v3/%(project_id)s in RegionOne
#
# The host side of an attachment (rbd-fuse -c CEPH_CONF --id cinder) reads the
# keyring named in the conf: ceph/ceph.client.cinder.keyring.
#
# Times on a 2-vCPU machine: the first start on a fresh machine (apt ~30 s,
# pip ~50 s, cluster creation) about 2 minutes plus Keystone's own install;
# a start from stopped 16-26 s (Ceph and RabbitMQ boot in parallel with
# Keystone); a start while running ~2 s; stop ~5 s. Re-running is cheap: a
# running set with the same settings is left alone, a dead daemon is started
# again, changed settings restart the cinder services. One run at a time
# (flock on $CINDER_DATA_DIR.lock). Wire notes: docs/cinder-notes.md.
#
# Environment (all optional):
#   CINDER_DATA_DIR      $ROOT/.data/cinder     ceph, rabbitmq, cinder state, logs, pids
#   CINDER_VENV          $ROOT/.venv-cinder     cinder's venv
#   CINDER_PORT          (free port, kept)      cinder-api on 127.0.0.1:PORT
#   CINDER_CEPH_SIZE_GB  10                     size of the OSD's sparse file (at creation)
#   CINDER_CONSTRAINTS   $ROOT/../shared/constraints/upper-constraints-2026.1.txt
#   CINDER_START_TIMEOUT 120                    seconds for each wait
#   KEYSTONE_DATA_DIR, KEYSTONE_PORT            passed to scripts/keystone.sh
#   STOP_VERBOSE         (unset)                when set, `stop` logs how long each daemon took
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

CINDER_VERSION="28.0.0"
HOST="127.0.0.1"
REGION="RegionOne"
DATA_DIR="${CINDER_DATA_DIR:-$ROOT/.data/cinder}"
VENV="${CINDER_VENV:-$ROOT/.venv-cinder}"
CONSTRAINTS="${CINDER_CONSTRAINTS:-$ROOT/../shared/constraints/upper-constraints-2026.1.txt}"
START_TIMEOUT="${CINDER_START_TIMEOUT:-120}"
CEPH_SIZE_GB="${CINDER_CEPH_SIZE_GB:-10}"
STOP_TIMEOUT=20
KEYSTONE_SH="$ROOT/scripts/keystone.sh"
PYTHON=/usr/bin/python3   # Debian's: python3-rados/python3-rbd are built for it

CEPH_DIR="$DATA_DIR/ceph"
CEPH_CONF_FILE="$CEPH_DIR/ceph.conf"
CEPH_CLUSTER_ENV="$CEPH_DIR/cluster.env"     # fsid and mon ports, fixed at creation
RABBIT_DIR="$DATA_DIR/rabbit"
CINDER_DIR="$DATA_DIR/cinder"
CINDER_CONF="$CINDER_DIR/etc/cinder.conf"
PID_DIR="$DATA_DIR/pids"
LOG_DIR="$DATA_DIR/log"
PORTS_FILE="$DATA_DIR/ports.env"             # cinder-api and rabbitmq ports, kept across restarts
RUNTIME_FILE="$DATA_DIR/runtime.env"         # what the running set was started with
LOCK_FILE="$DATA_DIR.lock"

SERVICE_USER="cinder"
SERVICE_PASSWORD="cinder-secret"
SERVICE_PROJECT="service"
SERVICE_ROLES=(admin service)
RABBIT_USER="cinder"
RABBIT_PASSWORD="cinder-rabbit-secret"
RABBIT_NODENAME="zun-cinder@localhost"
CINDER_HOST_NAME="zun-cinder"                # cinder's [DEFAULT] host: services are zun-cinder(@ceph)

DEB_PACKAGES=(ceph-mon ceph-osd ceph-mgr ceph-common rbd-fuse python3-rados python3-rbd
              rabbitmq-server python3-venv curl jq e2fsprogs util-linux procps)

log() { printf '[cinder] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ------------------------------------------------------------------ install

deb_missing() {
    local pkg
    for pkg in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done
}

ensure_debs() {
    local missing
    mapfile -t missing < <(deb_missing)
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root to install them)"
    local t0; t0="$(now)"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No init system here, and none of these may start system-wide daemons
    # (rabbitmq-server's postinst would start one on 0.0.0.0:5672): forbid
    # service starts for the length of the install unless the machine already does.
    local own_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        </dev/null >"$LOG_DIR/apt.log" 2>&1 || rc=$?
    [[ -z "$own_policy" ]] || rm -f /usr/sbin/policy-rc.d
    if ((rc)); then
        tail -n 30 "$LOG_DIR/apt.log" >&2 || true
        die "apt-get install failed (log: $LOG_DIR/apt.log)"
    fi
    log "Debian packages installed in $(since "$t0")s"
}

# Pinned in the venv whatever the constraints: with --system-site-packages,
# Debian's own pyOpenSSL (23.0) would be imported beside a newer
# cryptography from PyPI, and fails ("module 'lib' has no attribute
# 'GEN_EMAIL'") when eventlet loads it. These are 2026.1's versions.
PY_PINS=("pyOpenSSL==24.2.1" "cryptography==43.0.3")

venv_stamp() {
    local constraints_sha="none"
    [[ -f "$CONSTRAINTS" ]] && constraints_sha="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
    printf '%s | cinder==%s | %s | system-site-packages | %s' "$("$PYTHON" --version 2>&1)" \
        "$CINDER_VERSION" "${PY_PINS[*]}" "$constraints_sha"
}

venv_ok() {
    [[ -x "$VENV/bin/python" && -x "$VENV/bin/cinder-manage" && -x "$VENV/bin/cinder-volume" ]] || return 1
    [[ -f "$VENV/.cinder-stamp" && "$(cat "$VENV/.cinder-stamp")" == "$1" ]] || return 1
    [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m, rados, rbd; print(m.version("cinder"))' 2>/dev/null)" \
        == "$CINDER_VERSION" ]] || return 1
}

ensure_installed() {
    [[ -x "$PYTHON" ]] || ensure_debs
    [[ -x "$PYTHON" ]] || die "$PYTHON is missing"
    local stamp
    stamp="$(venv_stamp)"
    if [[ -z "$(deb_missing)" ]] && venv_ok "$stamp"; then
        return 0
    fi
    ensure_debs
    venv_ok "$stamp" && return 0
    local t0 pip_c=(); t0="$(now)"
    if [[ -f "$CONSTRAINTS" ]]; then
        pip_c=(-c "$CONSTRAINTS")
    else
        log "warning: constraints file $CONSTRAINTS not found; installing with the pin only"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV with $PYTHON (--system-site-packages)"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    fi
    log "installing cinder==$CINDER_VERSION into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${pip_c[@]}" \
        "cinder==$CINDER_VERSION" "${PY_PINS[@]}" </dev/null >"$LOG_DIR/pip.log" 2>&1 \
        || { tail -n 30 "$LOG_DIR/pip.log" >&2; die "pip install failed (log: $LOG_DIR/pip.log)"; }
    printf '%s' "$stamp" >"$VENV/.cinder-stamp"
    venv_ok "$stamp" || die "install into $VENV did not give cinder $CINDER_VERSION with rados and rbd"
    log "cinder installed in $(since "$t0")s"
}

# ------------------------------------------------------------------ ports and processes

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# A port from PREFERRED when it is free, else any free one.
pick_port() {
    if ! port_in_use "$1"; then echo "$1"; else free_port; fi
}

# pid_of NAME -> the pid of a process this script started, if it still runs
# (and is still that process: its command line names the data dir or its marker).
pid_of() {
    local f="$PID_DIR/$1.pid" pid marker
    [[ -f "$f" ]] || return 1
    read -r pid marker <"$f" || true
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
    echo "$pid"
}

# spawn NAME MARKER LOGFILE CMD... : start CMD in its own session, record its pid.
spawn() {
    local name="$1" marker="$2" logfile="$3"; shift 3
    mkdir -p "$PID_DIR" "$(dirname "$logfile")"
    # In a non-interactive shell a background job is not a process-group
    # leader, so setsid execs CMD itself and $! is CMD's pid (and its pgid).
    # fd 9 is this script's lock: the daemon must not inherit (and hold) it.
    (cd "$DATA_DIR" && exec setsid "$@" </dev/null >>"$logfile" 2>&1 9>&-) &
    local pid=$!
    echo "$pid $marker" >"$PID_DIR/$name.pid"
}

# group_alive PGID: a process of the group still runs (zombies do not count:
# pid 1 here reaps orphans only every couple of seconds).
group_alive() {
    local p st
    for p in $(pgrep -g "$1" 2>/dev/null); do
        st="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)" || continue
        [[ -z "$st" || "$st" == Z ]] || return 0
    done
    return 1
}

# stop_procs NAME...: TERM the process groups of NAMEs at once, wait for
# them, KILL what lingers after STOP_TIMEOUT (workers go with their group).
stop_procs() {
    local name pid pids=() names=() i t0
    for name in "$@"; do
        if pid="$(pid_of "$name")"; then
            log "stopping $name (pid $pid)"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid"); names+=("$name")
        fi
        rm -f "$PID_DIR/$name.pid"
    done
    ((${#pids[@]})) || return 0
    t0="$(now)"
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        for pid in "${!pids[@]}"; do
            if ! group_alive "${pids[$pid]}"; then
                [[ -z "${STOP_VERBOSE:-}" ]] || log "${names[$pid]} gone after $(since "$t0")s"
                unset "pids[$pid]"
            fi
        done
        ((${#pids[@]})) || return 0
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if group_alive "${pids[$i]}"; then
            log "${names[$i]} did not stop in ${STOP_TIMEOUT}s; killing it"
            kill -KILL -- "-${pids[$i]}" 2>/dev/null || true
        fi
    done
}

# wait_for WHAT TIMEOUT CMD... : poll CMD until it succeeds.
wait_for() {
    local what="$1" timeout="$2"; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

load_ports() {
    API_PORT="" RABBIT_PORT="" RABBIT_DIST_PORT="" EPMD_PORT=""
    # shellcheck disable=SC1090
    [[ -f "$PORTS_FILE" ]] && . "$PORTS_FILE"
    [[ -z "${CINDER_PORT:-}" ]] || API_PORT="$CINDER_PORT"
}

choose_ports() {
    load_ports
    # A kept port that something else took since: pick another (only the Ceph
    # monitor's ports are fixed for good, in its monmap).
    if [[ -z "$API_PORT" ]] || { ! pid_of cinder-api >/dev/null && port_in_use "$API_PORT"; }; then
        [[ -z "${CINDER_PORT:-}" ]] || die "CINDER_PORT $CINDER_PORT is in use"
        API_PORT="$(free_port)"
    fi
    if ! pid_of rabbitmq >/dev/null && ! pid_of epmd >/dev/null; then
        local p
        for p in RABBIT_PORT RABBIT_DIST_PORT EPMD_PORT; do
            if [[ -z "${!p}" ]] || port_in_use "${!p}"; then printf -v "$p" '%s' "$(free_port)"; fi
        done
    fi
    printf 'API_PORT=%s\nRABBIT_PORT=%s\nRABBIT_DIST_PORT=%s\nEPMD_PORT=%s\n' \
        "$API_PORT" "$RABBIT_PORT" "$RABBIT_DIST_PORT" "$EPMD_PORT" >"$PORTS_FILE"
}

# ------------------------------------------------------------------ ceph

cephc() { ceph -c "$CEPH_CONF_FILE" --connect-timeout 15 "$@"; }

write_ceph_conf() {
    # shellcheck disable=SC1090
    . "$CEPH_CLUSTER_ENV"
    local size=$((CEPH_SIZE_GB * 1024 * 1024 * 1024))
    [[ -z "${CEPH_BLOCK_SIZE:-}" ]] || size="$CEPH_BLOCK_SIZE"
    cat >"$CEPH_CONF_FILE.tmp" <<EOF
# Written by scripts/cinder.sh; rewritten on every start.
[global]
fsid = $CEPH_FSID
mon_initial_members = a
mon_host = [v2:$HOST:$CEPH_MON_V2_PORT,v1:$HOST:$CEPH_MON_V1_PORT]
public_network = 127.0.0.0/8
cluster_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_allow_pool_delete = true
mon_data_avail_warn = 10
run_dir = $CEPH_DIR/run
admin_socket = $CEPH_DIR/run/\$cluster-\$name.asok
log_file = $CEPH_DIR/log/\$cluster-\$name.log
pid_file = $CEPH_DIR/run/\$cluster-\$name.pid
crash_dir = $CEPH_DIR/crash
exporter_sock_dir = $CEPH_DIR/run

[mon]
mon_data = $CEPH_DIR/data/mon-\$id

[mgr]
mgr_data = $CEPH_DIR/data/mgr-\$id

[osd]
osd_data = $CEPH_DIR/data/osd-\$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $size
osd_memory_target = 939524096
bluestore_cache_autotune = true
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2

[client]
keyring = $CEPH_DIR/\$cluster.\$name.keyring
# per-process admin socket and log: several clients (rbd-fuse, rbd, cinder) at once
admin_socket = $CEPH_DIR/run/\$cluster-\$name.\$pid.asok
log_file = $CEPH_DIR/log/\$cluster-\$name.\$pid.log
EOF
    mv "$CEPH_CONF_FILE.tmp" "$CEPH_CONF_FILE"
}

ceph_create() {
    local t0; t0="$(now)"
    log "creating the Ceph cluster in $CEPH_DIR"
    stop_procs ceph-osd ceph-mgr ceph-mon    # of a creation that failed half-way
    rm -rf --one-file-system "$CEPH_DIR"
    mkdir -p "$CEPH_DIR"/{run,log,crash,data/mon-a,data/mgr-x}
    chmod 700 "$CEPH_DIR"
    local v1 v2
    v2="$(pick_port 3300)"; v1="$(pick_port 6789)"
    [[ "$v1" != "$v2" ]] || v1="$(free_port)"
    printf 'CEPH_FSID=%s\nCEPH_MON_V2_PORT=%s\nCEPH_MON_V1_PORT=%s\nCEPH_BLOCK_SIZE=%s\n' \
        "$(cat /proc/sys/kernel/random/uuid)" "$v2" "$v1" "$((CEPH_SIZE_GB * 1024 * 1024 * 1024))" >"$CEPH_CLUSTER_ENV"
    write_ceph_conf
    local mk="$CEPH_DIR/mon.keyring" admin="$CEPH_DIR/ceph.client.admin.keyring"
    {
        ceph-authtool --create-keyring "$mk" --gen-key -n mon. --cap mon 'allow *'
        ceph-authtool --create-keyring "$admin" --gen-key -n client.admin \
            --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
        ceph-authtool "$mk" --import-keyring "$admin"
        monmaptool --create --addv a "[v2:$HOST:$CEPH_MON_V2_PORT,v1:$HOST:$CEPH_MON_V1_PORT]" \
            --fsid "$CEPH_FSID" "$CEPH_DIR/monmap"
        ceph-mon -c "$CEPH_CONF_FILE" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$mk"
    } >>"$LOG_DIR/ceph-create.log" 2>&1 || { tail -n 20 "$LOG_DIR/ceph-create.log" >&2; die "ceph mon mkfs failed"; }
    start_mon
    cephc auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
        -o "$CEPH_DIR/data/mgr-x/keyring" >>"$LOG_DIR/ceph-create.log" 2>&1 || die "creating mgr.x's key failed"
    start_mgr
    # One OSD, BlueStore on a sparse file that ceph-osd --mkfs creates.
    local uuid secret id
    uuid="$(cat /proc/sys/kernel/random/uuid)"
    secret="$(ceph-authtool --gen-print-key)"
    id="$(printf '{"cephx_secret": "%s"}' "$secret" | cephc osd new "$uuid" -i - 2>>"$LOG_DIR/ceph-create.log")" \
        || die "ceph osd new failed"
    [[ "$id" == 0 ]] || die "expected osd.0, got osd.$id"
    mkdir -p "$CEPH_DIR/data/osd-0"
    {
        ceph-authtool --create-keyring "$CEPH_DIR/data/osd-0/keyring" --name osd.0 --add-key "$secret"
        ceph-osd -c "$CEPH_CONF_FILE" -i 0 --mkfs --osd-uuid "$uuid"
    } >>"$LOG_DIR/ceph-create.log" 2>&1 || { tail -n 20 "$LOG_DIR/ceph-create.log" >&2; die "ceph-osd --mkfs failed"; }
    start_osd
    {
        cephc osd pool create volumes 16 16
        rbd -c "$CEPH_CONF_FILE" pool init volumes
        cephc auth get-or-create client.cinder mon 'profile rbd' osd 'profile rbd pool=volumes' \
            mgr 'profile rbd pool=volumes' -o "$CEPH_DIR/ceph.client.cinder.keyring"
    } >>"$LOG_DIR/ceph-create.log" 2>&1 || { tail -n 20 "$LOG_DIR/ceph-create.log" >&2; die "creating pool volumes failed"; }
    chmod 600 "$CEPH_DIR"/*.keyring "$CEPH_DIR"/data/*/keyring
    touch "$CEPH_DIR/.created"
    log "Ceph cluster created in $(since "$t0")s"
}

start_mon() {
    pid_of ceph-mon >/dev/null && return 0
    port_in_use "$CEPH_MON_V2_PORT" && die "ceph mon port $HOST:$CEPH_MON_V2_PORT is in use by another process"
    spawn ceph-mon "$CEPH_CONF_FILE" "$CEPH_DIR/log/mon.a.stdout" ceph-mon -c "$CEPH_CONF_FILE" -f -i a
    wait_for "ceph-mon" "$START_TIMEOUT" cephc --connect-timeout 5 mon stat \
        || { tail -n 20 "$CEPH_DIR/log/ceph-mon.a.log" >&2 || true; die "ceph-mon did not answer (log: $CEPH_DIR/log/ceph-mon.a.log)"; }
}

start_mgr() {
    pid_of ceph-mgr >/dev/null && return 0
    spawn ceph-mgr "$CEPH_CONF_FILE" "$CEPH_DIR/log/mgr.x.stdout" ceph-mgr -c "$CEPH_CONF_FILE" -f -i x
}

start_osd() {
    pid_of ceph-osd >/dev/null && return 0
    spawn ceph-osd "$CEPH_CONF_FILE" "$CEPH_DIR/log/osd.0.stdout" ceph-osd -c "$CEPH_CONF_FILE" -f -i 0
}

# All placement groups active, the OSD up, and a mgr serving: RBD I/O works.
ceph_ready() {
    local s
    s="$(cephc -s -f json 2>/dev/null)" || return 1
    jq -e '(.osdmap.num_up_osds // .osdmap.osdmap.num_up_osds) >= 1
           and .mgrmap.available
           and (.pgmap.num_pgs > 0)
           and ([.pgmap.pgs_by_state[]? | select(.state_name | test("^active") | not)] | length == 0)' \
        <<<"$s" >/dev/null
}

# Creates the cluster once (waiting on each step), else starts the missing
# daemons all at once without waiting: they find each other through the mon.
ceph_spawn() {
    CEPH_T0="$(now)"
    mkdir -p "$CEPH_DIR"
    if [[ ! -f "$CEPH_DIR/.created" ]]; then
        ceph_create
        return 0
    fi
    write_ceph_conf
    if ! pid_of ceph-mon >/dev/null || ! pid_of ceph-mgr >/dev/null || ! pid_of ceph-osd >/dev/null; then
        log "starting Ceph (mon $HOST:$CEPH_MON_V2_PORT/$CEPH_MON_V1_PORT)"
    fi
    if ! pid_of ceph-mon >/dev/null; then
        port_in_use "$CEPH_MON_V2_PORT" && die "ceph mon port $HOST:$CEPH_MON_V2_PORT is in use by another process"
        spawn ceph-mon "$CEPH_CONF_FILE" "$CEPH_DIR/log/mon.a.stdout" ceph-mon -c "$CEPH_CONF_FILE" -f -i a
    fi
    start_mgr
    start_osd
}

ceph_wait() {
    wait_for "ceph" "$START_TIMEOUT" ceph_ready \
        || { cephc -s >&2 || true; die "Ceph did not become ready in ${START_TIMEOUT}s (logs: $CEPH_DIR/log)"; }
    log "Ceph ready in $(since "$CEPH_T0")s"
}

# ------------------------------------------------------------------ rabbitmq

rabbit_env_args() {
    RABBIT_ENV=(env HOME="$RABBIT_DIR"
        RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
        RABBITMQ_NODENAME="$RABBIT_NODENAME"
        RABBITMQ_NODE_IP_ADDRESS="$HOST"
        RABBITMQ_NODE_PORT="$RABBIT_PORT"
        RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT"
        ERL_EPMD_PORT="$EPMD_PORT"
        ERL_EPMD_ADDRESS="$HOST"
        RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
        RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
        RABBITMQ_LOGS="$RABBIT_DIR/log/rabbit.log"
        RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
        RABBITMQ_PID_FILE="$RABBIT_DIR/rabbit.pid"
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
}

rabbit_spawn() {
    RABBIT_T0="$(now)"
    mkdir -p "$RABBIT_DIR"/{mnesia,log}
    chmod 700 "$RABBIT_DIR"
    rm -f "$RABBIT_DIR/rabbitmq.conf" "$RABBIT_DIR/advanced.config"
    : >"$RABBIT_DIR/rabbitmq-env.conf"
    echo '[].' >"$RABBIT_DIR/enabled_plugins"
    # The classic Erlang-term config: a rabbitmq.conf (sysctl format) costs a
    # cuttlefish translation at every boot (about 13 s to the listener here
    # against about 5 s). default_user/default_pass only act on the first boot.
    cat >"$RABBIT_DIR/rabbitmq.config" <<EOF
%% Written by scripts/cinder.sh; rewritten on every start.
[{rabbit, [{tcp_listeners, [{"$HOST", $RABBIT_PORT}]},
           {loopback_users, []},
           {default_vhost, <<"/">>},
           {default_user, <<"$RABBIT_USER">>},
           {default_pass, <<"$RABBIT_PASSWORD">>},
           {default_permissions, [<<".*">>, <<".*">>, <<".*">>]}]},
 {kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].
EOF
    if ! pid_of epmd >/dev/null; then
        port_in_use "$EPMD_PORT" && die "epmd port $EPMD_PORT is in use"
        spawn epmd "-port $EPMD_PORT" "$RABBIT_DIR/log/epmd.log" epmd -port "$EPMD_PORT" -address "$HOST"
        wait_for epmd 20 port_in_use "$EPMD_PORT" || die "epmd did not listen on $HOST:$EPMD_PORT"
    fi
    if ! pid_of rabbitmq >/dev/null; then
        log "starting RabbitMQ $RABBIT_NODENAME on $HOST:$RABBIT_PORT"
        rabbit_env_args
        spawn rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server "$RABBIT_DIR/log/server.stdout" \
            "${RABBIT_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
    fi
}

rabbit_wait() {
    wait_for rabbitmq "$START_TIMEOUT" port_in_use "$RABBIT_PORT" \
        || { tail -n 30 "$RABBIT_DIR/log/server.stdout" >&2 || true; die "RabbitMQ did not listen on $HOST:$RABBIT_PORT"; }
    log "RabbitMQ ready in $(since "$RABBIT_T0")s"
}

# ------------------------------------------------------------------ keystone

KS_AUTH_URL="" KS_ADMIN_USER="" KS_ADMIN_PASSWORD="" KS_ADMIN_PROJECT="" KS_STARTED=""
ADMIN_TOKEN="" ADMIN_PROJECT_ID="" TMP_DIR=""

cleanup_tmp() { [[ -z "$TMP_DIR" ]] || rm -rf "$TMP_DIR"; }

keystone_up() {
    KS_STARTED=""
    if [[ -f "$RUNTIME_FILE" ]] && grep -q '^RT_KEYSTONE_STARTED=1' "$RUNTIME_FILE" \
        && [[ "$(sed -n 's/^RT_KEYSTONE_DATA_DIR=//p' "$RUNTIME_FILE")" == "${KEYSTONE_DATA_DIR:-}" ]]; then
        KS_STARTED=1    # started by an earlier `start` of ours: still ours to stop
    fi
    if ! KS_AUTH_URL="$(bash "$KEYSTONE_SH" status 2>/dev/null)"; then
        log "starting Keystone (scripts/keystone.sh start)"
        KS_AUTH_URL="$(bash "$KEYSTONE_SH" start 9>&- | tail -n 1)" || die "scripts/keystone.sh start failed"
        KS_STARTED=1
    fi
    local envs
    envs="$(bash "$KEYSTONE_SH" env admin)"
    KS_ADMIN_USER="$(sed -n 's/^export OS_USERNAME=//p' <<<"$envs")"
    KS_ADMIN_PASSWORD="$(sed -n 's/^export OS_PASSWORD=//p' <<<"$envs")"
    KS_ADMIN_PROJECT="$(sed -n 's/^export OS_PROJECT_NAME=//p' <<<"$envs")"
    [[ -n "$KS_AUTH_URL" && -n "$KS_ADMIN_PASSWORD" ]] || die "cannot read Keystone's admin credentials"
}

# issue_token USER PASSWORD PROJECT -> token on stdout, body in $TMP_DIR/auth.body
issue_token() {
    local body code
    body="$(jq -nc --arg u "$1" --arg p "$2" --arg proj "$3" '{auth: {
        identity: {methods: ["password"], password: {user: {name: $u, password: $p, domain: {id: "default"}}}},
        scope: {project: {name: $proj, domain: {id: "default"}}}}}')"
    code="$(curl -sS -o "$TMP_DIR/auth.body" -D "$TMP_DIR/auth.headers" -w '%{http_code}' --max-time 30 \
        -H 'Content-Type: application/json' --data "$body" "$KS_AUTH_URL/auth/tokens")" || return 1
    [[ "$code" == 201 ]] || return 1
    grep -i '^x-subject-token:' "$TMP_DIR/auth.headers" | head -n1 | cut -d: -f2- | tr -d ' \r\n'
}

ks_api() { # METHOD PATH [JSON] -> body; dies unless 2xx
    local method="$1" path="$2" data="${3:-}" code args=()
    [[ -z "$data" ]] || args=(-H 'Content-Type: application/json' --data "$data")
    code="$(curl -sS -o "$TMP_DIR/api.body" -w '%{http_code}' --max-time 30 -X "$method" \
        -H "X-Auth-Token: $ADMIN_TOKEN" "${args[@]}" "$KS_AUTH_URL$path")" || true
    if [[ "$code" != 2* ]]; then
        cat "$TMP_DIR/api.body" >&2 || true
        die "Keystone: $method $path answered $code"
    fi
    cat "$TMP_DIR/api.body"
}

keystone_login() {
    [[ -n "$TMP_DIR" ]] || { TMP_DIR="$(mktemp -d)"; trap cleanup_tmp EXIT; }
    ADMIN_TOKEN="$(issue_token "$KS_ADMIN_USER" "$KS_ADMIN_PASSWORD" "$KS_ADMIN_PROJECT")" \
        || die "cannot log in to Keystone ($KS_AUTH_URL) as $KS_ADMIN_USER"
    ADMIN_PROJECT_ID="$(jq -r '.token.project.id' "$TMP_DIR/auth.body")"
}

# The cinder user logs in with its roles and its catalog has both service
# types at this API port on every interface: nothing to seed.
keystone_seeded() {
    [[ -n "$TMP_DIR" ]] || { TMP_DIR="$(mktemp -d)"; trap cleanup_tmp EXIT; }
    issue_token "$SERVICE_USER" "$SERVICE_PASSWORD" "$SERVICE_PROJECT" >/dev/null || return 1
    jq -e --arg base "http://$HOST:$API_PORT/v3/" '
        .token.project.id as $p
        | ([.token.roles[].name] | index("admin") != null and index("service") != null)
        and ([.token.catalog[] | select(.type == "volumev3" or .type == "block-storage")
              | .endpoints[] | select(.url == $base + $p) | .interface] | length == 6)' \
        "$TMP_DIR/auth.body" >/dev/null
}

keystone_seed() {
    local t0; t0="$(now)"
    keystone_seeded && return 0
    keystone_login
    local project_id uid role rid
    project_id="$(ks_api GET "/projects?name=$SERVICE_PROJECT&domain_id=default" | jq -r '.projects[0].id // empty')"
    [[ -n "$project_id" ]] || die "Keystone has no project '$SERVICE_PROJECT' (scripts/keystone.sh seeds it)"
    uid="$(ks_api GET "/users?name=$SERVICE_USER&domain_id=default" | jq -r '.users[0].id // empty')"
    if [[ -z "$uid" ]]; then
        log "creating Keystone user $SERVICE_USER"
        uid="$(ks_api POST /users "$(jq -nc --arg n "$SERVICE_USER" --arg p "$SERVICE_PASSWORD" --arg pr "$project_id" \
            '{user: {name: $n, password: $p, domain_id: "default", default_project_id: $pr, enabled: true,
                     description: "Cinder service user (scripts/cinder.sh)"}}')" | jq -r '.user.id')"
    fi
    for role in "${SERVICE_ROLES[@]}"; do
        rid="$(ks_api GET "/roles?name=$role" | jq -r '.roles[0].id // empty')"
        [[ -n "$rid" ]] || rid="$(ks_api POST /roles "$(jq -nc --arg n "$role" '{role: {name: $n}}')" | jq -r '.role.id')"
        ks_api PUT "/projects/$project_id/users/$uid/roles/$rid" >/dev/null
    done
    if ! issue_token "$SERVICE_USER" "$SERVICE_PASSWORD" "$SERVICE_PROJECT" >/dev/null; then
        log "resetting password of Keystone user $SERVICE_USER"
        ks_api PATCH "/users/$uid" "$(jq -nc --arg p "$SERVICE_PASSWORD" '{user: {password: $p, enabled: true}}')" >/dev/null
        issue_token "$SERVICE_USER" "$SERVICE_PASSWORD" "$SERVICE_PROJECT" >/dev/null \
            || die "Keystone user $SERVICE_USER cannot log in after the reset"
    fi
    # The catalog: both service types clients look for, one URL.
    local url="http://$HOST:$API_PORT/v3/%(project_id)s" entry name type desc sid iface found eid cur
    for entry in "cinderv3:volumev3:Cinder Volume Service V3" "cinder:block-storage:Cinder Volume Service"; do
        IFS=: read -r name type desc <<<"$entry"
        sid="$(ks_api GET "/services?type=$type" | jq -r --arg n "$name" '[.services[] | select(.name == $n)][0].id // empty')"
        if [[ -z "$sid" ]]; then
            log "creating Keystone service $name ($type)"
            sid="$(ks_api POST /services "$(jq -nc --arg n "$name" --arg t "$type" --arg d "$desc" \
                '{service: {name: $n, type: $t, enabled: true, description: $d}}')" | jq -r '.service.id')"
        fi
        for iface in public internal admin; do
            found="$(ks_api GET "/endpoints?service_id=$sid&interface=$iface&region_id=$REGION")"
            eid="$(jq -r '.endpoints[0].id // empty' <<<"$found")"
            cur="$(jq -r '.endpoints[0].url // empty' <<<"$found")"
            if [[ -z "$eid" ]]; then
                log "creating $iface $type endpoint $url"
                ks_api POST /endpoints "$(jq -nc --arg s "$sid" --arg i "$iface" --arg u "$url" --arg r "$REGION" \
                    '{endpoint: {service_id: $s, interface: $i, url: $u, region_id: $r, enabled: true}}')" >/dev/null
            elif [[ "$cur" != "$url" ]]; then
                log "moving $iface $type endpoint to $url"
                ks_api PATCH "/endpoints/$eid" "$(jq -nc --arg u "$url" '{endpoint: {url: $u, enabled: true}}')" >/dev/null
            fi
        done
    done
    log "Keystone seeded in $(since "$t0")s"
}

# ------------------------------------------------------------------ cinder

write_cinder_conf() {
    mkdir -p "$CINDER_DIR"/{etc,state,lock,log}
    local src="$VENV/etc/cinder"
    [[ -f "$src/api-paste.ini" ]] || die "$src/api-paste.ini missing (cinder install incomplete?)"
    cp "$src/api-paste.ini" "$CINDER_DIR/etc/api-paste.ini"
    cp "$src/rootwrap.conf" "$CINDER_DIR/etc/rootwrap.conf" 2>/dev/null || : >"$CINDER_DIR/etc/rootwrap.conf"
    # Without it every list filter (?name=..., what `openstack volume show NAME` sends) is a 400.
    cp "$src/resource_filters.json" "$CINDER_DIR/etc/resource_filters.json"
    cat >"$CINDER_CONF.tmp" <<EOF
# Written by scripts/cinder.sh; rewritten on every start.
[DEFAULT]
host = $CINDER_HOST_NAME
my_ip = $HOST
transport_url = rabbit://$RABBIT_USER:$RABBIT_PASSWORD@$HOST:$RABBIT_PORT/
auth_strategy = keystone
enabled_backends = ceph
default_volume_type = __DEFAULT__
osapi_volume_listen = $HOST
osapi_volume_listen_port = $API_PORT
osapi_volume_workers = 1
public_endpoint = http://$HOST:$API_PORT
state_path = $CINDER_DIR/state
log_dir = $CINDER_DIR/log
api_paste_config = $CINDER_DIR/etc/api-paste.ini
rootwrap_config = $CINDER_DIR/etc/rootwrap.conf
resource_query_filters_file = $CINDER_DIR/etc/resource_filters.json
graceful_shutdown_timeout = 5
debug = false

[database]
# Writers wait for each other (up to 30 s) instead of failing at once with
# "database is locked": cinder-api, -scheduler and -volume share this file.
connection = sqlite:///$CINDER_DIR/state/cinder.sqlite?timeout=30

[oslo_concurrency]
lock_path = $CINDER_DIR/lock

[coordination]
backend_url = file://$CINDER_DIR/lock

[keystone_authtoken]
www_authenticate_uri = $KS_AUTH_URL
auth_url = $KS_AUTH_URL
auth_type = password
username = $SERVICE_USER
password = $SERVICE_PASSWORD
project_name = $SERVICE_PROJECT
user_domain_name = Default
project_domain_name = Default
region_name = $REGION
service_token_roles = service
service_token_roles_required = true

[ceph]
volume_driver = cinder.volume.drivers.rbd.RBDDriver
volume_backend_name = ceph
rbd_pool = volumes
rbd_ceph_conf = $CEPH_CONF_FILE
rbd_cluster_name = ceph
rbd_user = cinder
rbd_exclusive_cinder_pool = true
rbd_flatten_volume_from_snapshot = false
rbd_max_clone_depth = 5
rbd_store_chunk_size = 4
rados_connect_timeout = 5
report_discard_supported = true
EOF
    mv "$CINDER_CONF.tmp" "$CINDER_CONF"
}

cinder_db() {
    local want="cinder==$CINDER_VERSION"
    if [[ ! -f "$CINDER_DIR/state/cinder.sqlite" || "$(cat "$CINDER_DIR/.db-stamp" 2>/dev/null)" != "$want" ]]; then
        local t0; t0="$(now)"
        log "cinder-manage db sync"
        "$VENV/bin/cinder-manage" --config-file "$CINDER_CONF" db sync </dev/null >>"$LOG_DIR/cinder-manage.log" 2>&1 \
            || { tail -n 30 "$LOG_DIR/cinder-manage.log" >&2; die "cinder-manage db sync failed"; }
        printf '%s' "$want" >"$CINDER_DIR/.db-stamp"
        log "db sync in $(since "$t0")s"
    fi
    # Write-ahead logging: Cinder's three processes write at once, and in
    # SQLite's default journal a transaction that read before writing
    # fails at once with "database is locked" when another holds the write
    # lock (no busy wait can help it); with WAL readers never hold writers
    # up. The mode is stored in the file: setting it again is a no-op.
    "$VENV/bin/python" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' \
        "$CINDER_DIR/state/cinder.sqlite" || die "cannot put Cinder's database in WAL mode"
}

CINDER_SERVICES=(cinder-scheduler cinder-volume cinder-api)

cinder_running() {
    local s
    for s in "${CINDER_SERVICES[@]}"; do pid_of "$s" >/dev/null || return 1; done
}

cinder_stop() { stop_procs cinder-api cinder-volume cinder-scheduler; }

cinder_start() { # SERVICE...
    local s
    for s in "$@"; do
        pid_of "$s" >/dev/null && continue
        [[ "$s" != cinder-api ]] || ! port_in_use "$API_PORT" || die "$HOST:$API_PORT is in use by another process"
        log "starting $s"
        spawn "$s" "$CINDER_CONF" "$CINDER_DIR/log/$s.stdout" "$VENV/bin/$s" --config-file "$CINDER_CONF"
    done
}

# GET / answers 300 (the version list) without a token.
api_answers() { curl -fsS -o /dev/null --max-time 5 "http://$HOST:$API_PORT/" 2>/dev/null; }

cinder_get() { # PATH -> body (admin token, project-scoped URL)
    curl -fsS --max-time 10 -H "X-Auth-Token: $ADMIN_TOKEN" -H 'OpenStack-API-Version: volume 3.0' \
        "http://$HOST:$API_PORT/v3/$ADMIN_PROJECT_ID$1"
}

# cinder-volume has reported since START_UTC (a fresh heartbeat, not a stale
# row of an earlier run), is up, and the scheduler knows its pool.
volume_ready() {
    local svc pools
    svc="$(cinder_get "/os-services?binary=cinder-volume")" || return 1
    jq -e --arg t "$START_UTC" '[.services[] | select(.state == "up" and .status == "enabled"
        and (.updated_at // "") >= $t)] | length >= 1' <<<"$svc" >/dev/null || return 1
    pools="$(cinder_get "/scheduler-stats/get_pools")" || return 1
    jq -e '.pools | length >= 1' <<<"$pools" >/dev/null
}

# Writes the config; stops the cinder services when it changed (or one of
# them died), so that cinder_start starts all three with it.
cinder_prepare() {
    CINDER_T0="$(now)"
    START_UTC=""
    write_cinder_conf
    CONF_SHA="$(sha256sum "$CINDER_CONF" | cut -d' ' -f1)"
    if [[ "$(sed -n 's/^RT_CONF_SHA=//p' "$RUNTIME_FILE" 2>/dev/null)" == "$CONF_SHA" ]]; then
        if cinder_running; then
            log "cinder services already running"
            return 0
        fi
        # Same settings: only what died is started again.
        pid_of cinder-volume >/dev/null || START_UTC="$(date -u +%Y-%m-%dT%H:%M:%S)"
        return 0
    fi
    if pid_of cinder-api >/dev/null || pid_of cinder-volume >/dev/null || pid_of cinder-scheduler >/dev/null; then
        log "cinder settings changed: restarting the cinder services"
        cinder_stop
    fi
    cinder_db
    START_UTC="$(date -u +%Y-%m-%dT%H:%M:%S)"
}

cinder_wait() {
    wait_for cinder-api "$START_TIMEOUT" api_answers \
        || { tail -n 30 "$CINDER_DIR/log/cinder-api.log" "$CINDER_DIR/log/cinder-api.stdout" >&2 2>/dev/null || true
             die "cinder-api did not answer on $HOST:$API_PORT"; }
    keystone_login
    wait_for cinder-volume "$START_TIMEOUT" volume_ready \
        || { tail -n 30 "$CINDER_DIR/log/cinder-volume.log" >&2 2>/dev/null || true
             die "cinder-volume did not come up (logs: $CINDER_DIR/log)"; }
    wait_for "a probe volume" "$START_TIMEOUT" probe_volume \
        || { tail -n 30 "$CINDER_DIR/log/cinder-scheduler.log" >&2 2>/dev/null || true
             die "a volume created after start never became available (logs: $CINDER_DIR/log)"; }
    log "cinder ready in $(since "$CINDER_T0")s"
}

cinder_send() { # METHOD PATH [BODY] (admin token, project-scoped URL)
    curl -fsS --max-time 10 -X "$1" -H "X-Auth-Token: $ADMIN_TOKEN" \
        -H 'Content-Type: application/json' -H 'OpenStack-API-Version: volume 3.0' \
        ${3:+--data "$3"} "http://$HOST:$API_PORT/v3/$ADMIN_PROJECT_ID$2"
}

# A volume made and deleted end to end: heartbeats and pools can be fresh
# while the scheduler's or the volume service's RPC consumer is not yet
# listening, and a create cast then is lost for good (stuck `creating`). A
# probe that sticks is force-deleted and the next one tried.
probe_volume() {
    local id status i
    id="$(cinder_send POST /volumes '{"volume": {"size": 1, "name": "zun-readiness-probe"}}' \
        | jq -r '.volume.id')" || return 1
    for ((i = 0; i < 40; i++)); do
        status="$(cinder_get "/volumes/$id" | jq -r '.volume.status')" || status=""
        [[ "$status" == available || "$status" == error ]] && break
        sleep 0.25
    done
    if [[ "$status" == available ]]; then
        cinder_send DELETE "/volumes/$id" >/dev/null || true
        return 0
    fi
    cinder_send POST "/volumes/$id/action" '{"os-force_delete": {}}' >/dev/null || true
    return 1
}

# ------------------------------------------------------------------ commands

take_lock() {
    mkdir -p "$(dirname "$DATA_DIR")"
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another scripts/cinder.sh holds $LOCK_FILE"
}

write_runtime() {
    printf 'RT_API_PORT=%s\nRT_AUTH_URL=%s\nRT_KEYSTONE_STARTED=%s\nRT_KEYSTONE_DATA_DIR=%s\nRT_CONF_SHA=%s\n' \
        "$API_PORT" "$KS_AUTH_URL" "${KS_STARTED:-0}" "${KEYSTONE_DATA_DIR:-}" "$CONF_SHA" >"$RUNTIME_FILE"
}

block_storage_url() { echo "http://$HOST:$API_PORT/v3"; }

cmd_start() {
    local t0; t0="$(now)"
    [[ $(id -u) -eq 0 ]] || die "run as root (ceph-osd, rbd-fuse, loop devices)"
    take_lock
    mkdir -p "$DATA_DIR" "$LOG_DIR" "$PID_DIR"
    ensure_installed
    choose_ports
    # Ceph and RabbitMQ boot in the background while Keystone comes up.
    ceph_spawn
    rabbit_spawn
    keystone_up
    keystone_seed
    cinder_prepare
    rabbit_wait
    cinder_start cinder-scheduler cinder-api    # cinder-api on 127.0.0.1:API_PORT; logs in cinder/log
    ceph_wait
    cinder_start cinder-volume
    cinder_wait
    write_runtime
    log "ready in $(since "$t0")s: block-storage $(block_storage_url)/<project_id> (Keystone $KS_AUTH_URL)"
    block_storage_url
}

rbd_fuse_clients() { # pids of rbd-fuse processes started with this cluster's conf
    local p
    for p in $(pgrep -x rbd-fuse 2>/dev/null); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$CEPH_CONF_FILE" && printf '%s ' "$p"
    done
    return 0
}

mounts_under_data_dir() {
    awk -v d="$DATA_DIR/" 'index($2"/", d) == 1 { print $2 }' /proc/self/mounts
}

cmd_stop() {
    take_lock
    load_ports
    local t0 any=""; t0="$(now)"
    local name
    for name in cinder-api cinder-volume cinder-scheduler rabbitmq epmd ceph-osd ceph-mgr ceph-mon; do
        pid_of "$name" >/dev/null && any=1
    done
    cinder_stop
    stop_procs rabbitmq epmd ceph-osd ceph-mgr
    stop_procs ceph-mon    # last: the OSD tells it it is going down
    if [[ -f "$RUNTIME_FILE" ]] && grep -q '^RT_KEYSTONE_STARTED=1' "$RUNTIME_FILE"; then
        local ksdir
        ksdir="$(sed -n 's/^RT_KEYSTONE_DATA_DIR=//p' "$RUNTIME_FILE")"
        log "stopping Keystone (started by scripts/cinder.sh start)"
        if [[ -n "$ksdir" ]]; then KEYSTONE_DATA_DIR="$ksdir" bash "$KEYSTONE_SH" stop 9>&-; else bash "$KEYSTONE_SH" stop 9>&-; fi
        any=1
    fi
    rm -f "$RUNTIME_FILE"
    local m
    m="$(mounts_under_data_dir)"
    [[ -z "$m" ]] || log "warning: still mounted under $DATA_DIR (left alone): $m"
    m="$(rbd_fuse_clients)"
    [[ -z "$m" ]] || log "warning: rbd-fuse processes of this cluster still run (left alone; their I/O now hangs): $m"
    if [[ -n "$any" ]]; then log "stopped in $(since "$t0")s"; else log "not running"; fi
}

cmd_status() {
    load_ports
    if [[ -n "$API_PORT" ]] && pid_of cinder-api >/dev/null && api_answers; then
        block_storage_url
        return 0
    fi
    log "not running"
    return 1
}

cmd_purge() {
    cmd_stop
    local m
    m="$(mounts_under_data_dir)"
    [[ -z "$m" ]] || die "refusing to delete $DATA_DIR: still mounted there: $m"
    log "deleting $DATA_DIR"
    rm -rf --one-file-system "$DATA_DIR"
}

cmd_env() {
    local user="${1:-$SERVICE_USER}"
    local ksdir=""
    [[ -f "$RUNTIME_FILE" ]] && ksdir="$(sed -n 's/^RT_KEYSTONE_DATA_DIR=//p' "$RUNTIME_FILE")"
    if [[ -n "$ksdir" ]]; then export KEYSTONE_DATA_DIR="$ksdir"; fi
    if [[ "$user" != "$SERVICE_USER" ]]; then
        bash "$KEYSTONE_SH" env "$user"
    else
        bash "$KEYSTONE_SH" env admin | sed \
            -e "s/^export OS_USERNAME=.*/export OS_USERNAME=$SERVICE_USER/" \
            -e "s/^export OS_PASSWORD=.*/export OS_PASSWORD=$SERVICE_PASSWORD/" \
            -e "s/^export OS_PROJECT_NAME=.*/export OS_PROJECT_NAME=$SERVICE_PROJECT/"
    fi
    echo "export OS_VOLUME_API_VERSION=3"
}

# A clouds.yaml with one cloud per seeded user (cinder, admin, demo, alt_demo,
# zun), each with has_image: false: python-openstackclient 9.0's `volume
# create` builds an image client first and fails ("public endpoint for image
# service ... not found") on a cloud without Glance; the flag can only be set
# in clouds.yaml (openstacksdk wants a boolean, not an OS_HAS_IMAGE string).
#   bash scripts/cinder.sh clouds >clouds.yaml
#   OS_CLIENT_CONFIG_FILE=clouds.yaml openstack --os-cloud demo volume create --size 1 v1
cmd_clouds() {
    local user envs
    echo "clouds:"
    for user in "$SERVICE_USER" admin demo alt_demo zun; do
        envs="$(cmd_env "$user")"
        get() { sed -n "s/^export $1=//p" <<<"$envs"; }
        cat <<EOF
  $user:
    auth:
      auth_url: $(get OS_AUTH_URL)
      username: $(get OS_USERNAME)
      password: $(get OS_PASSWORD)
      project_name: $(get OS_PROJECT_NAME)
      user_domain_name: Default
      project_domain_name: Default
    region_name: $REGION
    interface: public
    identity_api_version: 3
    volume_api_version: 3
    has_image: false
EOF
    done
}

cmd_ceph_env() {
    cat <<EOF
export CEPH_CONF=$CEPH_CONF_FILE
export CEPH_ARGS='--id cinder'
EOF
}

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    env) cmd_env "${2:-}" ;;
    url) load_ports; [[ -n "$API_PORT" ]] || die "never started"; block_storage_url ;;
    ceph-env) cmd_ceph_env ;;
    clouds) cmd_clouds ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# Several simulated compute hosts on one machine, for tests: host I is a network
# namespace zun-host-I (loopback only) with its own dockerd, started by
# scripts/dockerd.sh through `nsenter --net=/var/run/netns/zun-host-I`.
#
#   bash scripts/hosts.sh start N   # start (or reuse) hosts 1..N; prints N sockets, host I on line I
#   bash scripts/hosts.sh stop      # stop every host this script made, clean its leftovers
#   bash scripts/hosts.sh purge     # stop, then delete the hosts' data roots too
#   bash scripts/hosts.sh status [N]  # exit 0 iff hosts 1..N (default: the last start's N) answer
#
# Hosts reach each other over an underlay: a bridge ($UNDERLAY_BRIDGE, no
# address) in the current namespace with one veth per host, whose inside end
# `uly0` has $UNDERLAY_NET.I/24 (what the hosts' network drivers carry their
# networks' VXLAN traffic over; `bash scripts/hosts.sh underlay-address I`).
#
# Host I has its own socket, pidfile, log and exec root (with its own managed
# containerd) under $RUN_BASE/I, data root $DATA_BASE/I, cgroup parent /zun-host-I,
# and dockerd.sh's flags (no bridge, no iptables, dead proxies, busybox:latest
# imported, a container run checked once per data root and namespace). The
# daemons start in parallel. The main engine (/run/zun-docker) is never touched.
#
# Environment (all optional):
#   ZUN_HOSTS_RUN_BASE   /run/zun-hosts
#   ZUN_HOSTS_DATA_BASE  /var/lib/zun-hosts
#   ZUN_HOSTS_PREFIX     zun-host      (namespace and cgroup parent names)
#   ZUN_HOSTS_UNDERLAY   10.250.0      (the underlay's /24, without the last byte)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_BASE="${ZUN_HOSTS_RUN_BASE:-/run/zun-hosts}"
DATA_BASE="${ZUN_HOSTS_DATA_BASE:-/var/lib/zun-hosts}"
PREFIX="${ZUN_HOSTS_PREFIX:-zun-host}"
UNDERLAY_NET="${ZUN_HOSTS_UNDERLAY:-10.250.0}"
# Interface names hold 15 bytes: the prefix enters as a short checksum.
TAG="$(printf %s "$PREFIX" | cksum | cut -c1-5)"
UNDERLAY_BRIDGE="zul-$TAG"
DOCKERD_SH="$ROOT/scripts/dockerd.sh"
# A namespace this script created carries this marker in its run dir; stop
# deletes only those.
NETNS_MARKER="netns-made-by-hosts.sh"
# start, stop and purge hold this lock (outside RUN_BASE, which stop removes).
LOCK_FILE="$RUN_BASE.lock"

log() { printf '[hosts] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs scripts/dockerd.sh for host $1.
host_dockerd() { # I, dockerd.sh arguments...
    local i="$1"
    shift
    ZUN_DOCKER_RUN_DIR="$RUN_BASE/$i" \
        ZUN_DOCKER_DATA_ROOT="$DATA_BASE/$i" \
        ZUN_DOCKER_SOCKET="$RUN_BASE/$i/docker.sock" \
        ZUN_DOCKER_CGROUP_PARENT="/$PREFIX-$i" \
        ZUN_DOCKERD_NETNS="$PREFIX-$i" \
        ZUN_DOCKER_LOG_TAG="$PREFIX-$i" \
        bash "$DOCKERD_SH" "$@" 9>&- # the daemons must not inherit the lock
}

lock() {
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock -w 300 9 || die "another scripts/hosts.sh holds $LOCK_FILE"
}

ensure_netns() { # I
    local i="$1" ns="$PREFIX-$1"
    mkdir -p "$RUN_BASE/$i"
    if [[ ! -e "/var/run/netns/$ns" ]]; then
        ip netns add "$ns"
        touch "$RUN_BASE/$i/$NETNS_MARKER"
    fi
    ip -n "$ns" link set lo up
    ensure_underlay "$i"
}

# The host's leg on the underlay bridge.
ensure_underlay() { # I
    local i="$1" ns="$PREFIX-$1" outer="zul-$TAG-$1"
    if ! ip link show dev "$UNDERLAY_BRIDGE" >/dev/null 2>&1; then
        ip link add "$UNDERLAY_BRIDGE" type bridge
    fi
    ip link set "$UNDERLAY_BRIDGE" up
    if ! ip link show dev "$outer" >/dev/null 2>&1; then
        ip link add "$outer" type veth peer name uly0 netns "$ns"
    fi
    ip link set "$outer" master "$UNDERLAY_BRIDGE" up
    ip -n "$ns" addr replace "$UNDERLAY_NET.$i/24" dev uly0
    ip -n "$ns" link set uly0 up
}

# The host numbers this script has state for (run dirs), ascending.
known_hosts() {
    local d
    [[ -d "$RUN_BASE" ]] || return 0
    for d in "$RUN_BASE"/*/; do
        d="${d%/}"
        d="${d##*/}"
        [[ "$d" =~ ^[0-9]+$ ]] && echo "$d"
    done | sort -n
}

# Kills whatever a daemon that did not shut down cleanly left behind: processes in
# the host's cgroups (containers), its containerd and shims (found by the exec root
# in their command line), then unmounts everything under its exec and data roots
# and removes its cgroups. A clean `dockerd.sh stop` leaves only the data root's
# own bind mount.
clean_leftovers() { # I
    local i="$1" exec_root="$RUN_BASE/$1/exec" data_root="$DATA_BASE/$1" cg="$PREFIX-$1"
    local pids=() pid f mnt
    for f in /sys/fs/cgroup/*/"$cg"/ /sys/fs/cgroup/"$cg"/; do
        [[ -d "$f" ]] || continue
        while read -r pid; do pids+=("$pid"); done < <(find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    while read -r pid; do pids+=("$pid"); done \
        < <(pgrep -f -- "^(/usr/bin/)?containerd(-shim[^ ]*)? .*$exec_root/" || true)
    if ((${#pids[@]})); then
        mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -un)
        log "host $i: killing leftover processes ${pids[*]}"
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    fi
    # Deepest first (mountinfo lists parents before children).
    while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "host $i: cannot unmount $mnt"
    done < <(awk -v a="$exec_root" -v b="$data_root" \
        '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' \
        /proc/self/mountinfo | tac)
    for f in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
        [[ -d "$f" ]] || continue
        find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
}

start() {
    local n="${1:-}"
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "usage: $0 start N (N >= 1)"
    command -v ip >/dev/null || die "ip missing (bash scripts/setup.sh installs iproute2)"
    command -v nsenter >/dev/null || die "nsenter missing (bash scripts/setup.sh installs util-linux)"
    mkdir -p "$RUN_BASE" "$DATA_BASE"
    local i t0=$SECONDS
    # Sequentially: the first `ip netns add` sets up the /var/run/netns mount.
    for ((i = 1; i <= n; i++)); do ensure_netns "$i"; done
    local pids=()
    for ((i = 1; i <= n; i++)); do
        host_dockerd "$i" start >"$RUN_BASE/$i/socket" &
        pids[i]=$!
    done
    local failed=()
    for ((i = 1; i <= n; i++)); do
        wait "${pids[i]}" || failed+=("$i")
    done
    ((${#failed[@]} == 0)) || die "hosts ${failed[*]} did not start (logs: $RUN_BASE/I/dockerd.log)"
    echo "$n" >"$RUN_BASE/count"
    log "$n hosts up in $((SECONDS - t0))s"
    for ((i = 1; i <= n; i++)); do tail -n 1 "$RUN_BASE/$i/socket"; done
}

stop() {
    local hosts=() i pids=()
    mapfile -t hosts < <(known_hosts)
    if ((${#hosts[@]} == 0)); then
        log "no hosts"
        return 0
    fi
    for i in "${hosts[@]}"; do
        (
            if [[ -f "$RUN_BASE/$i/dockerd.pid" ]]; then host_dockerd "$i" stop || true; fi
            clean_leftovers "$i"
        ) &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    for i in "${hosts[@]}"; do
        if [[ -f "$RUN_BASE/$i/$NETNS_MARKER" ]]; then
            ip netns delete "$PREFIX-$i" 2>/dev/null || log "host $i: cannot delete namespace $PREFIX-$i"
        fi
        rm -rf "${RUN_BASE:?}/$i"
    done
    rm -f "$RUN_BASE/count"
    ip link del "$UNDERLAY_BRIDGE" 2>/dev/null || true
    rmdir "$RUN_BASE" 2>/dev/null || true
    log "stopped hosts ${hosts[*]}"
}

purge() {
    stop
    local d
    for d in "$DATA_BASE"/*/; do
        [[ -d "$d" && "${d%/}" =~ /[0-9]+$ ]] || continue
        rm -rf "${d:?}"
    done
    rmdir "$DATA_BASE" 2>/dev/null || true
}

status() {
    local n="${1:-}" i rc=0
    [[ -n "$n" ]] || n="$(cat "$RUN_BASE/count" 2>/dev/null || true)"
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { log "no hosts"; return 1; }
    for ((i = 1; i <= n; i++)); do
        if [[ -d "$RUN_BASE/$i" ]] && host_dockerd "$i" status 2>/dev/null; then :; else
            log "host $i does not answer"
            rc=1
        fi
    done
    return "$rc"
}

case "${1:-}" in
    start) lock && start "${2:-}" ;;
    stop) lock && stop ;;
    purge) lock && purge ;;
    status) status "${2:-}" ;;
    underlay-address) echo "$UNDERLAY_NET.${2:?usage: $0 underlay-address I}" ;;
    *)
        echo "usage: $0 start N|stop|purge|status [N]|underlay-address I" >&2
        exit 2
        ;;
esac

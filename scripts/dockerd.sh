#!/usr/bin/env bash
# The project's own Docker engine, separate from any dockerd already on the machine.
#
#   bash scripts/dockerd.sh start    # start (or reuse) it, build busybox:latest, print the socket
#   bash scripts/dockerd.sh stop     # stop it (containers in it are stopped by dockerd)
#   bash scripts/dockerd.sh status   # exit 0 and print the socket if it answers
#   bash scripts/dockerd.sh socket   # print the socket path only
#
# It has its own socket, data root, exec root (with its own managed containerd),
# pidfile and cgroup parent. It creates no bridge and touches no iptables rules
# (--bridge=none --iptables=false): a dockerd already running on this machine
# owns docker0 and its NAT rules, and ours must not fight over them. Containers
# still start with the default network mode (they get a private network
# namespace with loopback only), which `start` verifies once per data root.
# Nothing is ever pulled: the demo image busybox:latest is imported from
# Debian's busybox-static when the engine lacks it.
#
# Environment (all optional):
#   ZUN_DOCKER_RUN_DIR   /run/zun-docker        socket, pidfile, exec root, log
#   ZUN_DOCKER_DATA_ROOT /var/lib/zun-docker    images and containers
#   ZUN_DOCKER_SOCKET    $ZUN_DOCKER_RUN_DIR/docker.sock
#   ZUN_DOCKERD_ARGS     extra dockerd arguments (word-split)
#   ZUN_DOCKER_CGROUP_PARENT  --cgroup-parent (default /zun-docker)
#   ZUN_DOCKERD_NETNS    a network namespace name (/var/run/netns/NAME, made by
#                        `ip netns add`): dockerd is launched in it through
#                        `nsenter --net=` (not `ip netns exec`, which remounts /sys
#                        and hides the cgroup mounts dockerd needs); start and
#                        status also check that the daemon really runs in it, and
#                        a daemon that answers from another namespace is restarted
#   ZUN_DOCKER_LOG_TAG   prefix of this script's messages (default dockerd)
#   ZUN_RUNC_BIN         the zun-runc OCI runtime wrapper the engine registers as
#                        `zun-runc` (default /usr/local/libexec/zun-runc; built
#                        by cargo, installed there by scripts/test.sh and run.sh):
#                        containers on the service's networks run through it
#
# The engine also knows the OCI runtime `zun-runc` (--add-runtime): it starts a
# container inside the network namespace the service's network driver made for
# it. The binary need not exist when the daemon starts, only when such a
# container is created; a running daemon without the runtime is restarted.
# scripts/hosts.sh uses these to run one engine per simulated compute host.
set -euo pipefail

RUN_DIR="${ZUN_DOCKER_RUN_DIR:-/run/zun-docker}"
DATA_ROOT="${ZUN_DOCKER_DATA_ROOT:-/var/lib/zun-docker}"
SOCKET="${ZUN_DOCKER_SOCKET:-$RUN_DIR/docker.sock}"
PIDFILE="$RUN_DIR/dockerd.pid"
EXEC_ROOT="$RUN_DIR/exec"
LOGFILE="$RUN_DIR/dockerd.log"
IMAGE="busybox:latest"
START_TIMEOUT=60
STOP_TIMEOUT=30
DEAD_PROXY="http://127.0.0.1:9"
CGROUP_PARENT="${ZUN_DOCKER_CGROUP_PARENT:-/zun-docker}"
NETNS="${ZUN_DOCKERD_NETNS:-}"
NETNS_PATH="${NETNS:+/var/run/netns/$NETNS}"
LOG_TAG="${ZUN_DOCKER_LOG_TAG:-dockerd}"
RUNC_BIN="${ZUN_RUNC_BIN:-/usr/local/libexec/zun-runc}"

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

dk() { docker -H "unix://$SOCKET" "$@"; }

answers() { [[ -S "$SOCKET" ]] && dk version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# True when the daemon knows the zun-runc runtime at RUNC_BIN.
has_runtime() {
    [[ "$(dk info --format '{{with index .Runtimes "zun-runc"}}{{.Path}}{{end}}' 2>/dev/null)" == "$RUNC_BIN" ]]
}

pid_alive() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# The namespace link dockerd must have ("net:[INODE]"), empty without ZUN_DOCKERD_NETNS.
want_netns() {
    [[ -n "$NETNS" ]] || return 0
    local ino
    ino="$(stat -L -c %i "$NETNS_PATH" 2>/dev/null)" || die "network namespace $NETNS_PATH missing"
    echo "net:[$ino]"
}

# True when the daemon of the pidfile runs in ZUN_DOCKERD_NETNS (always without one).
in_netns() {
    [[ -n "$NETNS" ]] || return 0
    local want
    want="$(want_netns)"
    [[ "$(readlink "/proc/$(cat "$PIDFILE")/ns/net" 2>/dev/null)" == "$want" ]]
}

build_image() {
    if dk image inspect "$IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    local busybox=/bin/busybox
    [[ -x "$busybox" ]] || die "$busybox missing (install busybox-static: bash scripts/setup.sh)"
    file -L "$busybox" 2>/dev/null | grep -q 'statically linked' \
        || ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable' \
        || die "$busybox is not statically linked (install busybox-static)"
    log "building $IMAGE from $busybox"
    local tmp applet
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    mkdir -p "$tmp/rootfs"/{bin,etc,tmp,root,proc,sys,dev,home,var,usr/bin}
    chmod 1777 "$tmp/rootfs/tmp"
    cp "$busybox" "$tmp/rootfs/bin/busybox"
    for applet in $("$busybox" --list); do
        [[ "$applet" == busybox ]] && continue
        ln -s busybox "$tmp/rootfs/bin/$applet"
    done
    ln -s ../../bin/busybox "$tmp/rootfs/usr/bin/env"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$tmp/rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/rootfs/etc/group"
    tar -C "$tmp/rootfs" --numeric-owner --owner=0 --group=0 -cf "$tmp/rootfs.tar" .
    dk import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' "$tmp/rootfs.tar" "$IMAGE" >/dev/null
    dk image inspect "$IMAGE" >/dev/null
}

# Containers must start with the engine's default network mode although no bridge
# exists. Checked once per data root (a marker file records success). With
# ZUN_DOCKERD_NETNS, a host-network container must also see that namespace;
# the marker holds the namespace checked, so a recreated namespace is checked again.
verify_run() {
    local marker="$DATA_ROOT/.zun-verified" want out
    want="$(want_netns)"
    [[ -f "$marker" && "$(cat "$marker")" == "$want" ]] && return 0
    if ! out="$(dk run --rm "$IMAGE" /bin/sh -c 'echo zun-ok' 2>&1)" || [[ "$out" != *zun-ok* ]]; then
        die "a container did not start in the dedicated engine: $out"
    fi
    if [[ -n "$want" ]]; then
        out="$(dk run --rm --network host "$IMAGE" readlink /proc/self/ns/net 2>&1)" \
            || die "a host-network container did not start: $out"
        [[ "$out" == "$want" ]] || die "a host-network container runs in $out, not in $NETNS ($want)"
    fi
    printf '%s' "$want" >"$marker"
}

start() {
    command -v dockerd >/dev/null || die "dockerd missing (bash scripts/setup.sh installs docker.io)"
    command -v docker >/dev/null || die "docker CLI missing (bash scripts/setup.sh installs docker.io)"
    local launcher=()
    if [[ -n "$NETNS" ]]; then
        command -v nsenter >/dev/null || die "nsenter missing (util-linux)"
        want_netns >/dev/null
        launcher=(nsenter "--net=$NETNS_PATH")
    fi
    mkdir -p "$RUN_DIR" "$DATA_ROOT" "$EXEC_ROOT"
    if pid_alive && answers && in_netns && has_runtime; then
        log "already running (pid $(cat "$PIDFILE"))"
    else
        if pid_alive; then
            log "pid $(cat "$PIDFILE") does not answer on $SOCKET, runs outside ${NETNS:-its namespace} or lacks the zun-runc runtime; stopping it"
            stop_daemon
        fi
        rm -f "$PIDFILE"
        [[ -S "$SOCKET" ]] && rm -f "$SOCKET"
        log "starting dockerd on $SOCKET (data root $DATA_ROOT, log $LOGFILE${NETNS:+, network namespace $NETNS})"
        # A dead local proxy: any pull the engine attempts fails at once on
        # loopback instead of reaching out (this machine has no internet, and
        # the service's default pull policy is upstream's "always").
        # shellcheck disable=SC2086
        env HTTP_PROXY="$DEAD_PROXY" HTTPS_PROXY="$DEAD_PROXY" http_proxy="$DEAD_PROXY" \
            https_proxy="$DEAD_PROXY" NO_PROXY= no_proxy= \
            setsid "${launcher[@]}" dockerd \
            --host "unix://$SOCKET" \
            --data-root "$DATA_ROOT" \
            --exec-root "$EXEC_ROOT" \
            --pidfile "$PIDFILE" \
            --bridge=none \
            --iptables=false \
            --ip-masq=false \
            --ip-forward=false \
            --userland-proxy=false \
            --add-runtime "zun-runc=$RUNC_BIN" \
            --cgroup-parent="$CGROUP_PARENT" \
            --shutdown-timeout=5 \
            --log-level=warn \
            ${ZUN_DOCKERD_ARGS:-} \
            </dev/null >>"$LOGFILE" 2>&1 &
        local child=$! waited=0
        until answers; do
            if ! kill -0 "$child" 2>/dev/null; then
                tail -n 30 "$LOGFILE" >&2 || true
                die "dockerd exited during start-up"
            fi
            if ((waited >= START_TIMEOUT * 10)); then
                tail -n 30 "$LOGFILE" >&2 || true
                die "dockerd did not answer on $SOCKET within ${START_TIMEOUT}s"
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        log "dockerd $(dk version --format '{{.Server.Version}}') answers (pid $(cat "$PIDFILE"))"
        in_netns || die "dockerd (pid $(cat "$PIDFILE")) runs in $(readlink "/proc/$(cat "$PIDFILE")/ns/net"), not in $NETNS"
    fi
    build_image
    verify_run
    echo "$SOCKET"
}

stop_daemon() {
    local pid waited=0
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT * 10)); then
            log "dockerd $pid did not stop in ${STOP_TIMEOUT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

stop() {
    if pid_alive; then
        log "stopping dockerd (pid $(cat "$PIDFILE"))"
        stop_daemon
    else
        log "not running"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        if pid_alive && answers && in_netns; then echo "$SOCKET"; else
            log "not running"
            exit 1
        fi
        ;;
    socket) echo "$SOCKET" ;;
    *)
        echo "usage: $0 start|stop|status|socket" >&2
        exit 2
        ;;
esac

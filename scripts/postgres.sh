#!/usr/bin/env bash
# The project's own throwaway PostgreSQL 15 cluster, for the store's tests.
#
#   bash scripts/postgres.sh start    # create (once) and start it, print its URL last
#   bash scripts/postgres.sh stop     # stop it (the data stays for the next start)
#   bash scripts/postgres.sh status   # exit 0 and print the URL if it answers
#   bash scripts/postgres.sh url      # print the URL only
#
# The cluster lives under .data/postgres-test, owned by the `postgres`
# system user (initdb refuses to run as root), listens on 127.0.0.1 only
# (and a socket in its own directory), trusts local connections (it holds
# test data only) and uses the C locale. No init system: pg_ctl starts and
# stops it. Idempotent: start reuses a running cluster.
#
# Environment (all optional):
#   ZUN_POSTGRES_DIR    .data/postgres-test     data directory, socket, log
#   ZUN_POSTGRES_PORT   a free port, kept in $ZUN_POSTGRES_DIR/port
#   ZUN_POSTGRES_BIN    /usr/lib/postgresql/15/bin
#   ZUN_POSTGRES_DB     zun_test                database created on start
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${ZUN_POSTGRES_DIR:-$ROOT/.data/postgres-test}"
BIN="${ZUN_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}"
DB="${ZUN_POSTGRES_DB:-zun_test}"
PGDATA="$BASE/data"
SOCKET_DIR="$BASE/run"
LOGFILE="$BASE/postgres.log"
PORT_FILE="$BASE/port"
OS_USER=postgres
START_TIMEOUT=60

log() { printf '[postgres] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command as the cluster's owner (as is, when that is who we are).
as_owner() {
    if [[ "$(id -un)" == "$OS_USER" ]]; then "$@"; else runuser -u "$OS_USER" -- "$@"; fi
}

port() { cat "$PORT_FILE" 2>/dev/null; }

url() { echo "postgres://$OS_USER@127.0.0.1:$(port)/$DB"; }

answers() {
    [[ -f "$PORT_FILE" ]] && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(port)" -U "$OS_USER" 2>/dev/null
}

running() { [[ -f "$PGDATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

init() {
    [[ -x "$BIN/initdb" ]] || die "$BIN/initdb missing (bash scripts/setup.sh installs postgresql)"
    id "$OS_USER" >/dev/null 2>&1 || die "no '$OS_USER' system user (installed with postgresql)"
    mkdir -p "$BASE" "$SOCKET_DIR"
    # The owner must reach its directory through the checkout.
    chown "$OS_USER" "$BASE" "$SOCKET_DIR"
    chmod 0755 "$BASE"
    if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
        log "creating the cluster in $PGDATA"
        rm -rf "$PGDATA"
        as_owner "$BIN/initdb" -D "$PGDATA" -U "$OS_USER" --auth=trust --locale=C \
            --encoding=UTF8 >"$BASE/initdb.log" 2>&1 \
            || { cat "$BASE/initdb.log" >&2; die "initdb failed"; }
    fi
    if [[ ! -f "$PORT_FILE" ]]; then
        echo "${ZUN_POSTGRES_PORT:-$(free_port)}" >"$PORT_FILE"
    elif [[ -n "${ZUN_POSTGRES_PORT:-}" ]]; then
        echo "$ZUN_POSTGRES_PORT" >"$PORT_FILE"
    fi
}

start() {
    init
    if running && answers; then
        log "already running on 127.0.0.1:$(port)"
    else
        if running; then
            log "running but not answering on 127.0.0.1:$(port); restarting"
            as_owner "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
        fi
        touch "$LOGFILE"
        chown "$OS_USER" "$LOGFILE"
        log "starting PostgreSQL on 127.0.0.1:$(port) (log $LOGFILE)"
        # Enough connections for parallel tests, each with its own pools.
        as_owner "$BIN/pg_ctl" -D "$PGDATA" -l "$LOGFILE" -w -t "$START_TIMEOUT" \
            -o "-c listen_addresses=127.0.0.1 -p $(port) -k $SOCKET_DIR -c max_connections=400 \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null || { tail -n 30 "$LOGFILE" >&2; die "PostgreSQL did not start"; }
    fi
    if ! as_owner "$BIN/psql" -h 127.0.0.1 -p "$(port)" -U "$OS_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        as_owner "$BIN/createdb" -h 127.0.0.1 -p "$(port)" -U "$OS_USER" "$DB"
    fi
    url
}

stop() {
    if running; then
        log "stopping PostgreSQL on 127.0.0.1:$(port)"
        as_owner "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    else
        log "not running"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        if running && answers; then url; else
            log "not running"
            exit 1
        fi
        ;;
    url) url ;;
    *)
        echo "usage: $0 start|stop|status|url" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# Build and run the service on this machine, all in one process:
#
#   bash scripts/run.sh [extra zund all-in-one arguments]
#
# Installs what is missing (scripts/setup.sh), starts the project's own dockerd
# (scripts/dockerd.sh), builds the release binary, and runs
#   zund all-in-one --listen 127.0.0.1:9517 --data-dir .data/zun
# in the foreground. Ctrl-C stops zund, and the dockerd too if this script
# started it. Environment: ZUN_LISTEN (default 127.0.0.1:9517), RUST_LOG,
# ZUND_BIN (use this binary instead of building the release one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LISTEN="${ZUN_LISTEN:-127.0.0.1:9517}"
DATA_DIR="$ROOT/.data/zun"
export RUST_LOG="${RUST_LOG:-info}"

bash scripts/setup.sh

started_dockerd=0
if ! bash scripts/dockerd.sh status >/dev/null 2>&1; then
    started_dockerd=1
fi
SOCKET="$(bash scripts/dockerd.sh start | tail -n 1)"

zund_pid=""
cleanup() {
    if [[ -n "$zund_pid" ]] && kill -0 "$zund_pid" 2>/dev/null; then
        kill -TERM "$zund_pid" 2>/dev/null || true
        wait "$zund_pid" 2>/dev/null || true
    fi
    if ((started_dockerd)); then
        bash scripts/dockerd.sh stop || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${ZUND_BIN:-}" ]]; then
    echo "[run] using ZUND_BIN=$ZUND_BIN (no build)" >&2
else
    cargo build --release -p zund -p zun-runc
    ZUND_BIN="$ROOT/target/release/zund"
fi
# The OCI runtime wrapper the engine starts networked containers through
# (scripts/dockerd.sh registers it as `zun-runc`).
install -D -m 0755 "$(dirname "$ZUND_BIN")/zun-runc" /usr/local/libexec/zun-runc
mkdir -p "$DATA_DIR"

"$ZUND_BIN" all-in-one --listen "$LISTEN" --data-dir "$DATA_DIR" \
    --docker-socket "$SOCKET" "$@" &
zund_pid=$!

for _ in $(seq 1 300); do
    curl -fsS "http://$LISTEN/" >/dev/null 2>&1 && break
    kill -0 "$zund_pid" 2>/dev/null || { echo "zund exited during start-up" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "http://$LISTEN/" >/dev/null || { echo "zund does not answer on $LISTEN" >&2; exit 1; }

cat <<EOF

zund is running on http://$LISTEN (data in $DATA_DIR, engine $SOCKET).
No Keystone: every request acts as the configured project and user.

  export OS_AUTH_TYPE=none OS_ENDPOINT=http://$LISTEN/v1
  source .venv/bin/activate
  openstack appcontainer run --name web busybox sh -c 'while true; do date; sleep 1; done'
  openstack appcontainer list
  openstack appcontainer logs web
  openstack appcontainer delete --force web     # --stop waits for a clean stop first

  curl -s http://$LISTEN/v1/containers -H 'OpenStack-API-Version: container 1.40' | jq .
  docker -H unix://$SOCKET ps        # the engine-side containers are named zun-<uuid>

Ctrl-C stops it.
EOF

wait "$zund_pid"

#!/usr/bin/env bash
# Build release and benchmark zund against raw Docker engine calls:
#
#   bash scripts/bench.sh [zun-bench arguments, e.g. --count 50 --concurrency 10]
#
# zun-bench starts its own `zund all-in-one` (free port, temporary data dir,
# its own compute host name), measures create-to-Running latency sequentially
# and N at a time beside the raw engine's create+start, GET /v1/containers
# latency, and zund's resident memory, then stops zund and removes every
# container it made. It prints one table; about two minutes.
#
# Engine: $ZUN_BENCH_DOCKER_SOCKET if set; else the project's own dockerd
# (scripts/dockerd.sh start, stopped again afterwards if this script started
# it) when that script exists; else /var/run/docker.sock.
#
# The scale benchmark (no engine: simulated hosts over in-memory engines):
#
#   bash scripts/bench.sh --scale-hosts 1000 [--scale-containers 10000] [--concurrency 16] [--postgres] [--scale-quota N]
#
# places the containers through the API of `zund simulate` and prints the
# placements per second and the p50/p99 of create and list at that size; on
# SQLite, or with --postgres on the project's PostgreSQL (scripts/postgres.sh,
# a fresh database per run).
#
# The Cinder volume row (a real Keystone and Cinder on a one-node Ceph, from
# scripts/cinder.sh, started here and stopped again if this script started
# them; the first run installs them, about 3 minutes):
#
#   bash scripts/bench.sh --cinder
#
# What the hostile-tenant defaults cost: two zunds in one run, hardened and
# relaxed, create-to-Running alternating between them, and their agent
# endpoints' latency over TLS and plain HTTP:
#
#   bash scripts/bench.sh --security
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

started_dockerd=0
started_cinder=0
config_dir=""
cleanup() {
    if [[ -n "$config_dir" ]]; then
        rm -rf "$config_dir"
    fi
    if ((started_cinder)); then
        bash scripts/cinder.sh stop >/dev/null || true
    fi
    if ((started_dockerd)); then
        bash scripts/dockerd.sh stop || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release -p zund -p zun-bench

if [[ " $* " == *" --scale-hosts "* ]]; then
    args=()
    for arg in "$@"; do
        if [[ "$arg" == --postgres ]]; then
            base="$(bash scripts/postgres.sh start | tail -n 1)"
            db="zun_bench_$(date +%s)_$$"
            psql "$base" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
            export ZUN_BENCH_STORE_URL="${base%/*}/$db"
        else
            args+=("$arg")
        fi
    done
    exec ./target/release/zun-bench --zund ./target/release/zund "${args[@]}"
fi

if [[ -n "${ZUN_BENCH_DOCKER_SOCKET:-}" ]]; then
    SOCKET="$ZUN_BENCH_DOCKER_SOCKET"
elif [[ -f scripts/dockerd.sh ]]; then
    if ! bash scripts/dockerd.sh status >/dev/null 2>&1; then
        started_dockerd=1
    fi
    SOCKET="$(bash scripts/dockerd.sh start | tail -n 1)"
else
    SOCKET=/var/run/docker.sock
fi
[[ -S "$SOCKET" ]] || { echo "bench: no Docker socket at $SOCKET" >&2; exit 1; }

if [[ " $* " == *" --cinder "* ]]; then
    # zund with Keystone identity and Cinder volumes, the bench as Keystone's
    # admin (test-only credentials, seeded by scripts/keystone.sh).
    if ! bash scripts/cinder.sh status >/dev/null 2>&1; then
        started_cinder=1
    fi
    bash scripts/cinder.sh start >/dev/null
    keystone_url="$(bash scripts/keystone.sh url | tail -n 1)"
    cinder_url="$(bash scripts/cinder.sh url | tail -n 1)"
    config_dir="$(mktemp -d)"
    config="$config_dir/zund-cinder.toml"
    cat >"$config" <<EOF
[identity]
mode = "keystone"
[identity.keystone]
auth_url = "$keystone_url"
username = "zun"
password = "zun-secret"
project_name = "service"
user_domain_name = "Default"
project_domain_name = "Default"
[volume]
driver = "cinder"
[volume.cinder]
url = "$cinder_url"
auth_url = "$keystone_url"
username = "cinder"
password = "cinder-secret"
project_name = "service"
ceph_conf = "${CINDER_DATA_DIR:-$ROOT/.data/cinder}/ceph/ceph.conf"
EOF
    # The run holds 20 volumes at once; Cinder's default quota is 10 per
    # project: raise the admin project's.
    login="$(curl -sS -i -X POST "$keystone_url/auth/tokens?nocatalog" \
        -H 'Content-Type: application/json' \
        -d '{"auth": {"identity": {"methods": ["password"], "password": {"user":
             {"name": "admin", "password": "admin-secret", "domain": {"name": "Default"}}}},
             "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}')"
    token="$(printf '%s\n' "$login" | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: *//p' | tr -d '\r')"
    project="$(printf '%s\n' "$login" | sed -n '/^{/p' \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"]["project"]["id"])')"
    curl -sS -f -o /dev/null -X PUT "$cinder_url/$project/os-quota-sets/$project" \
        -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
        -d '{"quota_set": {"volumes": 100, "gigabytes": 1000}}'
    export ZUN_BENCH_ZUND_CONFIG="$config" ZUN_BENCH_KEYSTONE_URL="$keystone_url" \
        ZUN_BENCH_KEYSTONE_USER=admin ZUN_BENCH_KEYSTONE_PASSWORD=admin-secret \
        ZUN_BENCH_KEYSTONE_PROJECT=admin
fi

ZUN_BENCH_DOCKER_SOCKET="$SOCKET" ./target/release/zun-bench \
    --zund ./target/release/zund "$@"

#!/usr/bin/env bash
# The project's whole check, as CI runs it (.ci/run calls this):
#
#   bash scripts/test.sh
#
# 1. setup (Debian packages, .venv with the OpenStack CLI)   scripts/setup.sh
# 2. the project's own dockerd and busybox image             scripts/dockerd.sh
#    and a throwaway PostgreSQL 15 cluster                     scripts/postgres.sh
# 3. cargo fmt --check, cargo clippy -D warnings
# 4. one debug build of every target
# 5. Rust tests (cargo nextest if installed, else cargo test), with
#    ZUN_TEST_DOCKER_SOCKET pointing at the dedicated engine and
#    ZUN_TEST_POSTGRES_URL at the PostgreSQL cluster
# 6. pytest tests/acceptance (real zund, real docker, real openstack CLI); tests
#    that need several compute hosts start them themselves (scripts/hosts.sh,
#    through tests/acceptance/engine_hosts.py) and stop them on teardown;
#    test_hosts.py runs them on a database of its own on the same PostgreSQL
#
# Every step runs even when an earlier check fails (a failed build skips the
# tests that need it); the script exits non-zero if any step failed. What it
# started (dockerd and PostgreSQL, unless already running) is stopped on exit.
#
# Environment: ZUN_PYTEST_ARGS   extra pytest arguments (e.g. "-k crash")
#              ZUN_SKIP_LINT=1   skip fmt and clippy (local iteration only)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTEST_TIMEOUT_S="${ZUN_PYTEST_TIMEOUT_S:-1500}"
LOG_DIR="$ROOT/.data/test-logs"

declare -a STEP_NAMES=() STEP_RESULTS=()
failed=0
started_dockerd=0
started_postgres=0
pytest_summary=""
pytest_failures=""

note() { printf '\n==> %s\n' "$*"; }

record() { # name, result
    STEP_NAMES+=("$1")
    STEP_RESULTS+=("$2")
    [[ "$2" == ok ]] || failed=1
}

step() { # name, command...
    local name="$1" start rc=0
    shift
    note "$name: $*"
    start=$(date +%s)
    "$@" || rc=$?
    if ((rc == 0)); then
        record "$name" ok
    else
        record "$name" "FAILED (exit $rc)"
    fi
    printf '<== %s: %s in %ss\n' "$name" "${STEP_RESULTS[-1]}" "$(($(date +%s) - start))"
    return "$rc"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if ((started_dockerd)); then
        bash "$ROOT/scripts/dockerd.sh" stop || true
    fi
    if ((started_postgres)); then
        bash "$ROOT/scripts/postgres.sh" stop || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ environment
step setup bash scripts/setup.sh || { echo "setup failed; nothing else can run" >&2; exit 1; }

if bash scripts/dockerd.sh status >/dev/null 2>&1; then
    note "reusing the project's dockerd that is already running"
else
    started_dockerd=1
fi
socket_file="$(mktemp)"
if step dockerd bash -c "bash scripts/dockerd.sh start >'$socket_file'"; then
    ZUN_TEST_DOCKER_SOCKET="$(tail -n 1 "$socket_file")"
else
    ZUN_TEST_DOCKER_SOCKET=""
fi
rm -f "$socket_file"
export ZUN_TEST_DOCKER_SOCKET

if bash scripts/postgres.sh status >/dev/null 2>&1; then
    note "reusing the project's PostgreSQL that is already running"
else
    started_postgres=1
fi
url_file="$(mktemp)"
if step postgres bash -c "bash scripts/postgres.sh start >'$url_file'"; then
    ZUN_TEST_POSTGRES_URL="$(tail -n 1 "$url_file")"
else
    # The store's PostgreSQL tests then fail, saying what is missing.
    unset ZUN_TEST_POSTGRES_URL
fi
rm -f "$url_file"
[[ -z "${ZUN_TEST_POSTGRES_URL:-}" ]] || export ZUN_TEST_POSTGRES_URL

# ------------------------------------------------------------------ Rust checks
if [[ "${ZUN_SKIP_LINT:-0}" != 1 ]]; then
    step fmt cargo fmt --all -- --check || true
    step clippy cargo clippy --workspace --all-targets -- -D warnings || true
fi

built=0
if step build cargo build --workspace --all-targets; then
    built=1
fi
export ZUND_BIN="$ROOT/target/debug/zund"
if ((built)); then
    # The OCI runtime wrapper the engines start networked containers through
    # (scripts/dockerd.sh registers this path as `zun-runc`).
    install -D -m 0755 "$ROOT/target/debug/zun-runc" /usr/local/libexec/zun-runc
fi

if ((built)); then
    if cargo nextest --version >/dev/null 2>&1; then
        step rust-tests cargo nextest run --workspace --no-fail-fast --no-tests=warn || true
    else
        step rust-tests cargo test --workspace --no-fail-fast || true
    fi
else
    record rust-tests "not run (build failed)"
fi

# ------------------------------------------------------------------ acceptance
pytest_log="$(mktemp)"
if ((built)) && [[ -n "$ZUN_TEST_DOCKER_SOCKET" ]]; then
    rm -rf "$LOG_DIR"
    mkdir -p "$LOG_DIR"
    export ZUN_TEST_LOG_DIR="$LOG_DIR"
    # shellcheck disable=SC2016  # expanded by the inner bash
    step acceptance bash -c 'set -o pipefail; timeout -s INT -k 60 "$0" "$1" -m pytest "$2" \
            -p no:cacheprovider -rfE --durations=10 --color=no $3 </dev/null 2>&1 | tee "$4"' \
        "$PYTEST_TIMEOUT_S" "$ROOT/.venv/bin/python" tests/acceptance "${ZUN_PYTEST_ARGS:-}" \
        "$pytest_log" || true
    # The line pytest closes with (e.g. "==== 80 passed, 2 failed in 95.1s ====").
    pytest_summary="$(grep -E '^=+ .*( in [0-9.]+s).* =+$' "$pytest_log" | tail -n 1 || true)"
    [[ -n "$pytest_summary" ]] || record acceptance-summary "FAILED (pytest printed no summary)"
    # Each failure on one short line, repeated at the very end: a reader
    # that keeps only the head and tail of a long run still sees them all.
    pytest_failures="$(grep -E '^(FAILED|ERROR) ' "$pytest_log" | cut -c1-400 || true)"
    note "server logs of the acceptance run: $LOG_DIR"
else
    record acceptance "not run (needs the build and the dockerd)"
fi
rm -f "$pytest_log"

# ------------------------------------------------------------------ summary
note "summary"
[[ -z "$pytest_failures" ]] || printf '%s\n' "$pytest_failures"
for i in "${!STEP_NAMES[@]}"; do
    printf '  %-20s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
done
if ((failed)); then
    echo "scripts/test.sh: FAILED"
else
    echo "scripts/test.sh: all steps passed"
fi
# Close on pytest's own summary line, so whoever reads the last line sees it.
[[ -z "$pytest_summary" ]] || echo "$pytest_summary"
exit "$failed"

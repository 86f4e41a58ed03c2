#!/usr/bin/env bash
# Idempotent installer for the project's host dependencies.
#
#   bash scripts/setup.sh
#
# Safe on a fresh Debian 12 machine as root without an init system, and fast on
# a machine where everything is already there (nothing is downloaded then):
#   * Debian packages: docker.io (dockerd 20.10), busybox-static (the demo image's
#     root filesystem), python3-venv, tmux, iproute2 and util-linux (network
#     namespaces and nsenter for scripts/hosts.sh), procps, curl, jq, postgresql
#     (the server the store's PostgreSQL tests run against: scripts/postgres.sh),
#     e2fsprogs and mount (mkfs.ext4 and loop mounts of local volumes);
#   * a Python virtualenv at .venv with the real OpenStack clients
#     (python-openstackclient, python-zunclient) plus pytest and requests, pinned,
#     installed under the OpenStack 2026.1 upper constraints when
#     ../shared/constraints/upper-constraints-2026.1.txt exists beside the project.
# Re-running only reinstalls the venv when the pins below change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
CONSTRAINTS="${ZUN_CONSTRAINTS:-$ROOT/../shared/constraints/upper-constraints-2026.1.txt}"

# Pins. Keep pytest/requests equal to the 2026.1 upper constraints.
PY_REQUIREMENTS=(
    "python-openstackclient==9.0.0"
    "python-zunclient==5.4.0"
    "pytest==9.0.2"
    "requests==2.32.5"
)

# iproute2 and util-linux (nsenter, flock): scripts/hosts.sh's namespaced engines.
# postgresql: the server of the store's PostgreSQL tests (scripts/postgres.sh).
# openssl: the certificate of the man in the middle in test_agent_tls.py.
DEB_PACKAGES=(docker.io busybox-static python3-venv tmux iproute2 util-linux procps curl jq docker-registry apache2-utils postgresql nftables e2fsprogs mount openssl)

log() { printf '[setup] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- Debian packages
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages: ${missing[*]} (run as root to install them)"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
else
    log "Debian packages present"
fi

# ---------------------------------------------------------------- Python venv
# Prefer Debian's interpreter (python3-venv above provides ensurepip for it); fall
# back to whatever python3 is first on PATH.
PYTHON="${ZUN_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON="$(command -v python3)"; fi
fi

constraints_sha="none"
pip_constraints=()
if [[ -f "$CONSTRAINTS" ]]; then
    pip_constraints=(-c "$CONSTRAINTS")
    constraints_sha="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
else
    log "constraints file $CONSTRAINTS not found; installing with the pins only"
fi
stamp_want="$("$PYTHON" --version 2>&1) | ${PY_REQUIREMENTS[*]} | $constraints_sha"
stamp_file="$VENV/.zun-setup-stamp"

if [[ -x "$VENV/bin/python" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_want" ]] \
    && "$VENV/bin/python" -c 'import zunclient, openstackclient, pytest, requests' 2>/dev/null; then
    log "venv $VENV up to date"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing ${PY_REQUIREMENTS[*]} into $VENV"
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check "${pip_constraints[@]}" "${PY_REQUIREMENTS[@]}" </dev/null; then
        if ((${#pip_constraints[@]})); then
            # A constraints file that conflicts with the pins must not block the
            # project: the pins are what the tests rely on.
            log "install under constraints failed; retrying with the pins only"
            "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}" </dev/null
        else
            exit 1
        fi
    fi
    "$VENV/bin/python" -c 'import zunclient, openstackclient, pytest, requests'
    printf '%s' "$stamp_want" >"$stamp_file"
fi

log "done"

#!/usr/bin/env bash
# A real OpenStack Keystone for the project's tests, on loopback.
#
#   bash scripts/keystone.sh start          # install (if needed), configure, start, seed
#   bash scripts/keystone.sh stop           # stop the server started by `start`
#   bash scripts/keystone.sh status         # exit 0 (and print the URL) when it answers
#   bash scripts/keystone.sh env [USER]     # shell exports for USER (default admin)
#   bash scripts/keystone.sh url            # the identity URL, http://127.0.0.1:PORT/v3
#
#   eval "$(bash scripts/keystone.sh env demo)"; .venv/bin/openstack token issue
#
# Keystone 29.1.0 is served by gunicorn 25.2.0 (pure Python, so nothing is
# compiled) from its own venv, .venv-keystone, installed under the OpenStack
# 2026.1 upper constraints (../shared/constraints/upper-constraints-2026.1.txt). Re-running is
# cheap: nothing is reinstalled while the venv has the right versions, and a
# running server with the same settings is left alone (only the seed is re-checked).
#
# It runs ONE synchronous gunicorn worker (SQLite makes concurrent writers fail
# with "database is locked"; the sync worker also closes the connection after
# each response), and caches in memory (dogpile.cache.memory), which takes a
# token validation from ~400 ms to a few ms. An exception that escapes Keystone
# becomes a 500 with its traceback in the log (uwsgi, used before, dropped the
# connection instead and left nothing to read), and the gunicorn arbiter
# replaces a worker that dies.
#
# Seeded (idempotently; all in domain Default, region RegionOne). These are
# test-only credentials on 127.0.0.1:
#
#   user       password          project    roles
#   admin      admin-secret      admin      admin (+ reader, member implied)  [bootstrap]
#   demo       demo-secret       demo       member
#   alt_demo   alt-demo-secret   alt_demo   member
#   zun        zun-secret        service    admin, service      (Zun's service user)
#
#   services:  keystone (identity)  public/internal/admin  http://127.0.0.1:PORT/v3
#              zun      (container) public/internal/admin  $ZUN_ENDPOINT
#
# Environment (all optional):
#   KEYSTONE_PORT               5000                      listen on 127.0.0.1:PORT
#   ZUN_ENDPOINT                http://127.0.0.1:9517/v1  the `container` endpoint URL
#   KEYSTONE_TOKEN_EXPIRATION   3600                      token lifetime in seconds
#   KEYSTONE_PASSWORD_HASH_ROUNDS 4                       bcrypt rounds for new
#                               passwords (Keystone's default is 12, ~250 ms a login;
#                               4 keeps test logins at a few ms)
#   KEYSTONE_ADMIN_PROJECT_NAME  (unset)              when set (e.g. admin), Keystone's
#                               [resource] admin_project_name in domain Default: then
#                               project-scoped validations carry "is_admin_project"
#   KEYSTONE_DATA_DIR           $ROOT/.data/keystone      config, SQLite db, keys,
#                               pidfile, logs (one server per data dir)
#   KEYSTONE_VENV               $ROOT/.venv-keystone      the server's venv
#   KEYSTONE_CONSTRAINTS        $ROOT/../shared/constraints/upper-constraints-2026.1.txt
#   KEYSTONE_START_TIMEOUT      120                       seconds to wait for GET /v3
#
# `stop`, `status`, `env` and `url` read the port of the running server from the
# data dir, so only KEYSTONE_DATA_DIR (when not the default) must be repeated.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

KEYSTONE_VERSION="29.1.0"
GUNICORN_VERSION="25.2.0"

HOST="127.0.0.1"
DATA_DIR="${KEYSTONE_DATA_DIR:-$ROOT/.data/keystone}"
VENV="${KEYSTONE_VENV:-$ROOT/.venv-keystone}"
CONSTRAINTS="${KEYSTONE_CONSTRAINTS:-$ROOT/../shared/constraints/upper-constraints-2026.1.txt}"
START_TIMEOUT="${KEYSTONE_START_TIMEOUT:-120}"
STOP_TIMEOUT=15
REGION="RegionOne"

CONF_FILE="$DATA_DIR/keystone.conf"
DB_FILE="$DATA_DIR/keystone.db"
FERNET_DIR="$DATA_DIR/fernet-keys"
CREDENTIAL_DIR="$DATA_DIR/credential-keys"
PIDFILE="$DATA_DIR/gunicorn.pid"
LOGFILE="$DATA_DIR/keystone.log"
MANAGE_LOG="$DATA_DIR/keystone-manage.log"
RUNTIME_FILE="$DATA_DIR/runtime.env"   # settings of the running server
DB_STAMP="$DATA_DIR/.db-stamp"
BOOTSTRAP_STAMP="$DATA_DIR/.bootstrap-stamp"

ADMIN_PASSWORD="admin-secret"
# user:password:project:roles (comma-separated)
SEED_USERS=(
    "demo:demo-secret:demo:member"
    "alt_demo:alt-demo-secret:alt_demo:member"
    "zun:zun-secret:service:admin,service"
)
SEED_PROJECTS=(demo alt_demo service)
SEED_ROLES=(admin member reader service)

DEB_PACKAGES=(python3-venv curl jq)

log() { printf '[keystone] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ settings

# Settings for `start` come from the environment; the other commands read them
# from the running server's runtime file first.
load_settings() {
    local from_runtime="$1"
    PORT="" ZUN_URL="" TOKEN_EXPIRATION="" HASH_ROUNDS="" ADMIN_PROJECT=""
    if [[ "$from_runtime" == yes && -f "$RUNTIME_FILE" ]]; then
        # shellcheck disable=SC1090
        . "$RUNTIME_FILE"
        PORT="${KS_PORT:-}"
        TOKEN_EXPIRATION="${KS_TOKEN_EXPIRATION:-}" HASH_ROUNDS="${KS_HASH_ROUNDS:-}"
        ADMIN_PROJECT="${KS_ADMIN_PROJECT_NAME:-}"
    else
        ADMIN_PROJECT="${KEYSTONE_ADMIN_PROJECT_NAME:-}"
    fi
    [[ -n "$PORT" ]] || PORT="${KEYSTONE_PORT:-5000}"
    [[ -n "$ZUN_URL" ]] || ZUN_URL="${ZUN_ENDPOINT:-http://127.0.0.1:9517/v1}"
    [[ -n "$TOKEN_EXPIRATION" ]] || TOKEN_EXPIRATION="${KEYSTONE_TOKEN_EXPIRATION:-3600}"
    [[ -n "$HASH_ROUNDS" ]] || HASH_ROUNDS="${KEYSTONE_PASSWORD_HASH_ROUNDS:-4}"
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "KEYSTONE_PORT must be a number (got '$PORT')"
    [[ "$TOKEN_EXPIRATION" =~ ^[0-9]+$ ]] || die "KEYSTONE_TOKEN_EXPIRATION must be seconds (got '$TOKEN_EXPIRATION')"
    [[ "$HASH_ROUNDS" =~ ^[0-9]+$ ]] || die "KEYSTONE_PASSWORD_HASH_ROUNDS must be a number"
    BASE_URL="http://$HOST:$PORT"
    AUTH_URL="$BASE_URL/v3"
}

runtime_line() {
    # What the running server was started with (the Zun endpoint is not in it:
    # moving the endpoint needs no restart, only the seed).
    printf 'KS_PORT=%q\nKS_TOKEN_EXPIRATION=%q\nKS_HASH_ROUNDS=%q\nKS_ADMIN_PROJECT_NAME=%q\n' \
        "$PORT" "$TOKEN_EXPIRATION" "$HASH_ROUNDS" "$ADMIN_PROJECT"
}

# ------------------------------------------------------------------ install

ensure_debs() {
    local missing=() pkg
    for pkg in "${DEB_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root to install them)"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

python_for_venv() {
    if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

venv_ok() {
    [[ -x "$VENV/bin/python" && -x "$VENV/bin/gunicorn" && -x "$VENV/bin/keystone-manage" ]] || return 1
    [[ -f "$VENV/.keystone-stamp" && "$(cat "$VENV/.keystone-stamp")" == "$1" ]] || return 1
    [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("keystone"), m.version("gunicorn"))' 2>/dev/null)" \
        == "$KEYSTONE_VERSION $GUNICORN_VERSION" ]] || return 1
}

ensure_installed() {
    local python constraints_sha="none" stamp pip_c=()
    python="$(python_for_venv)"
    if [[ -f "$CONSTRAINTS" ]]; then
        constraints_sha="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
        pip_c=(-c "$CONSTRAINTS")
    else
        log "warning: constraints file $CONSTRAINTS not found; installing with the pins only"
    fi
    stamp="$("$python" --version 2>&1) | keystone==$KEYSTONE_VERSION gunicorn==$GUNICORN_VERSION | $constraints_sha"
    if venv_ok "$stamp"; then
        return 0
    fi
    ensure_debs
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV with $python"
        "$python" -m venv "$VENV"
    fi
    log "installing keystone==$KEYSTONE_VERSION gunicorn==$GUNICORN_VERSION into $VENV"
    # Packages built from source (testresources) need these in the venv first;
    # a fresh venv may not have them.
    "$VENV/bin/pip" install -q --disable-pip-version-check "${pip_c[@]}" \
        packaging wheel setuptools </dev/null
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "${pip_c[@]}" "keystone==$KEYSTONE_VERSION" "gunicorn==$GUNICORN_VERSION" </dev/null
    rm -f "$VENV/.keystone-stamp"
    printf '%s' "$stamp" >"$VENV/.keystone-stamp"
    venv_ok "$stamp" || die "install into $VENV did not give keystone $KEYSTONE_VERSION and gunicorn $GUNICORN_VERSION"
}

# ------------------------------------------------------------------ configure

write_config() {
    mkdir -p "$DATA_DIR"
    cat >"$CONF_FILE.tmp" <<EOF
# Written by scripts/keystone.sh; rewritten on every start.
[DEFAULT]
debug = false

[database]
connection = sqlite:///$DB_FILE

[token]
provider = fernet
expiration = $TOKEN_EXPIRATION

[fernet_tokens]
key_repository = $FERNET_DIR

[fernet_receipts]
key_repository = $FERNET_DIR

[credential]
key_repository = $CREDENTIAL_DIR

[identity]
password_hash_rounds = $HASH_ROUNDS

[cache]
enabled = true
backend = dogpile.cache.memory
EOF
    if [[ -n "$ADMIN_PROJECT" ]]; then
        printf '\n[resource]\nadmin_project_name = %s\nadmin_project_domain_name = Default\n' \
            "$ADMIN_PROJECT" >>"$CONF_FILE.tmp"
    fi
    mv "$CONF_FILE.tmp" "$CONF_FILE"
}

manage() {
    printf '\n$ keystone-manage %s\n' "$1" >>"$MANAGE_LOG"
    if ! "$VENV/bin/keystone-manage" --config-file "$CONF_FILE" "$@" </dev/null >>"$MANAGE_LOG" 2>&1; then
        tail -n 30 "$MANAGE_LOG" >&2 || true
        die "keystone-manage $1 failed (log: $MANAGE_LOG)"
    fi
}

prepare_state() {
    if [[ ! -f "$FERNET_DIR/0" ]]; then
        log "creating fernet keys in $FERNET_DIR"
        mkdir -p "$FERNET_DIR"; chmod 700 "$FERNET_DIR"
        manage fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    fi
    if [[ ! -f "$CREDENTIAL_DIR/0" ]]; then
        log "creating credential keys in $CREDENTIAL_DIR"
        mkdir -p "$CREDENTIAL_DIR"; chmod 700 "$CREDENTIAL_DIR"
        manage credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    fi
    local db_want="keystone==$KEYSTONE_VERSION $DB_FILE"
    if [[ ! -f "$DB_FILE" || ! -f "$DB_STAMP" || "$(cat "$DB_STAMP")" != "$db_want" ]]; then
        log "keystone-manage db_sync ($DB_FILE)"
        rm -f "$DB_STAMP" "$BOOTSTRAP_STAMP"
        manage db_sync
        printf '%s' "$db_want" >"$DB_STAMP"
    fi
    # bootstrap is idempotent (it also moves the identity endpoints to a new
    # port) but takes a few seconds: run it only when what it sets changed.
    local boot_want="$db_want $AUTH_URL $ADMIN_PASSWORD $REGION"
    if [[ ! -f "$BOOTSTRAP_STAMP" || "$(cat "$BOOTSTRAP_STAMP")" != "$boot_want" ]]; then
        log "keystone-manage bootstrap (admin, $REGION, $AUTH_URL)"
        manage bootstrap \
            --bootstrap-username admin \
            --bootstrap-password "$ADMIN_PASSWORD" \
            --bootstrap-project-name admin \
            --bootstrap-role-name admin \
            --bootstrap-service-name keystone \
            --bootstrap-region-id "$REGION" \
            --bootstrap-admin-url "$AUTH_URL" \
            --bootstrap-internal-url "$AUTH_URL" \
            --bootstrap-public-url "$AUTH_URL"
        printf '%s' "$boot_want" >"$BOOTSTRAP_STAMP"
    fi
}

# ------------------------------------------------------------------ process

pid_alive() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(tr -d ' \n' <"$PIDFILE" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

answers() {
    curl -fsS -o /dev/null --max-time 5 "$AUTH_URL" 2>/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

stop_server() {
    local pid i
    if ! pid_alive; then
        rm -f "$PIDFILE"
        return 0
    fi
    pid="$(tr -d ' \n' <"$PIDFILE")"
    log "stopping gunicorn (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "gunicorn did not stop in ${STOP_TIMEOUT}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$PIDFILE" "$RUNTIME_FILE"
}

start_server() {
    if port_in_use; then
        die "$HOST:$PORT is already in use by another process (set KEYSTONE_PORT)"
    fi
    rm -f "$PIDFILE"
    log "starting gunicorn on $HOST:$PORT (log: $LOGFILE)"
    # One synchronous worker: SQLite takes one writer at a time. The worker
    # timeout is generous because a slow shared machine must not get a worker
    # killed in the middle of a request.
    OS_KEYSTONE_CONFIG_DIR="$DATA_DIR" OS_KEYSTONE_CONFIG_FILES=keystone.conf \
        "$VENV/bin/gunicorn" \
        --bind "$HOST:$PORT" \
        --workers 1 --worker-class sync \
        --timeout 120 --graceful-timeout 10 \
        --chdir "$DATA_DIR" \
        --pid "$PIDFILE" --no-control-socket \
        --pythonpath "$ROOT/scripts" \
        --error-logfile "$LOGFILE" --access-logfile "$LOGFILE" --capture-output \
        --daemon \
        "keystone_wsgi:application" \
        </dev/null >>"$LOGFILE" 2>&1 \
        || die "gunicorn failed to start (log: $LOGFILE)"
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if answers; then
            runtime_line >"$RUNTIME_FILE"
            return 0
        fi
        # the pidfile appears right after the daemon forks; give it a moment
        if [[ -f "$PIDFILE" ]] && ! pid_alive; then
            tail -n 40 "$LOGFILE" >&2 || true
            die "gunicorn exited during startup (log: $LOGFILE)"
        fi
        sleep 0.2
    done
    tail -n 40 "$LOGFILE" >&2 || true
    stop_server
    die "keystone did not answer GET $AUTH_URL within ${START_TIMEOUT}s (log: $LOGFILE)"
}

# ------------------------------------------------------------------ seed (REST)

ADMIN_TOKEN=""
TMP_DIR=""

cleanup_tmp() { [[ -z "$TMP_DIR" ]] || rm -rf "$TMP_DIR"; }

# issue_token USER PASSWORD PROJECT -> prints the token; returns 1 on 401
issue_token() {
    local body code
    body="$(jq -nc --arg u "$1" --arg p "$2" --arg proj "$3" '{auth: {
        identity: {methods: ["password"], password: {user: {name: $u, password: $p, domain: {id: "default"}}}},
        scope: {project: {name: $proj, domain: {id: "default"}}}}}')"
    code="$(curl -sS -o "$TMP_DIR/auth.body" -D "$TMP_DIR/auth.headers" -w '%{http_code}' --max-time 30 \
        -H 'Content-Type: application/json' --data "$body" "$AUTH_URL/auth/tokens")"
    [[ "$code" == 201 ]] || return 1
    local token
    token="$(grep -i '^x-subject-token:' "$TMP_DIR/auth.headers" | head -n1 | cut -d: -f2- | tr -d ' \r\n')"
    [[ -n "$token" ]] || return 1
    printf '%s' "$token"
}

# api METHOD PATH [JSON] -> prints the body; dies unless 2xx
api() {
    local method="$1" path="$2" data="${3:-}" code args=()
    [[ -z "$data" ]] || args=(-H 'Content-Type: application/json' --data "$data")
    local attempt renewed=0
    for attempt in 1 2 3 4; do
        code="$(curl -sS -o "$TMP_DIR/api.body" -w '%{http_code}' --max-time 30 -X "$method" \
            -H "X-Auth-Token: $ADMIN_TOKEN" "${args[@]}" "$AUTH_URL$path")" || true
        # 401 once: the seed's token expired (a test may run Keystone with
        # tokens of a few seconds); log in again. (Inside $(...) the new
        # token only serves this call; the next one renews its own.)
        if [[ "$code" == 401 ]] && ((!renewed)); then
            renewed=1
            log "$method $path: the admin token expired; logging in again"
            ADMIN_TOKEN="$(issue_token admin "$ADMIN_PASSWORD" admin)" || break
            continue
        fi
        # 000: no answer at all (connection refused or dropped, e.g. while
        # gunicorn replaces a dead worker); anything else is Keystone's answer.
        [[ "$code" == 000 ]] || break
        log "$method $path got no answer (attempt $attempt); retrying"
        sleep "$attempt"
    done
    if [[ "$code" != 2* ]]; then
        cat "$TMP_DIR/api.body" >&2 || true
        log "last lines of the server log ($LOGFILE):"
        tail -n 40 "$LOGFILE" >&2 || true
        die "$method $path answered $code"
    fi
    cat "$TMP_DIR/api.body"
}

ensure_named() { # COLLECTION NAME CREATE_JSON [EXTRA_QUERY] -> prints id
    local coll="$1" name="$2" create="$3" query="${4:-}" id
    id="$(api GET "/$coll?name=$name$query" | jq -r --arg c "$coll" '.[$c][0].id // empty')"
    if [[ -z "$id" ]]; then
        log "creating ${coll%s} $name"
        id="$(api POST "/$coll" "$create" | jq -r '.[keys[0]].id')"
    fi
    printf '%s' "$id"
}

seed() {
    TMP_DIR="$(mktemp -d)"
    trap cleanup_tmp EXIT
    ADMIN_TOKEN="$(issue_token admin "$ADMIN_PASSWORD" admin)" \
        || die "cannot log in as admin (did the bootstrap run? see $MANAGE_LOG)"

    api GET /domains/default >/dev/null

    declare -A project_id role_id
    local name
    for name in "${SEED_PROJECTS[@]}"; do
        project_id[$name]="$(ensure_named projects "$name" \
            "$(jq -nc --arg n "$name" '{project: {name: $n, domain_id: "default", enabled: true, description: "zun-rs test project"}}')" \
            "&domain_id=default")"
    done
    project_id[admin]="$(ensure_named projects admin '{}' "&domain_id=default")"
    for name in "${SEED_ROLES[@]}"; do
        role_id[$name]="$(ensure_named roles "$name" "$(jq -nc --arg n "$name" '{role: {name: $n}}')")"
    done

    local entry user pass proj roles uid role
    for entry in "${SEED_USERS[@]}"; do
        IFS=: read -r user pass proj roles <<<"$entry"
        uid="$(api GET "/users?name=$user&domain_id=default" | jq -r '.users[0].id // empty')"
        if [[ -z "$uid" ]]; then
            log "creating user $user"
            uid="$(api POST /users "$(jq -nc --arg n "$user" --arg p "$pass" --arg pr "${project_id[$proj]}" \
                '{user: {name: $n, password: $p, domain_id: "default", default_project_id: $pr, enabled: true}}')" \
                | jq -r '.user.id')"
        fi
        IFS=, read -r -a role_list <<<"$roles"
        for role in "${role_list[@]}"; do
            api PUT "/projects/${project_id[$proj]}/users/$uid/roles/${role_id[$role]}" >/dev/null
        done
        # An existing user whose password or enabled flag was changed gets the
        # documented state back (a password change revokes that user's tokens, so
        # only do it when a login fails).
        if ! issue_token "$user" "$pass" "$proj" >/dev/null; then
            log "resetting password of user $user"
            api PATCH "/users/$uid" "$(jq -nc --arg p "$pass" '{user: {password: $p, enabled: true}}')" >/dev/null
            issue_token "$user" "$pass" "$proj" >/dev/null || die "user $user cannot log in after the reset"
        fi
    done

    # The container service and its endpoints.
    local sid iface eid url found
    sid="$(api GET "/services?type=container" | jq -r '[.services[] | select(.name == "zun")][0].id // empty')"
    if [[ -z "$sid" ]]; then
        log "creating service zun (container)"
        sid="$(api POST /services '{"service": {"name": "zun", "type": "container", "enabled": true, "description": "Container Service"}}' \
            | jq -r '.service.id')"
    fi
    for iface in public internal admin; do
        found="$(api GET "/endpoints?service_id=$sid&interface=$iface&region_id=$REGION")"
        eid="$(jq -r '.endpoints[0].id // empty' <<<"$found")"
        url="$(jq -r '.endpoints[0].url // empty' <<<"$found")"
        if [[ -z "$eid" ]]; then
            log "creating $iface container endpoint $ZUN_URL"
            api POST /endpoints "$(jq -nc --arg s "$sid" --arg i "$iface" --arg u "$ZUN_URL" --arg r "$REGION" \
                '{endpoint: {service_id: $s, interface: $i, url: $u, region_id: $r, enabled: true}}')" >/dev/null
        elif [[ "$url" != "$ZUN_URL" ]]; then
            log "moving $iface container endpoint to $ZUN_URL"
            api PATCH "/endpoints/$eid" "$(jq -nc --arg u "$ZUN_URL" '{endpoint: {url: $u, enabled: true}}')" >/dev/null
        fi
    done
}

# ------------------------------------------------------------------ commands

cmd_start() {
    local t0=$SECONDS
    load_settings no
    ensure_installed
    if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then ensure_debs; fi
    mkdir -p "$DATA_DIR"
    if pid_alive; then
        if [[ -f "$RUNTIME_FILE" && "$(cat "$RUNTIME_FILE")" == "$(runtime_line)" ]] && answers; then
            log "already running on $AUTH_URL (pid $(cat "$PIDFILE"))"
            seed
            echo "$AUTH_URL"
            return 0
        fi
        log "settings changed (or server not answering): restarting"
        stop_server
    fi
    if port_in_use; then
        die "$HOST:$PORT is already in use by another process (set KEYSTONE_PORT)"
    fi
    write_config
    prepare_state
    start_server
    seed
    log "ready on $AUTH_URL in $((SECONDS - t0))s"
    echo "$AUTH_URL"
}

cmd_stop() {
    load_settings yes
    stop_server
}

cmd_status() {
    load_settings yes
    if pid_alive && answers; then
        echo "$AUTH_URL"
        return 0
    fi
    log "not running"
    return 1
}

cmd_env() {
    local user="${1:-admin}" pass project
    case "$user" in
        admin) pass="$ADMIN_PASSWORD"; project="admin" ;;
        *)
            local entry u p pr found=""
            for entry in "${SEED_USERS[@]}"; do
                IFS=: read -r u p pr _ <<<"$entry"
                if [[ "$u" == "$user" ]]; then pass="$p"; project="$pr"; found=1; fi
            done
            [[ -n "$found" ]] || die "unknown user '$user' (admin, demo, alt_demo or zun)"
            ;;
    esac
    load_settings yes
    cat <<EOF
unset OS_CLOUD OS_TOKEN OS_ENDPOINT OS_URL
export OS_AUTH_TYPE=password
export OS_AUTH_URL=$AUTH_URL
export OS_USERNAME=$user
export OS_PASSWORD=$pass
export OS_PROJECT_NAME=$project
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=$REGION
export OS_INTERFACE=public
EOF
}

usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    env) cmd_env "${2:-admin}" ;;
    url) load_settings yes; echo "$AUTH_URL" ;;
    *) usage ;;
esac

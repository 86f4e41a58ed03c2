"""Identity, tenancy, policy and quotas against a REAL Keystone.

One Keystone (scripts/keystone.sh through keystone.py) and one `zund all-in-one`
in `[identity] mode = "keystone"` serve the whole module; a few tests start a
short-lived extra zund (token cache of 1 s, `tokens` mode). Users, as seeded:
demo and alt_demo (role member, each in its own project) and admin (role admin).

Expected values come from /work/shared/reference/zun-api.md: §0 (context
headers, public routes, keystonemiddleware 401s), §3 (error body), §4
(containers: every route and action), §7.5-7.6 and §10 (quotas), §8 (default
policies). Tenancy is upstream's: a container is looked up within the caller's
project (admins look across projects), so another project's container is
"not found" (404) whatever the route, before the action itself is considered.

The tests run in file order: the ones that stop or reconfigure Keystone, and
the quota test (which empties demo's project), come last.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from conftest import (
    CLI_TIMEOUT_S,
    DOCKER_SOCKET,
    HTTP_TIMEOUT_S,
    IMAGE,
    MAX_VERSION,
    OPENSTACK,
    ROOT,
    _OUR_HOSTS,
    ContainerWaits,
    Zun,
    ZundProcess,
    free_port,
)
from keystone import KeystoneServer, Token

V = MAX_VERSION
LOOP = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done"]
ADMIN_ONLY_FIELDS = {"host", "image_pull_policy", "privileged", "runtime"}

# keystonemiddleware's own 401 (§0, §3.1: outside Zun's error middleware).
UNAUTHORIZED_BODY = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}
# §10 / zun/conf/quota.py
DEFAULT_QUOTAS = {"containers": 40, "memory": 51200, "cpu": 20, "disk": 100}
QUOTA_RESOURCES = set(DEFAULT_QUOTAS)

# The server polls the policy file and the token file for changes (mtime);
# the brief allows about 1-2 s.
RELOAD_WAIT_S = 2.5
RELOAD_DEADLINE_S = 5.0

# Keystone's state (SQLite db, fernet keys): kept between runs so only the
# first run pays for db_sync; its own directory so other modules' Keystone
# (.data/keystone-test) is never restarted under them.
KEYSTONE_DATA_DIR = Path(os.environ.get("ZUN_TEST_KEYSTONE_DATA_DIR")
                         or ROOT / ".data" / "keystone-acceptance-identity")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


def policy_detail(rule: str) -> str:
    return f"Policy doesn't allow {rule} to be performed."


# --------------------------------------------------------------------------- assertions


def describe(r: requests.Response) -> str:
    req = r.request
    return (f"{req.method} {req.url} -> {r.status_code} "
            f"{dict((k, v) for k, v in r.headers.items() if k.lower() in ('content-type', 'www-authenticate'))} "
            f"{r.text[:600]}")


def assert_error(r, status: int, code: str | None = None, detail: str | None = None):
    """§3.1: Zun's error body, exactly one error with upstream's keys."""
    assert r.status_code == status, f"expected {status}: {describe(r)}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    body = r.json()
    assert set(body) == {"errors"}, describe(r)
    assert isinstance(body["errors"], list) and len(body["errors"]) == 1, describe(r)
    err = body["errors"][0]
    assert set(err) == {"request_id", "code", "status", "title", "detail", "links"}, describe(r)
    assert err["request_id"] == "", describe(r)
    assert err["status"] == status, describe(r)
    assert err["links"] == [], describe(r)
    assert isinstance(err["code"], str) and err["code"].startswith("container."), describe(r)
    assert isinstance(err["title"], str) and isinstance(err["detail"], str), describe(r)
    if code is not None:
        assert err["code"] == f"container.{code}", describe(r)
    if detail is not None:
        assert err["detail"] == detail, describe(r)
    return err


def assert_unauthorized(r, keystone: bool = True):
    """keystonemiddleware's 401: its own body and a `Keystone uri=` challenge."""
    assert r.status_code == 401, f"expected 401: {describe(r)}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    assert r.json() == UNAUTHORIZED_BODY, describe(r)
    if keystone:
        assert r.headers.get("WWW-Authenticate", "").startswith("Keystone uri="), describe(r)


def assert_policy_denied(r, rule: str):
    assert_error(r, 403, "policy-not-authorized", detail=policy_detail(rule))


def is_container_not_found(r) -> bool:
    if r.status_code != 404:
        return False
    try:
        return r.json()["errors"][0]["code"] == "container.container-not-found"
    except (ValueError, KeyError, IndexError, TypeError):
        return False


# --------------------------------------------------------------------------- servers


def keystone_toml(ks: KeystoneServer, cache_seconds: int | None = None) -> str:
    creds = ks.service_credentials()
    text = (
        '[identity]\nmode = "keystone"\n'
        "[identity.keystone]\n"
        f'auth_url = "{ks.auth_url}"\n'
        f'username = "{creds.username}"\n'
        f'password = "{creds.password}"\n'
        f'project_name = "{creds.project_name}"\n'
        f'user_domain_name = "{creds.user_domain_name}"\n'
        f'project_domain_name = "{creds.project_domain_name}"\n'
    )
    if cache_seconds is not None:
        text += f"token_cache_seconds = {cache_seconds}\n"
    return text


class ConfiguredZun(Zun):
    """`zund all-in-one --config FILE`: identity (and policy) from the TOML file."""

    def __init__(self, port: int, base_dir: Path, log_dir: Path, host_name: str, config_text: str):
        super().__init__(port=port, data_dir=base_dir / "store", log_dir=log_dir,
                         host_name=host_name, project_id="", user_id="", roles="")
        self.base_dir = base_dir
        self.config_path = base_dir / "zund.toml"
        self.config_text = config_text

    def start(self) -> "ConfiguredZun":
        self.config_path.write_text(self.config_text)
        args = [
            "all-in-one",
            "--config", str(self.config_path),
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            "--docker-socket", DOCKER_SOCKET,
            "--host-name", self.host_name,
        ]
        p = ZundProcess("all-in-one", args, self.log_dir / f"zund-{self.host_name}.log")
        self.processes.append(p)
        p.start()
        self.wait_ready()
        return self


def make_configured(tmp_path_factory, log_dir, prefix: str, config_text: str,
                    port: int | None = None) -> ConfiguredZun:
    host = f"{prefix}-{uuidlib.uuid4().hex[:8]}"
    _OUR_HOSTS.add(host)
    return ConfiguredZun(port=port or free_port(), base_dir=tmp_path_factory.mktemp(f"cfg-{host}"),
                         log_dir=log_dir, host_name=host, config_text=config_text)


class Caller(ContainerWaits):
    """Requests to one zund carrying one X-Auth-Token (None: no header)."""

    def __init__(self, zun: Zun, token: str | None, label: str = ""):
        self.zun = zun
        self.token = token
        self.label = label

    def http(self, method: str, path: str, version: str | None = V, json=None, params=None,
             headers: dict | None = None, session: requests.Session | None = None,
             timeout: float = HTTP_TIMEOUT_S) -> requests.Response:
        hdrs = {"Accept": "application/json"}
        if version is not None:
            hdrs["OpenStack-API-Version"] = f"container {version}"
        if self.token is not None:
            hdrs["X-Auth-Token"] = self.token
        if headers:
            hdrs.update(headers)
        url = path if path.startswith("http") else self.zun.base_url + path
        return (session or self.zun.session).request(method, url, json=json, params=params,
                                                     headers=hdrs, timeout=timeout)

    def get(self, ident: str, **kw) -> requests.Response:
        return self.http("GET", f"/v1/containers/{ident}", **kw)

    def create(self, body: dict, run: bool = False) -> dict:
        body = dict(body)
        body.setdefault("image", IMAGE)
        r = self.http("POST", "/v1/containers", json=body, params={"run": "true"} if run else None)
        assert r.status_code == 202, f"{self.label} create: {describe(r)}"
        view = r.json()
        view["create_request_id"] = r.headers.get("x-openstack-request-id")
        return view

    def list(self, **params) -> list[dict]:
        r = self.http("GET", "/v1/containers", params=params or None)
        assert r.status_code == 200, f"{self.label} list: {describe(r)}"
        return r.json()["containers"]


    def delete_all(self) -> None:
        """Deletes every container of this caller's project (stopping running ones)."""
        rows = self.list()
        for row in rows:
            if row["status"] in {"Creating", "Deleting", "Restarting", "Rebuilding"}:
                self.wait_status(row["uuid"], {"Created", "Running", "Stopped", "Error", "Paused"})
            if self.get(row["uuid"]).json().get("status") == "Paused":
                self.http("POST", f"/v1/containers/{row['uuid']}/unpause")
                self.wait_status(row["uuid"], "Running")
            r = self.http("DELETE", f"/v1/containers/{row['uuid']}", params={"stop": "true"})
            assert r.status_code in (204, 404), f"cleanup: {describe(r)}"
        for row in rows:
            self.wait_gone(row["uuid"])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def zund_port() -> int:
    """The keystone-mode zund's port, known before Keystone starts so the
    catalog's `container` endpoints can point at it."""
    return free_port()


@pytest.fixture(scope="module")
def keystone(engine_cleanup, zund_port, log_dir):
    with KeystoneServer.reusing(KEYSTONE_DATA_DIR,
                                zun_endpoint=f"http://127.0.0.1:{zund_port}/v1",
                                log_file=log_dir / "keystone-script.log") as ks:
        yield ks


@pytest.fixture(scope="module")
def tokens(keystone) -> dict[str, Token]:
    """One project-scoped token per user for the module."""
    return {user: keystone.issue_token(user) for user in ("demo", "alt_demo", "admin")}


@pytest.fixture(scope="module")
def zk(keystone, zund_port, tmp_path_factory, log_dir):
    """The module's keystone-mode zund; its policy file does not exist at first."""
    base = tmp_path_factory.mktemp("zk-policy")
    policy_file = base / "policy.yaml"
    audit_log = base / "audit.log"
    text = (keystone_toml(keystone) + f'[policy]\nfile = "{policy_file}"\n'
            + f'[api]\naudit_log = "{audit_log}"\n')
    z = make_configured(tmp_path_factory, log_dir, "ks", text, port=zund_port)
    z.policy_file = policy_file
    z.audit_log = audit_log
    try:
        z.start()
        yield z
    finally:
        z.stop()


@pytest.fixture(scope="module")
def demo(zk, tokens) -> Caller:
    return Caller(zk, tokens["demo"].id, "demo")


@pytest.fixture(scope="module")
def alt(zk, tokens) -> Caller:
    return Caller(zk, tokens["alt_demo"].id, "alt_demo")


@pytest.fixture(scope="module")
def admin(zk, tokens) -> Caller:
    return Caller(zk, tokens["admin"].id, "admin")


@pytest.fixture(scope="module")
def demo_running(demo) -> dict:
    """A demo container running the tick loop (never stopped by these tests)."""
    view = demo.create({"name": unique("demo-run"), "command": LOOP}, run=True)
    demo.wait_status(view["uuid"], "Running")
    return view


@pytest.fixture(scope="module")
def demo_created(demo) -> dict:
    """A demo container that is only created (never started by these tests)."""
    view = demo.create({"name": unique("demo-new"), "command": ["/bin/true"]})
    demo.wait_status(view["uuid"], "Created")
    return view


@pytest.fixture(scope="module")
def alt_created(alt) -> dict:
    view = alt.create({"name": unique("alt-new"), "command": ["/bin/true"]})
    alt.wait_status(view["uuid"], "Created")
    return view


# ============================================================== §0 authentication


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/"])
def test_public_routes_need_no_token(zk, path):
    r = Caller(zk, None).http("GET", path, version=None)
    assert r.status_code == 200, describe(r)
    assert r.json(), describe(r)
    # acl_public_routes skip authentication altogether: a bad token is not looked at.
    r = Caller(zk, "not-a-token").http("GET", path, version=None)
    assert r.status_code == 200, describe(r)


PROTECTED = [
    ("GET", "/v1/containers"),
    ("POST", "/v1/containers"),
    ("GET", f"/v1/containers/{uuidlib.uuid4()}"),
    ("DELETE", f"/v1/containers/{uuidlib.uuid4()}"),
    ("POST", f"/v1/containers/{uuidlib.uuid4()}/start"),
    ("GET", "/containers"),
    ("GET", "/v1/quotas/some-project"),
    ("GET", "/v1/quota_classes/default"),
    ("GET", "/v1/services"),
    ("GET", "/v1/hosts"),
    ("GET", "/v1/no-such-resource"),
]


@pytest.mark.parametrize("method,path", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_missing_token_is_401(zk, method, path):
    body = {"image": IMAGE} if method == "POST" else None
    r = Caller(zk, None).http(method, path, json=body)
    assert_unauthorized(r)


@pytest.mark.parametrize("token", [
    "not-a-token",
    "gAAAAABn" + "A" * 180,  # shaped like a fernet token
    "",
])
def test_invalid_token_is_401(zk, token):
    r = Caller(zk, token).http("GET", "/v1/containers")
    assert_unauthorized(r)
    r = Caller(zk, token).http("POST", "/v1/containers", json={"image": IMAGE})
    assert_unauthorized(r)


def test_valid_token_is_accepted(demo, alt, admin):
    for caller in (demo, alt, admin):
        r = caller.http("GET", "/v1/containers")
        assert r.status_code == 200, f"{caller.label}: {describe(r)}"
        assert set(r.json()) == {"containers", "next"}, describe(r)


# ============================================================== §0 context, §4.3 view


def test_containers_carry_the_token_identity(demo, tokens, demo_running, demo_created):
    for view in (demo_running, demo_created):
        assert view["project_id"] == tokens["demo"].project_id, view
        assert view["user_id"] == tokens["demo"].user_id, view
        r = demo.get(view["uuid"])
        assert r.status_code == 200, describe(r)
        shown = r.json()
        assert shown["project_id"] == tokens["demo"].project_id
        assert shown["user_id"] == tokens["demo"].user_id
    # The actions log records who acted (§4.8).
    r = demo.http("GET", f"/v1/containers/{demo_running['uuid']}/container_actions")
    assert r.status_code == 200, describe(r)
    create = [a for a in r.json()["containerActions"] if a["action"] == "create"]
    assert create, r.json()
    assert create[0]["project_id"] == tokens["demo"].project_id, create
    assert create[0]["user_id"] == tokens["demo"].user_id, create


def test_admin_only_fields_hidden_from_members(demo, admin, zk, demo_running):
    uuid = demo_running["uuid"]
    # the create response too
    assert not (ADMIN_ONLY_FIELDS & set(demo_running)), sorted(demo_running)
    r = demo.get(uuid)
    assert r.status_code == 200, describe(r)
    assert not (ADMIN_ONLY_FIELDS & set(r.json())), sorted(r.json())
    rows = [c for c in demo.list() if c["uuid"] == uuid]
    assert len(rows) == 1
    assert not (ADMIN_ONLY_FIELDS & set(rows[0])), sorted(rows[0])

    r = admin.get(uuid)
    assert r.status_code == 200, describe(r)
    view = r.json()
    assert ADMIN_ONLY_FIELDS <= set(view), sorted(view)
    assert view["host"] == zk.host_name, view
    rows = [c for c in admin.list(all_projects="1") if c["uuid"] == uuid]
    assert len(rows) == 1
    assert ADMIN_ONLY_FIELDS <= set(rows[0]), sorted(rows[0])


# ============================================================== §2 lists are per project


def test_lists_show_only_the_callers_project(demo, alt, admin, tokens, demo_running, demo_created,
                                            alt_created):
    demo_pid = tokens["demo"].project_id
    alt_pid = tokens["alt_demo"].project_id
    demo_rows = demo.list()
    assert {demo_running["uuid"], demo_created["uuid"]} <= {c["uuid"] for c in demo_rows}
    assert all(c["project_id"] == demo_pid for c in demo_rows), demo_rows
    alt_rows = alt.list()
    assert alt_created["uuid"] in {c["uuid"] for c in alt_rows}
    assert all(c["project_id"] == alt_pid for c in alt_rows), alt_rows

    # Filters cannot widen the scope.
    assert alt.list(project_id=demo_pid) == []
    assert alt.list(name=demo_running["name"]) == []
    assert [c["uuid"] for c in demo.list(name=demo_running["name"])] == [demo_running["uuid"]]

    # An admin without all_projects sees its own project only.
    admin_rows = admin.list()
    assert all(c["project_id"] == tokens["admin"].project_id for c in admin_rows), admin_rows


@pytest.mark.parametrize("value", ["1", "true", "True"])
def test_all_projects_list_is_admin_only(demo, alt, value):
    for caller in (demo, alt):
        r = caller.http("GET", "/v1/containers", params={"all_projects": value})
        assert_policy_denied(r, "container:get_all_all_projects")


def test_admin_all_projects_list_shows_every_project(admin, tokens, demo_running, demo_created,
                                                     alt_created):
    rows = admin.list(all_projects="1")
    by_uuid = {c["uuid"]: c for c in rows}
    assert {demo_running["uuid"], demo_created["uuid"], alt_created["uuid"]} <= set(by_uuid)
    assert by_uuid[demo_running["uuid"]]["project_id"] == tokens["demo"].project_id
    assert by_uuid[alt_created["uuid"]]["project_id"] == tokens["alt_demo"].project_id
    projects = {c["project_id"] for c in rows}
    assert {tokens["demo"].project_id, tokens["alt_demo"].project_id} <= projects


def test_get_one_all_projects_is_admin_only(demo, admin, demo_running):
    uuid = demo_running["uuid"]
    r = demo.get(uuid, params={"all_projects": "1"})
    assert_policy_denied(r, "container:get_one_all_projects")
    r = admin.get(uuid, params={"all_projects": "1"})
    assert r.status_code == 200, describe(r)
    assert r.json()["uuid"] == uuid


def test_delete_all_projects_is_admin_only(demo, demo_running):
    r = demo.http("DELETE", f"/v1/containers/{demo_running['uuid']}", params={"all_projects": "1"})
    assert_policy_denied(r, "container:delete_all_projects")


# ============================================================== §4.1 other project's container = 404


def _tar_b64() -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("acceptance.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buf.getvalue()).decode()


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    suffix: str  # after /v1/containers/{ident}; "{request_id}" is filled in
    version: str = V
    params: dict | None = None
    body: dict | None = None
    # Which demo container the probe targets: chosen so that the owner's own
    # request (the control) cannot change it: e.g. `stop` on a Created one is
    # a 409 for the owner.
    target: str = "running"
    # Also send the request as the owner and require it NOT to be a 404
    # container-not-found (so a server answering 404 to everyone fails).
    owner_control: bool = True


ROUTES = [
    Route("show", "GET", ""),
    Route("update", "PATCH", "", body={}),
    Route("delete", "DELETE", ""),  # Running: a 409 for the owner
    Route("start", "POST", "/start"),  # Running: 409
    Route("stop", "POST", "/stop", target="created"),  # Created: 409
    Route("reboot", "POST", "/reboot", owner_control=False),  # the owner's reboot is real
    Route("rebuild", "POST", "/rebuild", owner_control=False),
    Route("pause", "POST", "/pause", target="created"),
    Route("unpause", "POST", "/unpause"),  # Running: 409
    Route("kill", "POST", "/kill", target="created"),
    Route("logs", "GET", "/logs"),
    Route("rename", "POST", "/rename", version="1.12", params={"name": "SAME"}),  # same name: 409
    Route("container_actions", "GET", "/container_actions"),
    Route("container_action_show", "GET", "/container_actions/{request_id}"),
    Route("execute", "POST", "/execute", params={"command": "true"}),
    Route("execute_resize", "POST", "/execute_resize",
          params={"exec_id": "a" * 64, "h": "10", "w": "10"}),
    Route("attach", "GET", "/attach"),
    Route("resize", "POST", "/resize", params={"h": "10", "w": "10"}),
    Route("resize_container", "POST", "/resize_container", body={"memory": 512}),
    Route("top", "GET", "/top"),
    Route("stats", "GET", "/stats"),
    Route("get_archive", "GET", "/get_archive", params={"path": "/etc/hostname"}),
    Route("put_archive", "POST", "/put_archive", params={"path": "/tmp"},
          body={"data": _tar_b64()}),
    Route("commit", "POST", "/commit", params={"repository": "acceptance-never"},
          target="created"),  # Created: 409
    Route("add_security_group", "POST", "/add_security_group", version="1.14",
          params={"name": "default"}),
    Route("remove_security_group", "POST", "/remove_security_group", version="1.14",
          params={"name": "default"}),
    Route("network_attach", "POST", "/network_attach", params={"network": "no-such-net"}),
    Route("network_detach", "POST", "/network_detach", params={"network": "no-such-net"}),
    Route("network_list", "GET", "/network_list"),
]


@pytest.mark.parametrize("kind", ["uuid", "name"])
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_other_projects_container_is_not_found(demo, alt, demo_running, demo_created, route, kind):
    target = demo_running if route.target == "running" else demo_created
    ident = target[kind]
    suffix = route.suffix.replace("{request_id}", target["create_request_id"] or "req-missing")
    params = dict(route.params or {})
    if params.get("name") == "SAME":
        params["name"] = target["name"]
    path = f"/v1/containers/{ident}{suffix}"

    r = alt.http(route.method, path, version=route.version, params=params or None, json=route.body)
    assert_error(r, 404, "container-not-found", detail=f"Container {ident} could not be found.")

    if route.owner_control:
        r = demo.http(route.method, path, version=route.version, params=params or None,
                      json=route.body)
        assert not is_container_not_found(r), f"the owner gets not-found too: {describe(r)}"
        assert r.status_code not in (401, 403), f"the owner is refused: {describe(r)}"


def test_probes_left_demo_containers_alone(demo, demo_running, demo_created):
    """Nothing alt_demo sent changed demo's containers."""
    view = demo.wait_status(demo_running["uuid"], "Running")
    assert view["name"] == demo_running["name"]
    view = demo.get(demo_created["uuid"]).json()
    assert view["status"] == "Created" and view["name"] == demo_created["name"], view


def test_other_projects_container_is_not_found_even_for_the_same_user_name(alt, demo_running):
    """A demo container's name is free for alt_demo: the lookup is per project."""
    view = alt.create({"name": demo_running["name"], "command": ["/bin/true"]})
    try:
        r = alt.get(demo_running["name"])
        assert r.status_code == 200, describe(r)
        assert r.json()["uuid"] == view["uuid"]
    finally:
        alt.wait_status(view["uuid"], {"Created", "Error"})
        r = alt.http("DELETE", f"/v1/containers/{view['uuid']}")
        assert r.status_code == 204, describe(r)
        alt.wait_gone(view["uuid"])


def test_admin_acts_across_projects(admin, demo_running, alt_created):
    for ident in (demo_running["uuid"], demo_running["name"]):
        r = admin.get(ident)
        assert r.status_code == 200, describe(r)
        assert r.json()["uuid"] == demo_running["uuid"]
        r = admin.http("GET", f"/v1/containers/{ident}/logs")
        assert r.status_code == 200, describe(r)
        assert isinstance(r.json(), str)
        r = admin.http("GET", f"/v1/containers/{ident}/container_actions")
        assert r.status_code == 200, describe(r)
        assert any(a["action"] == "create" for a in r.json()["containerActions"]), r.json()
    rid = demo_running["create_request_id"]
    r = admin.http("GET", f"/v1/containers/{demo_running['uuid']}/container_actions/{rid}")
    assert r.status_code == 200, describe(r)
    assert r.json()["action"] == "create"
    r = admin.get(alt_created["uuid"])
    assert r.status_code == 200, describe(r)


def test_owner_uses_every_action_through_keystone(demo):
    """The positive control of the 404s: the owner's lifecycle works with a Keystone token."""
    view = demo.create({"name": unique("life"), "command": LOOP}, run=True)
    uuid = view["uuid"]
    demo.wait_status(uuid, "Running")
    for action, params, after in [
        ("stop", {"timeout": "5"}, "Stopped"),
        ("start", None, "Running"),
        ("pause", None, "Paused"),
        ("unpause", None, "Running"),
        ("reboot", {"timeout": "5"}, "Running"),
        ("kill", {"signal": "SIGKILL"}, "Stopped"),
    ]:
        r = demo.http("POST", f"/v1/containers/{uuid}/{action}", params=params)
        assert r.status_code == 202, f"{action}: {describe(r)}"
        demo.wait_status(uuid, after)
    r = demo.http("GET", f"/v1/containers/{uuid}/logs")
    assert r.status_code == 200, describe(r)
    new_name = unique("life-patched")
    r = demo.http("PATCH", f"/v1/containers/{uuid}", json={"name": new_name})
    assert r.status_code == 200, describe(r)
    assert r.json()["name"] == new_name
    renamed = unique("life-renamed")
    r = demo.http("POST", f"/v1/containers/{new_name}/rename", version="1.12",
                  params={"name": renamed})
    assert r.status_code == 200, describe(r)
    assert r.json()["name"] == renamed
    r = demo.http("GET", f"/v1/containers/{renamed}/container_actions")
    assert r.status_code == 200, describe(r)
    actions = {a["action"] for a in r.json()["containerActions"]}
    assert {"create", "stop", "start", "pause", "unpause", "reboot", "kill"} <= actions, actions
    r = demo.http("GET", f"/v1/containers/{uuid}/container_actions/{view['create_request_id']}")
    assert r.status_code == 200, describe(r)
    r = demo.http("DELETE", f"/v1/containers/{renamed}")
    assert r.status_code == 204, describe(r)
    demo.wait_gone(uuid)


# ============================================================== §8 policy file


def test_policy_file_overrides_defaults_and_is_reloaded(zk, demo, admin):
    policy_file: Path = zk.policy_file
    first = demo.create({"name": unique("pol-a"), "command": ["/bin/true"]})
    second = demo.create({"name": unique("pol-b"), "command": ["/bin/true"]})
    demo.wait_status(first["uuid"], "Created")
    demo.wait_status(second["uuid"], "Created")
    try:
        policy_file.write_text('"container:delete": "role:admin"\n')
        time.sleep(RELOAD_WAIT_S)
        r = demo.http("DELETE", f"/v1/containers/{first['uuid']}")
        assert_policy_denied(r, "container:delete")
        # Rules the file does not name keep their defaults.
        r = demo.get(first["uuid"])
        assert r.status_code == 200, describe(r)
        assert r.json()["status"] == "Created"
        # An admin may (and sees demo's container).
        r = admin.http("DELETE", f"/v1/containers/{first['uuid']}")
        assert r.status_code == 204, describe(r)
        demo.wait_gone(first["uuid"])
    finally:
        policy_file.unlink(missing_ok=True)
    # Removing the file restores the defaults: the member may delete again.
    deadline = time.monotonic() + RELOAD_DEADLINE_S
    while True:
        r = demo.http("DELETE", f"/v1/containers/{second['uuid']}")
        if r.status_code != 403 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert r.status_code == 204, f"after removing the policy file: {describe(r)}"
    demo.wait_gone(second["uuid"])


# ============================================================== the real CLI through Keystone


def cli(keystone: KeystoneServer, user: str, *args: str) -> tuple[int, str, str]:
    r = subprocess.run([OPENSTACK, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                       env=keystone.cli_env(user), stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def cli_json(keystone: KeystoneServer, user: str, *args: str):
    rc, out, err = cli(keystone, user, *args)
    assert rc == 0, f"[{user}] openstack {' '.join(args)} -> rc {rc}\nstdout: {out}\nstderr: {err}"
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"[{user}] openstack {' '.join(args)} printed no JSON: {out!r} {err!r}")


def test_cli_run_and_list_through_keystone(keystone, zk, tokens, demo, alt):
    callers = {"demo": demo, "alt_demo": alt}
    made: dict[str, dict] = {}
    try:
        for user in ("demo", "alt_demo"):
            name = unique(f"cli-{user.replace('_', '-')}")
            data = cli_json(keystone, user, "appcontainer", "run", "-f", "json", "--name", name,
                            IMAGE, *LOOP)
            assert data["name"] == name, data
            assert data["project_id"] == tokens[user].project_id, data
            assert data["user_id"] == tokens[user].user_id, data
            made[user] = data
        for user, other in (("demo", "alt_demo"), ("alt_demo", "demo")):
            callers[user].wait_status(made[user]["uuid"], "Running")
            rows = cli_json(keystone, user, "appcontainer", "list", "-f", "json")
            seen = {row["uuid"] for row in rows}
            assert made[user]["uuid"] in seen, rows
            assert made[other]["uuid"] not in seen, rows
            assert seen == {c["uuid"] for c in callers[user].list()}, rows
            rc, out, err = cli(keystone, user, "appcontainer", "show", made[other]["uuid"])
            assert rc != 0, out
            assert "could not be found" in out + err, (out, err)
    finally:
        for user, data in made.items():
            callers[user].http("DELETE", f"/v1/containers/{data['uuid']}", params={"stop": "true"})
        for user, data in made.items():
            callers[user].wait_gone(data["uuid"])


def test_registries_belong_to_their_project(keystone, tokens, demo, alt, admin):
    """A registry created by demo (with the real CLI) is invisible to
    alt_demo under every route, usable by no one else, and listed for an
    admin only with all_projects."""
    name = unique("reg-demo")
    data = cli_json(keystone, "demo", "appcontainer", "registry", "create", "-f", "json",
                    "--name", name, "--domain", "registry.example.com", "--username", "u",
                    "--password", "demo-registry-password")
    try:
        assert data["project_id"] == tokens["demo"].project_id, data
        assert data["password"] == "***", data
        own = cli_json(keystone, "demo", "appcontainer", "registry", "list", "-f", "json")
        assert data["uuid"] in {row["uuid"] for row in own}, own
        others = cli_json(keystone, "alt_demo", "appcontainer", "registry", "list", "-f", "json")
        assert data["uuid"] not in {row["uuid"] for row in others}, others
        rc, out, err = cli(keystone, "alt_demo", "appcontainer", "registry", "show", name)
        assert rc != 0 and "could not be found" in out + err, (out, err)
        for ident in (data["uuid"], name):
            for method, body in (("GET", None), ("PATCH", {"registry": {"username": "x"}}),
                                 ("DELETE", None)):
                r = alt.http(method, f"/v1/registries/{ident}", json=body)
                assert r.status_code == 404, f"{method} {ident}: {describe(r)}"
        r = alt.http("POST", "/v1/containers", json={"image": "box:1", "registry": name})
        assert r.status_code == 404, describe(r)
        r = alt.http("GET", "/v1/registries", params={"all_projects": "true"})
        assert_policy_denied(r, "registry:get_all_all_projects")
        r = admin.http("GET", "/v1/registries", params={"all_projects": "true"})
        assert r.status_code == 200, describe(r)
        assert data["uuid"] in {row["uuid"] for row in r.json()["registries"]}, r.text
        assert "demo-registry-password" not in r.text
        r = admin.http("GET", "/v1/registries")
        assert data["uuid"] not in {row["uuid"] for row in r.json()["registries"]}, r.text
    finally:
        r = demo.http("DELETE", f"/v1/registries/{data['uuid']}")
        assert r.status_code == 204, describe(r)


# ============================================================== `tokens` identity mode


def write_json_atomically(path: Path, data: dict) -> None:
    """Replaces the file and makes sure its mtime moves forward (an mtime
    poller must see the change even within one clock tick)."""
    old = path.stat().st_mtime if path.exists() else 0.0
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    new = max(time.time(), old + 1.0)
    os.utime(tmp, (new, new))
    os.replace(tmp, path)


def test_tokens_mode_isolation_and_reload(tmp_path_factory, log_dir, engine_cleanup):
    base = tmp_path_factory.mktemp("tokens-file")
    token_file = base / "tokens.json"
    ids = {k: uuidlib.uuid4().hex for k in ("pa", "pb", "pc", "padmin", "ua", "ub", "uc", "uadmin")}
    tok = {k: f"{k}-{uuidlib.uuid4().hex}" for k in ("a", "b", "c", "admin")}
    content = {"tokens": {
        tok["a"]: {"project_id": ids["pa"], "user_id": ids["ua"], "roles": ["member"]},
        tok["b"]: {"project_id": ids["pb"], "user_id": ids["ub"], "roles": ["member"]},
        tok["admin"]: {"project_id": ids["padmin"], "user_id": ids["uadmin"], "roles": ["admin"]},
    }}
    write_json_atomically(token_file, content)
    z = make_configured(tmp_path_factory, log_dir, "tok",
                        f'[identity]\nmode = "tokens"\n[identity.tokens]\nfile = "{token_file}"\n')
    try:
        z.start()
        a, b, adm = Caller(z, tok["a"], "a"), Caller(z, tok["b"], "b"), Caller(z, tok["admin"], "admin")
        c = Caller(z, tok["c"], "c")

        assert_unauthorized(Caller(z, None).http("GET", "/v1/containers"), keystone=False)
        assert_unauthorized(Caller(z, "unknown").http("GET", "/v1/containers"), keystone=False)

        view = a.create({"name": unique("tok-a"), "command": ["/bin/true"]})
        assert view["project_id"] == ids["pa"] and view["user_id"] == ids["ua"], view
        a.wait_status(view["uuid"], "Created")
        assert view["uuid"] in {x["uuid"] for x in a.list()}
        assert b.list() == []
        for ident in (view["uuid"], view["name"]):
            assert_error(b.get(ident), 404, "container-not-found",
                         detail=f"Container {ident} could not be found.")
            assert_error(b.http("DELETE", f"/v1/containers/{ident}"), 404, "container-not-found")
        assert_policy_denied(b.http("GET", "/v1/containers", params={"all_projects": "1"}),
                             "container:get_all_all_projects")
        assert view["uuid"] in {x["uuid"] for x in adm.list(all_projects="1")}
        assert adm.get(view["uuid"]).status_code == 200

        # Edit the file: a new token (project pa) appears, token b disappears.
        assert_unauthorized(c.http("GET", "/v1/containers"), keystone=False)
        content["tokens"][tok["c"]] = {"project_id": ids["pa"], "user_id": ids["uc"],
                                       "roles": ["member"]}
        del content["tokens"][tok["b"]]
        write_json_atomically(token_file, content)
        deadline = time.monotonic() + RELOAD_DEADLINE_S
        while True:
            r = c.http("GET", "/v1/containers")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200, f"new token not honoured after editing the file: {describe(r)}"
        assert view["uuid"] in {x["uuid"] for x in r.json()["containers"]}
        assert_unauthorized(b.http("GET", "/v1/containers"), keystone=False)
        # The new token acts in its project.
        r = c.http("DELETE", f"/v1/containers/{view['uuid']}")
        assert r.status_code == 204, describe(r)
        a.wait_gone(view["uuid"])
    finally:
        z.stop()


# ============================================================== token revocation


def test_revoked_token_is_refused(keystone, tmp_path_factory, log_dir):
    z = make_configured(tmp_path_factory, log_dir, "ks1", keystone_toml(keystone, cache_seconds=1))
    try:
        z.start()
        token = keystone.issue_token("demo")
        caller = Caller(z, token.id, "demo")
        r = caller.http("GET", "/v1/containers")
        assert r.status_code == 200, describe(r)
        keystone.revoke_token(token)
        time.sleep(2.0)  # > token_cache_seconds
        assert_unauthorized(caller.http("GET", "/v1/containers"))
        assert_unauthorized(caller.http("POST", "/v1/containers", json={"image": IMAGE}))
        # Others' tokens are unaffected.
        r = Caller(z, keystone.issue_token("demo").id).http("GET", "/v1/containers")
        assert r.status_code == 200, describe(r)
    finally:
        z.stop()


# ============================================================== §7.5 / §7.6 / §10 quotas


def test_quota_routes_policies(demo, alt, admin, tokens):
    pid = tokens["demo"].project_id
    r = demo.http("GET", f"/v1/quotas/{pid}")
    assert r.status_code == 200, describe(r)
    assert set(r.json()) == QUOTA_RESOURCES, r.json()
    r = admin.http("GET", f"/v1/quotas/{pid}")
    assert r.status_code == 200, describe(r)
    assert set(r.json()) == QUOTA_RESOURCES, r.json()
    r = demo.http("GET", f"/v1/quotas/{pid}/defaults")
    assert r.status_code == 200, describe(r)
    assert r.json() == DEFAULT_QUOTAS

    assert_policy_denied(demo.http("PUT", f"/v1/quotas/{pid}", json={"containers": 100}),
                         "quota:update")
    assert_policy_denied(demo.http("DELETE", f"/v1/quotas/{pid}"), "quota:delete")
    assert_policy_denied(alt.http("GET", f"/v1/quotas/{pid}"), "quota:get")
    assert_policy_denied(alt.http("GET", f"/v1/quotas/{pid}", params={"usages": "true"}),
                         "quota:get")
    assert_policy_denied(alt.http("GET", f"/v1/quotas/{pid}/defaults"), "quota:get_default")


def test_quota_limits_concurrent_creates(zk, demo, admin, tokens):
    """§10: 20 simultaneous creates against a limit of 3: exactly 3 are accepted."""
    pid = tokens["demo"].project_id
    demo.delete_all()
    accepted: list[str] = []
    try:
        r = admin.http("PUT", f"/v1/quotas/{pid}", json={"containers": 3})
        assert r.status_code == 200, describe(r)
        assert r.json() == {**DEFAULT_QUOTAS, "containers": 3}, r.json()

        r = demo.http("GET", f"/v1/quotas/{pid}")
        assert r.status_code == 200, describe(r)
        assert r.json() == {**DEFAULT_QUOTAS, "containers": 3}

        n = 20
        barrier = threading.Barrier(n)

        def create(i: int) -> requests.Response:
            with requests.Session() as s:
                barrier.wait(timeout=30)
                return demo.http("POST", "/v1/containers", session=s,
                                 json={"image": IMAGE, "name": unique(f"quota-{i}"),
                                       "command": ["/bin/true"]})

        with ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(create, range(n)))
        accepted = [r.json()["uuid"] for r in results if r.status_code == 202]
        summary = [(r.status_code, r.text[:200]) for r in results]
        assert len(accepted) == 3, summary
        for r in results:
            if r.status_code != 202:
                assert_error(r, 403, "over-quota",
                             detail="Quota exceeded for resources: ['containers']")

        r = demo.http("GET", f"/v1/quotas/{pid}", params={"usages": "true"})
        assert r.status_code == 200, describe(r)
        usage = r.json()
        assert set(usage) == QUOTA_RESOURCES, usage
        for res, value in usage.items():
            assert isinstance(value, dict) and set(value) == {"limit", "in_use"}, usage
        assert usage["containers"] == {"limit": 3, "in_use": 3}, usage
        assert usage["memory"]["limit"] == 51200 and usage["memory"]["in_use"] == 3 * 512, usage
        assert usage["cpu"]["limit"] == 20 and float(usage["cpu"]["in_use"]) == 3.0, usage
        assert usage["disk"]["limit"] == 100, usage
        r = admin.http("GET", f"/v1/quotas/{pid}", params={"usages": "true"})
        assert r.status_code == 200 and r.json()["containers"] == {"limit": 3, "in_use": 3}, describe(r)

        r = demo.http("GET", f"/v1/quotas/{pid}/defaults")
        assert r.status_code == 200, describe(r)
        assert r.json() == DEFAULT_QUOTAS

        # DELETE (admin) goes back to the defaults.
        r = admin.http("DELETE", f"/v1/quotas/{pid}")
        assert r.status_code == 200, describe(r)
        assert r.json() is None, describe(r)
        r = demo.http("GET", f"/v1/quotas/{pid}")
        assert r.status_code == 200 and r.json() == DEFAULT_QUOTAS, describe(r)
        r = demo.http("GET", f"/v1/quotas/{pid}", params={"usages": "true"})
        assert r.json()["containers"] == {"limit": 40, "in_use": 3}, describe(r)
        # ... and a fourth create is accepted again.
        extra = demo.create({"name": unique("quota-extra"), "command": ["/bin/true"]})
        accepted.append(extra["uuid"])
    finally:
        admin.http("DELETE", f"/v1/quotas/{pid}")
        for uuid in accepted:
            demo.wait_status(uuid, {"Created", "Error"})
            demo.http("DELETE", f"/v1/containers/{uuid}")
        for uuid in accepted:
            demo.wait_gone(uuid)


def test_quota_classes(demo, admin, tokens):
    cls = unique("acc-class")
    r = admin.http("GET", f"/v1/quota_classes/{cls}")
    assert r.status_code == 200, describe(r)
    assert r.json() == DEFAULT_QUOTAS
    r = admin.http("PUT", f"/v1/quota_classes/{cls}", json={"containers": 7, "cpu": "5"})
    assert r.status_code == 200, describe(r)
    assert r.json() == {**DEFAULT_QUOTAS, "containers": 7, "cpu": 5}
    r = admin.http("GET", f"/v1/quota_classes/{cls}")
    assert r.status_code == 200 and r.json() == {**DEFAULT_QUOTAS, "containers": 7, "cpu": 5}, describe(r)

    assert_policy_denied(demo.http("GET", f"/v1/quota_classes/{cls}"), "quota_class:get")
    assert_policy_denied(demo.http("PUT", f"/v1/quota_classes/{cls}", json={"containers": 1}),
                         "quota_class:update")
    assert_policy_denied(demo.http("GET", "/v1/quota_classes/default"), "quota_class:get")

    # The `default` class overrides the configured defaults for every project.
    pid = tokens["demo"].project_id
    try:
        r = admin.http("PUT", "/v1/quota_classes/default", json={"containers": 45})
        assert r.status_code == 200, describe(r)
        assert r.json()["containers"] == 45
        r = demo.http("GET", f"/v1/quotas/{pid}/defaults")
        assert r.status_code == 200 and r.json()["containers"] == 45, describe(r)
        r = demo.http("GET", f"/v1/quotas/{pid}")
        assert r.status_code == 200 and r.json()["containers"] == 45, describe(r)
    finally:
        r = admin.http("PUT", "/v1/quota_classes/default",
                       json={"containers": DEFAULT_QUOTAS["containers"]})
        assert r.status_code == 200, describe(r)


# ============================================================== Keystone down, token expiry (last)


def test_keystone_unreachable_is_503(keystone, zk):
    fresh = keystone.issue_token("demo")  # never seen by zund: it has to ask Keystone
    keystone.stop()
    try:
        caller = Caller(zk, fresh.id, "demo")
        r = caller.http("GET", "/v1/containers")
        assert_error(r, 503)
        r = caller.http("POST", "/v1/containers", json={"image": IMAGE})
        assert_error(r, 503)
        r = caller.http("GET", f"/v1/containers/{uuidlib.uuid4()}")
        assert_error(r, 503)
        # No token: refused without asking Keystone.
        assert_unauthorized(Caller(zk, None).http("GET", "/v1/containers"))
        # Public routes still answer.
        r = Caller(zk, None).http("GET", "/", version=None)
        assert r.status_code == 200, describe(r)
    finally:
        keystone.start()
    # Back to normal once Keystone is.
    r = Caller(zk, fresh.id).http("GET", "/v1/containers")
    assert r.status_code == 200, describe(r)


def test_expired_token_is_refused(keystone, zk):
    """The module's zund trusts a validated token for 300 s, but never past its expiry."""
    keystone.restart(token_expiration=3)
    token = keystone.issue_token("demo")
    caller = Caller(zk, token.id, "demo")
    r = caller.http("GET", "/v1/containers")
    assert r.status_code == 200, describe(r)
    expires = datetime.strptime(token.expires_at.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 1.5)
    assert_unauthorized(caller.http("GET", "/v1/containers"))
    # Keystone itself agrees.
    assert keystone.validate_token(token).status_code == 404


def test_another_projects_volume_cannot_be_mounted(demo, alt, admin):
    """A volume of demo's (made by a mount naming it) is not found for
    alt_demo by its uuid (404, as upstream's Cinder lookup in the caller's
    project), and alt_demo's mount of the same name is a volume of its own;
    an admin is refused it as not usable."""
    name = unique("vol")
    made = demo.create({"name": unique("vol-owner"), "command": ["sleep", "300"],
                        "mounts": [{"source": name, "destination": "/data"}]}, run=True)
    try:
        demo.wait_status(made["uuid"], "Running")
        [mount] = demo.get(made["uuid"]).json()["mounts"]
        assert mount["source"] == name
        r = alt.http("POST", "/v1/containers", json={
            "image": IMAGE, "mounts": [{"source": mount["volume_id"], "destination": "/d"}]})
        assert_error(r, 404, "volume-not-found", f"Volume {mount['volume_id']} could not be found.")
        r = admin.http("POST", "/v1/containers", json={
            "image": IMAGE, "mounts": [{"source": mount["volume_id"], "destination": "/d"}]})
        assert_error(r, 400, "invalid", f"Volume {mount['volume_id']} not usable for the container.")
        own = alt.create({"name": unique("vol-alt"), "command": ["sleep", "300"],
                          "mounts": [{"source": name, "destination": "/data"}]})
        try:
            [alt_mount] = alt.get(own["uuid"]).json()["mounts"]
            assert alt_mount["volume_id"] != mount["volume_id"]
        finally:
            alt.wait_status(own["uuid"], {"Created", "Error"})
            alt.http("DELETE", f"/v1/containers/{own['uuid']}")
            alt.wait_gone(own["uuid"])
    finally:
        demo.http("DELETE", f"/v1/containers/{made['uuid']}", params={"stop": "true"})
        demo.wait_gone(made["uuid"])


def test_another_projects_capsule_is_not_found(demo, alt, admin):
    """Capsules are looked up within the caller's project (§6, §4): alt_demo
    finds demo's capsule neither by uuid nor by name, nor in its list, and
    cannot reach its containers; an admin sees it across projects."""
    name = unique("pod")
    r = demo.http("POST", "/v1/capsules", json={"template": {
        "kind": "capsule", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": IMAGE,
                                 "command": ["sh", "-c", "exec sleep 300"]}]}}})
    assert r.status_code == 202, describe(r)
    capsule = r.json()
    [main] = capsule["containers"]
    try:
        for ident in (capsule["uuid"], name):
            assert_error(alt.http("GET", f"/v1/capsules/{ident}"), 404, "container-not-found")
            assert_error(alt.http("DELETE", f"/v1/capsules/{ident}"), 404,
                         "container-not-found")
        listed = alt.http("GET", "/v1/capsules", params={"all_projects": "true"}).json()
        assert capsule["uuid"] not in {c["uuid"] for c in listed["capsules"]}
        assert_error(alt.http("GET", f"/v1/containers/{main['uuid']}"), 404,
                     "container-not-found")
        assert_error(alt.http("GET", f"/v1/containers/{main['uuid']}/logs"), 404,
                     "container-not-found")
        seen = admin.http("GET", "/v1/capsules", params={"all_projects": "true"}).json()
        assert capsule["uuid"] in {c["uuid"] for c in seen["capsules"]}
        assert "host" in admin.http("GET", f"/v1/capsules/{capsule['uuid']}").json()
        assert "host" not in demo.http("GET", f"/v1/capsules/{capsule['uuid']}").json()
    finally:
        r = demo.http("DELETE", f"/v1/capsules/{capsule['uuid']}")
        assert r.status_code == 204, describe(r)
        deadline = time.monotonic() + 60
        while demo.http("GET", f"/v1/capsules/{capsule['uuid']}").status_code != 404:
            assert time.monotonic() < deadline, "capsule not deleted"
            time.sleep(0.3)


# ================================================================ audit log


def test_the_audit_log_names_who_did_what_and_nothing_secret(zk, tokens, demo, alt, alt_created):
    """Create, action and delete requests of two projects, and one refused,
    each leave one JSON line with the caller's project and user; no token,
    password or command is written."""
    def lines() -> list[dict]:
        return [json.loads(line) for line in zk.audit_log.read_text().splitlines()]

    before = len(lines())
    secret = "audit-registry-password"
    made = {}
    for caller, token in ((demo, tokens["demo"]), (alt, tokens["alt_demo"])):
        view = caller.create({"name": unique("audit"), "command": LOOP}, run=True)
        caller.wait_status(view["uuid"], "Running")
        r = caller.http("POST", f"/v1/containers/{view['uuid']}/execute",
                        params={"command": f"echo {secret}", "run": "true"})
        assert r.status_code == 200, r.text
        r = caller.http("POST", f"/v1/containers/{view['uuid']}/stop", params={"timeout": "1"})
        assert r.status_code == 202, r.text
        caller.wait_status(view["uuid"], "Stopped")
        r = caller.http("DELETE", f"/v1/containers/{view['uuid']}")
        assert r.status_code == 204, r.text
        made[token.project_id] = (token.user_id, view["uuid"], r.headers["x-openstack-request-id"])
    r = demo.http("POST", "/v1/registries", json={"registry": {
        "name": unique("audit-reg"), "domain": "registry.example.com", "username": "u",
        "password": secret}})
    assert r.status_code == 201, r.text
    registry = r.json()["registry"]["uuid"]
    r = demo.http("DELETE", f"/v1/registries/{registry}")
    assert r.status_code == 204, r.text
    # Another project's container: refused, and recorded as such.
    r = demo.http("POST", f"/v1/containers/{alt_created['uuid']}/start")
    assert r.status_code == 404, r.text
    # No token at all: recorded without a project.
    r = Caller(zk, None).http("POST", "/v1/containers", json={"image": IMAGE})
    assert r.status_code == 401, r.text

    new = lines()[before:]
    text = zk.audit_log.read_text()
    for token in tokens.values():
        assert token.id not in text
    assert secret not in text
    assert not any(line["method"] == "GET" for line in new)
    for project, (user, uuid, delete_request) in made.items():
        mine = [line for line in new if line["target"] == uuid]
        assert [line["action"] for line in mine] == [
            "containers:execute", "containers:stop", "containers:delete"], mine
        assert {(line["project_id"], line["user_id"]) for line in mine} == {(project, user)}
        assert all(line["outcome"] == "success" for line in mine), mine
        assert mine[-1]["request_id"] == delete_request and mine[-1]["status"] == 204
        assert mine[-1]["path"] == f"/v1/containers/{uuid}"
        creates = [line for line in new if line["action"] == "containers:create"
                   and line["project_id"] == project]
        assert creates and creates[0]["status"] == 202 and creates[0]["user_id"] == user
    regs = [line for line in new if line["action"].startswith("registries:")]
    assert [(line["action"], line["status"]) for line in regs] == [
        ("registries:create", 201), ("registries:delete", 204)], regs
    (refused,) = [line for line in new if line["action"] == "containers:start"]
    assert refused["project_id"] == tokens["demo"].project_id
    assert (refused["status"], refused["outcome"]) == (404, "failure")
    (anonymous,) = [line for line in new if line["status"] == 401]
    assert anonymous["project_id"] is None and anonymous["user_id"] is None

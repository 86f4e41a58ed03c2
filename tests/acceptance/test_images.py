"""Images and private registries (issue 5) against a real registry (Debian's
`docker-registry` with htpasswd, on 127.0.0.1), the real Docker engine, the
real `openstack appcontainer` CLI and raw HTTP, on this module's own
`zund all-in-one`.

Expected values: reference §7.1 (images), §7.7 (registries), §8 (policies),
§3 (error body); what a failed pull says is ours (upstream logs it only).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from conftest import (
    IMAGE,
    MAX_VERSION,
    STATUS_TIMEOUT_S,
    ZUND_BIN,
    DOCKER_SOCKET,
    ZunAllInOne,
    _make,
    docker_cmd,
)
from registry import RegistryServer

V = MAX_VERSION
SLEEPER = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
PASSWORD = "pw-" + uuidlib.uuid4().hex


def suffix() -> str:
    return uuidlib.uuid4().hex[:6]


def error_of(r) -> dict:
    body = r.json()
    assert set(body) == {"errors"}, body
    return body["errors"][0]


@pytest.fixture(scope="module")
def zun(engine_cleanup, tmp_path_factory, log_dir):
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "images")
    try:
        z.start()
        yield z
    finally:
        z.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory, log_dir):
    """A private registry holding `private/box:1.0` (busybox) and
    `private/big:1.0` (busybox plus a 48 MiB layer), neither left local."""
    with RegistryServer(tmp_path_factory.mktemp("registry"), {"alice": PASSWORD},
                        log_dir=log_dir) as reg:
        reg.box = reg.push(f"{IMAGE}:latest", "private/box:1.0")
        # A bigger image, so that a pull lasts long enough to be watched.
        name = f"zun-big-{suffix()}"
        steps = [
            ["create", "--name", name, f"{IMAGE}:latest", "true"],
            ["cp", str(_random_file(tmp_path_factory)), f"{name}:/big"],
            ["commit", name, f"zun-test-big-{suffix()}:1"],
        ]
        for args in steps:
            r = docker_cmd(*args, timeout=120)
            assert r.returncode == 0, f"docker {args}: {r.stderr}"
        local_big = r.stdout.strip()
        docker_cmd("rm", "-f", name)
        reg.big = reg.push(local_big, "private/big:1.0")
        docker_cmd("rmi", local_big)
        yield reg


def _random_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with open(path, "wb") as f:
        for _ in range(48):
            f.write(uuidlib.uuid4().bytes * 65536)
    return path


def create_registry_cli(zun, name: str, domain: str, password: str) -> dict:
    return zun.openstack_json("appcontainer", "registry", "create", "-f", "json", "--name", name,
                              "--domain", domain, "--username", "alice", "--password", password)


def run_cli(zun, *args: str) -> dict:
    """`openstack appcontainer run` with options `args` (the image last)."""
    return zun.openstack_json("appcontainer", "run", "-f", "json", *args, *SLEEPER)


def delete_container(zun, uuid: str) -> None:
    zun.http("DELETE", f"/v1/containers/{uuid}", version=V, params={"force": "true"})
    zun.wait_gone(uuid)


def remove_local(ref: str) -> None:
    docker_cmd("rmi", ref)


# --------------------------------------------------------------------------- registries + private images


def test_private_image_runs_with_its_registry(zun, registry):
    name = f"reg-{suffix()}"
    reg = create_registry_cli(zun, name, registry.domain, PASSWORD)
    assert reg["password"] == "***", reg
    assert reg["domain"] == registry.domain and reg["username"] == "alice", reg
    remove_local(registry.box)
    c = run_cli(zun, "--name", f"private-{suffix()}", "--registry", name,
                "--image-pull-policy", "always", "private/box:1.0")
    try:
        assert c["registry_id"] == reg["uuid"], c
        zun.wait_status(c["uuid"], "Running")
        info = zun.inspect(c["uuid"])
        assert info["Config"]["Image"] == registry.box, info["Config"]
        shown = zun.openstack_json("appcontainer", "show", "-f", "json", c["uuid"])
        assert shown["status"] == "Running" and shown["status_reason"] is None, shown
    finally:
        delete_container(zun, c["uuid"])


def test_wrong_password_puts_the_container_in_error(zun, registry):
    name = f"wrong-{suffix()}"
    create_registry_cli(zun, name, registry.domain, "not-the-password")
    # Even with the image present on the host, `always` must ask the
    # registry, and a refusal is an error: no local copy behind its back.
    r = docker_cmd("pull", registry.box)  # anonymous: refused, so tag it locally instead
    docker_cmd("tag", f"{IMAGE}:latest", registry.box)
    c = run_cli(zun, "--name", f"wrongpw-{suffix()}", "--registry", name,
                "--image-pull-policy", "always", "private/box:1.0")
    try:
        view = zun.wait_status(c["uuid"], "Error")
        reason = view["status_reason"]
        assert reason.startswith(f"Failed to pull image {registry.box}: "), reason
        assert f"refused the credentials of registry {name}" in reason, reason
        assert "check its username and password" in reason, reason
        assert zun.inspect(c["uuid"]) is None, "a failed create leaves nothing in the engine"
        # The same reason through the CLI.
        shown = zun.openstack_json("appcontainer", "show", "-f", "json", c["uuid"])
        assert shown["status_reason"] == reason
    finally:
        delete_container(zun, c["uuid"])
        remove_local(registry.box)
    assert r.returncode != 0, "an anonymous pull of the private image must be refused"


def test_unknown_tag_and_unreachable_registry_say_so(zun, registry):
    name = f"reg-{suffix()}"
    create_registry_cli(zun, name, registry.domain, PASSWORD)
    unknown = run_cli(zun, "--name", f"notag-{suffix()}", "--registry", name, "private/box:9.9")
    # A registry that is down: nothing listens on its port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down_port = s.getsockname()[1]
    down = f"down-{suffix()}"
    create_registry_cli(zun, down, f"127.0.0.1:{down_port}", PASSWORD)
    unreachable = run_cli(zun, "--name", f"down-{suffix()}", "--registry", down, "private/box:1.0")
    try:
        reason = zun.wait_status(unknown["uuid"], "Error")["status_reason"]
        assert "the registry has no such image or tag" in reason, reason
        assert "private/box:9.9" in reason, reason
        reason = zun.wait_status(unreachable["uuid"], "Error")["status_reason"]
        assert "the registry could not be reached" in reason, reason
    finally:
        delete_container(zun, unknown["uuid"])
        delete_container(zun, unreachable["uuid"])


def test_a_pull_in_progress_shows_in_status_reason(zun, registry):
    name = f"reg-{suffix()}"
    reg = zun.http("POST", "/v1/registries", version=V, json={"registry": {
        "name": name, "domain": registry.domain, "username": "alice", "password": PASSWORD}})
    assert reg.status_code == 201, reg.text
    remove_local(registry.big)
    c = zun.create({"name": f"big-{suffix()}", "image": "private/big:1.0", "registry": name,
                    "command": SLEEPER}, run=True)
    seen = []
    deadline = time.monotonic() + STATUS_TIMEOUT_S * 2
    try:
        while time.monotonic() < deadline:
            view = zun.get(c["uuid"]).json()
            seen.append((view["status"], view["task_state"], view["status_reason"]))
            if view["status"] != "Creating":
                break
            time.sleep(0.02)
        assert view["status"] == "Running", seen[-5:]
        pulling = [s for s in seen if s[1] == "image_pulling"]
        assert pulling, f"the pull never showed: {seen[:5]} ... {seen[-5:]}"
        assert all(s[0] == "Creating" for s in pulling), pulling
        assert all(s[2].startswith(f"Pulling image {registry.big}") for s in pulling), pulling
        assert view["status_reason"] is None and view["task_state"] is None, view
    finally:
        delete_container(zun, c["uuid"])
        remove_local(registry.big)


def test_a_pull_that_hangs_is_bounded(engine_cleanup, tmp_path_factory, log_dir):
    """A registry that accepts connections and never answers: the pull ends at
    `[compute] image_pull_timeout_seconds` and the container goes to Error."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "pulltimeout")
    z.config_file = z.data_dir / "zund.toml"
    z.config_file.write_text("[compute]\nimage_pull_timeout_seconds = 2\n")
    try:
        z.start()
        c = z.create({"image": f"127.0.0.1:{port}/stalled/box:1", "command": SLEEPER}, run=True)
        started = time.monotonic()
        view = z.wait_status(c["uuid"], "Error")
        took = time.monotonic() - started
        assert "did not finish within 2 s" in view["status_reason"], view
        assert took < 20, took
        delete_container(z, c["uuid"])
    finally:
        z.stop()
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for s in held:
            s.close()


# --------------------------------------------------------------------------- the images API


def test_image_pull_list_show_search_delete_through_the_cli(zun, registry):
    name = f"reg-{suffix()}"
    create_registry_cli(zun, name, registry.domain, PASSWORD)
    remove_local(registry.box)
    pulled = zun.openstack_json("appcontainer", "image", "pull", "-f", "json", registry.box,
                                zun.host_name)
    assert pulled["repo"] == f"{registry.domain}/private/box", pulled
    assert pulled["tag"] == "1.0" and pulled["host"] == zun.host_name, pulled
    uuid = pulled["uuid"]
    deadline = time.monotonic() + STATUS_TIMEOUT_S
    while True:
        rows = zun.openstack_json("appcontainer", "image", "list", "-f", "json")
        row = next((r for r in rows if r["uuid"] == uuid), None)
        if row and row["image_id"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row and row["image_id"].startswith("sha256:"), rows
    local = docker_cmd("image", "inspect", registry.box)
    assert local.returncode == 0, "the private image was pulled with the registry's credentials"
    assert json.loads(local.stdout)[0]["Id"] == row["image_id"]
    assert int(row["size"]) > 0, row

    shown = zun.openstack_json("appcontainer", "image", "show", "-f", "json", uuid)
    assert shown["image_id"] == row["image_id"] and shown["repo"] == pulled["repo"], shown

    found = zun.openstack_json("appcontainer", "image", "search", "-f", "json", "box")
    names = {f["Name"]: f for f in found}
    assert f"{registry.domain}/private/box" in names, found
    assert names[f"{registry.domain}/private/box"]["Tags"] == ["1.0"], found
    exact = zun.openstack_json("appcontainer", "image", "search", "-f", "json", "--exact-match",
                               "private/big")
    assert [f["Name"] for f in exact] == [f"{registry.domain}/private/big"], exact
    none = zun.openstack_json("appcontainer", "image", "search", "-f", "json", "--exact-match",
                              "box")
    assert none == [], none

    rc, out, err = zun.openstack("appcontainer", "image", "delete", uuid)
    assert rc == 0 and "has been accepted" in out, (out, err)
    deadline = time.monotonic() + STATUS_TIMEOUT_S
    while zun.http("GET", f"/v1/images/{uuid}", version=V).status_code != 400:
        assert time.monotonic() < deadline, "image row still there"
        time.sleep(0.3)
    assert docker_cmd("image", "inspect", registry.box).returncode != 0, "tag removed from the host"
    assert docker_cmd("image", "inspect", f"{IMAGE}:latest").returncode == 0, "busybox stays"


def test_images_http_errors(zun):
    r = zun.http("GET", "/v1/images/not-a-uuid", version=V)
    assert r.status_code == 400 and error_of(r)["code"] == "container.image-not-found", r.text
    r = zun.http("GET", f"/v1/images/{uuidlib.uuid4()}", version=V)
    assert r.status_code == 400, r.text
    assert error_of(r)["detail"].endswith("could not be found."), r.text
    r = zun.http("POST", "/v1/images", version=V, json={"repo": "busybox", "host": "nowhere"})
    assert r.status_code == 400, r.text
    assert error_of(r)["detail"] == "The host nowhere does not exist.", r.text
    r = zun.http("POST", "/v1/images", version=V, json={"host": zun.host_name})
    assert r.status_code == 400 and error_of(r)["detail"] == "'repo' is a required property"
    r = zun.http("POST", "/v1/images", version=V,
                 json={"repo": "busybox", "host": zun.host_name, "colour": "red"})
    assert r.status_code == 400 and "was unexpected" in error_of(r)["detail"], r.text
    r = zun.http("POST", "/v1/images", version=V, json={"repo": "Not Valid", "host": zun.host_name})
    assert r.status_code == 400, r.text
    r = zun.http("GET", "/v1/images/busybox/search", version=V, params={"image_driver": "glance"})
    assert r.status_code == 400, r.text
    r = zun.http("GET", "/v1/images/busybox/search", version=V, params={"exact_match": "maybe"})
    assert r.status_code == 400, r.text
    r = zun.http("GET", "/v1/images", version=V, params={"sort_key": "password"})
    assert r.status_code == 400, r.text
    for r in (zun.http("GET", "/v1/images/busybox/search", version=V, params={"x": "1"}),):
        assert r.status_code == 400 and "Unknown parameters: x" in r.text, r.text


def test_images_api_is_admin_only_but_search(zun_member):
    for method, path, body in (("GET", "/v1/images", None),
                               ("POST", "/v1/images", {"repo": "busybox", "host": "node-1"}),
                               ("DELETE", f"/v1/images/{uuidlib.uuid4()}", None)):
        r = zun_member.http(method, path, version=V, json=body)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
    # Upstream looks the image up before checking `image:get_one` on it.
    r = zun_member.http("GET", f"/v1/images/{uuidlib.uuid4()}", version=V)
    assert r.status_code == 400, r.text
    # Search is the owner's: refused here only for want of a registry.
    r = zun_member.http("GET", "/v1/images/box/search", version=V)
    assert r.status_code == 400 and "no registry to search" in r.text, r.text


# --------------------------------------------------------------------------- registries API


def test_registry_api_follows_upstream(zun):
    r = zun.http("POST", "/v1/registries", version=V, json={"registry": {"name": "x1"}})
    assert r.status_code == 400 and error_of(r)["detail"] == "'domain' is a required property"
    r = zun.http("POST", "/v1/registries", version=V,
                 json={"registry": {"domain": "d.example", "name": "-bad"}})
    assert r.status_code == 400 and "does not match" in error_of(r)["detail"], r.text
    r = zun.http("GET", f"/v1/registries/{uuidlib.uuid4()}", version=V)
    assert r.status_code == 404 and error_of(r)["code"] == "container.registry-not-found"

    name = f"api-{suffix()}"
    r = zun.http("POST", "/v1/registries", version=V, json={"registry": {
        "name": name, "domain": "registry.example.com", "username": "u", "password": "p1"}})
    assert r.status_code == 201, r.text
    reg = r.json()["registry"]
    assert r.headers["Location"].endswith(f"/v1/registries/{reg['uuid']}")
    assert set(reg) == {"uuid", "links", "user_id", "project_id", "name", "domain", "username",
                        "password"}, reg
    assert reg["password"] == "***" and reg["project_id"] == zun.project_id, reg

    r = zun.http("PATCH", f"/v1/registries/{name}", version=V,
                 json={"registry": {"username": "v", "password": "p2"}})
    assert r.status_code == 200 and r.json()["registry"]["username"] == "v", r.text
    r = zun.http("GET", "/v1/registries", version=V, params={"name": name})
    rows = r.json()["registries"]
    assert [row["uuid"] for row in rows] == [reg["uuid"]] and "links" not in rows[0], rows
    r = zun.http("GET", "/v1/registries", version=V, params={"colour": "red"})
    assert r.status_code == 400 and "Unknown parameters: colour" in r.text, r.text

    # In use by a container: 409; free again once it is gone.
    c = zun.create({"image": "private/box:1.0", "registry": reg["uuid"], "command": SLEEPER},
                   version="1.31")
    r = zun.http("DELETE", f"/v1/registries/{reg['uuid']}", version=V)
    assert r.status_code == 409, r.text
    assert error_of(r)["detail"] == f"Failed to delete registry {reg['uuid']} since it is in use."
    r = zun.http("POST", "/v1/containers", version="1.30",
                 json={"image": IMAGE, "registry": reg["uuid"]})
    assert r.status_code == 400, "registry needs 1.31"
    r = zun.http("POST", "/v1/containers", version=V, json={"image": IMAGE, "registry": "nope-x"})
    assert r.status_code == 404 and error_of(r)["code"] == "container.registry-not-found"
    zun.wait_status(c["uuid"], "Error")
    delete_container(zun, c["uuid"])
    r = zun.http("DELETE", f"/v1/registries/{name}", version=V)
    assert r.status_code == 204 and r.text == "", r.text
    assert zun.http("GET", f"/v1/registries/{reg['uuid']}", version=V).status_code == 404


def test_stored_registry_rows_hold_no_plain_text_password(zun, registry):
    secret = "plain-" + uuidlib.uuid4().hex
    r = zun.http("POST", "/v1/registries", version=V, json={"registry": {
        "name": f"sealed-{suffix()}", "domain": registry.domain, "username": "alice",
        "password": secret}})
    assert r.status_code == 201 and secret not in r.text, r.text
    listed = zun.http("GET", "/v1/registries", version=V)
    assert secret not in listed.text
    db = zun.data_dir / "zun.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT uuid, password_sealed FROM registries").fetchall()
    assert rows and all(sealed.startswith("v1:") for _, sealed in rows), rows
    for path in zun.data_dir.iterdir():
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"{path.name} holds the password"
    key = zun.data_dir / "secret.key"
    assert key.stat().st_mode & 0o777 == 0o600, oct(key.stat().st_mode)


# --------------------------------------------------------------------------- import


def test_import_a_tarball_and_run_it(zun, tmp_path):
    tag = f"zun-import-{suffix()}:1"
    assert docker_cmd("tag", f"{IMAGE}:latest", tag).returncode == 0
    tarball = tmp_path / "image.tar"
    r = docker_cmd("save", "-o", str(tarball), tag)
    assert r.returncode == 0, r.stderr
    docker_cmd("rmi", tag)
    r = subprocess.run([str(ZUND_BIN), "import-image", "--docker-socket", DOCKER_SOCKET,
                        str(tarball)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [tag], r.stdout
    c = zun.create({"image": tag, "image_pull_policy": "ifnotpresent", "command": SLEEPER},
                   run=True)
    try:
        zun.wait_status(c["uuid"], "Running")
    finally:
        delete_container(zun, c["uuid"])
        docker_cmd("rmi", tag)

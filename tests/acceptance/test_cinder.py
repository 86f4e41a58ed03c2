"""Cinder volumes (issue 13): `[volume] driver = "cinder"` against a REAL
Cinder 28.0.0 on a one-node Ceph (scripts/cinder.sh), in a real Keystone,
with the real CLI and the real engine. A volume is attached through Cinder's
attachments API and reached on the host through rbd-fuse and a loop device.
Wire facts: docs/cinder-notes.md.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest
import requests

from conftest import IMAGE, ROOT
from keystone import KeystoneServer
from test_keystone import Caller, assert_error, keystone_toml, make_configured

V = "1.40"
KEYSTONE_DATA_DIR = Path(os.environ.get("ZUN_TEST_KEYSTONE_CINDER_DATA_DIR")
                         or ROOT / ".data" / "keystone-acceptance-cinder")
CINDER_DATA_DIR = Path(os.environ.get("ZUN_TEST_CINDER_DATA_DIR")
                       or ROOT / ".data" / "cinder-acceptance")
SLEEP = "sleep 300"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


class CinderService:
    def __init__(self, keystone: KeystoneServer, log_file: Path):
        self.env = dict(os.environ, KEYSTONE_DATA_DIR=str(keystone.data_dir),
                        KEYSTONE_PORT=str(keystone.port), CINDER_DATA_DIR=str(CINDER_DATA_DIR))
        self.log_file = log_file

    def run(self, command: str, timeout: float = 900) -> str:
        r = subprocess.run(["bash", str(ROOT / "scripts" / "cinder.sh"), command], env=self.env,
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        with open(self.log_file, "a") as f:
            f.write(f"$ cinder.sh {command} (rc={r.returncode})\n{r.stdout}{r.stderr}")
        assert r.returncode == 0, f"cinder.sh {command}: {r.stderr[-3000:]}"
        return r.stdout.strip()


@pytest.fixture(scope="module")
def zund_port() -> int:
    from conftest import free_port
    return free_port()


@pytest.fixture(scope="module")
def keystone(engine_cleanup, zund_port, log_dir):
    with KeystoneServer.reusing(KEYSTONE_DATA_DIR,
                                zun_endpoint=f"http://127.0.0.1:{zund_port}/v1",
                                log_file=log_dir / "keystone-cinder-script.log") as ks:
        yield ks


@pytest.fixture(scope="module")
def cinder(keystone, log_dir):
    service = CinderService(keystone, log_dir / "cinder-script.log")
    try:
        service.run("start")
        service.url = service.run("url").splitlines()[-1]
        yield service
    finally:
        # Also after a failed start: what it started must not hold the
        # monitors' and the broker's ports for the next run.
        service.run("stop", timeout=120)


@pytest.fixture(scope="module")
def zc(keystone, cinder, zund_port, tmp_path_factory, log_dir):
    text = keystone_toml(keystone) + (
        '[volume]\ndriver = "cinder"\n'
        "[volume.cinder]\n"
        f'url = "{cinder.url}"\n'
        f'auth_url = "{keystone.auth_url}"\n'
        'username = "cinder"\npassword = "cinder-secret"\nproject_name = "service"\n'
        f'ceph_conf = "{CINDER_DATA_DIR / "ceph" / "ceph.conf"}"\n'
    )
    z = make_configured(tmp_path_factory, log_dir, "cinder", text, port=zund_port)
    try:
        z.start()
        yield z
    finally:
        z.stop()
        base = str(z.data_dir)
        with open("/proc/self/mountinfo") as table:
            points = [line.split(" ")[4] for line in table]
        for point in reversed(points):
            if point.startswith(base + "/"):
                subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture(scope="module")
def tokens(keystone):
    return {user: keystone.issue_token(user) for user in ("demo", "alt_demo")}


@pytest.fixture(scope="module")
def demo(zc, tokens) -> Caller:
    return Caller(zc, tokens["demo"].id, "demo")


@pytest.fixture(scope="module")
def alt(zc, tokens) -> Caller:
    return Caller(zc, tokens["alt_demo"].id, "alt_demo")


def create(caller: Caller, body: dict) -> dict:
    """`caller.create(body, run=True)`, asked again when the answer is the
    service's 503 for a Cinder 500. The test Cinder keeps its database in
    SQLite, which refuses a write at once ("database is locked") when its
    three processes write together (a quota reservation beside an
    attachment's update): a weakness of this test deployment, shown
    faithfully by the service as a 503, not what these tests are about."""
    for _ in range(5):
        r = caller.http("POST", "/v1/containers", json={"image": IMAGE, **body},
                        params={"run": "true"})
        if not (r.status_code == 503 and "Cinder answered 500" in r.text):
            break
        time.sleep(0.5)
    assert r.status_code == 202, f"create: {r.status_code} {r.text}"
    return r.json()


def cinder_call(cinder, token, method: str, path: str, json=None) -> requests.Response:
    return requests.request(method, f"{cinder.url}/{token.project_id}{path}", json=json,
                            headers={"X-Auth-Token": token.id, "Accept": "application/json"},
                            timeout=30)


def volume_status(cinder, token, volume_id: str) -> str | None:
    r = cinder_call(cinder, token, "GET", f"/volumes/{volume_id}")
    return None if r.status_code == 404 else r.json()["volume"]["status"]


def wait_volume(cinder, token, volume_id: str, status: str | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (now := volume_status(cinder, token, volume_id)) != status:
        assert time.monotonic() < deadline, f"volume {volume_id} is {now}, not {status}"
        time.sleep(0.3)


def wait_logs(caller: Caller, ident: str, needle: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while needle not in text:
        assert time.monotonic() < deadline, f"{needle!r} not in the logs of {ident}: {text!r}"
        r = caller.http("GET", f"/v1/containers/{ident}/logs")
        text = r.json() if r.status_code == 200 else ""
        time.sleep(0.3)
    return text


def delete(caller: Caller, ident: str) -> None:
    r = caller.http("DELETE", f"/v1/containers/{ident}", params={"stop": "true"})
    assert r.status_code == 204, r.text
    caller.wait_gone(ident, timeout=90)


def test_a_cinder_volume_is_in_use_then_available_and_keeps_its_data(cinder, keystone, tokens,
                                                                     demo):
    token = tokens["demo"]
    name = unique("cv")
    r = cinder_call(cinder, token, "POST", "/volumes", json={"volume": {"size": 1, "name": name}})
    assert r.status_code == 202, r.text
    volume_id = r.json()["volume"]["id"]
    wait_volume(cinder, token, volume_id, "available")
    try:
        # The real CLI, as demo, mounting the volume by name.
        env = keystone.cli_env("demo")
        cname = unique("writer")
        run = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "openstack"), "appcontainer", "run", "--name", cname,
             "--mount", f"source={name},destination=/data", IMAGE, "/bin/sh", "-c",
             f"echo kept-in-cinder > /data/f && echo written && {SLEEP}"],
            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stderr
        writer = demo.wait_status(cname, "Running", timeout=120)
        wait_logs(demo, writer["uuid"], "written")
        assert volume_status(cinder, token, volume_id) == "in-use"
        [mount] = demo.get(writer["uuid"]).json()["mounts"]
        assert mount["volume_id"] == volume_id and not mount["auto_remove"]
        delete(demo, writer["uuid"])
        wait_volume(cinder, token, volume_id, "available")
        # The next container reads it back, by uuid.
        reader = create(demo, {"name": unique("reader"), "command": [
            "/bin/sh", "-c", f"cat /data/f; {SLEEP}"],
            "mounts": [{"source": volume_id, "destination": "/data"}]})
        demo.wait_status(reader["uuid"], "Running", timeout=120)
        wait_logs(demo, reader["uuid"], "kept-in-cinder")
        delete(demo, reader["uuid"])
        wait_volume(cinder, token, volume_id, "available")
    finally:
        cinder_call(cinder, token, "DELETE", f"/volumes/{volume_id}")


def test_a_sized_cinder_volume_bounds_writes_and_goes_with_its_container(cinder, tokens, demo):
    c = create(demo, {"name": unique("sized"), "mounts": [{"size": 1, "destination": "/data"}],
                     "command": ["/bin/sh", "-c",
                                 "dd if=/dev/zero of=/data/big bs=1M count=2048; echo rc=$?; "
                                 f"echo done; {SLEEP}"]})
    demo.wait_status(c["uuid"], "Running", timeout=120)
    logs = wait_logs(demo, c["uuid"], "done", timeout=300)
    assert "No space left on device" in logs and "rc=1" in logs, logs
    [mount] = demo.get(c["uuid"]).json()["mounts"]
    assert mount["auto_remove"] and mount["size"] == 1
    assert volume_status(cinder, tokens["demo"], mount["volume_id"]) == "in-use"
    delete(demo, c["uuid"])
    wait_volume(cinder, tokens["demo"], mount["volume_id"], None)


def test_another_projects_cinder_volume_is_not_found(cinder, tokens, alt):
    token = tokens["demo"]
    r = cinder_call(cinder, token, "POST", "/volumes", json={"volume": {"size": 1}})
    volume_id = r.json()["volume"]["id"]
    try:
        wait_volume(cinder, token, volume_id, "available")
        r = alt.http("POST", "/v1/containers", json={
            "image": IMAGE, "mounts": [{"source": volume_id, "destination": "/d"}]})
        assert_error(r, 404, "volume-not-found", f"Volume {volume_id} could not be found.")
        r = alt.http("POST", "/v1/containers", json={
            "image": IMAGE, "mounts": [{"source": unique("nosuch"), "destination": "/d"}]})
        assert r.status_code == 404, r.text
    finally:
        cinder_call(cinder, token, "DELETE", f"/volumes/{volume_id}")


def test_zund_killed_during_cinder_creates_formats_nothing_twice_and_leaks_nothing(
        cinder, tokens, demo, zc):
    token = tokens["demo"]
    # A volume filled with data first; its checksum must survive.
    r = cinder_call(cinder, token, "POST", "/volumes", json={"volume": {"size": 1}})
    filled = r.json()["volume"]["id"]
    wait_volume(cinder, token, filled, "available")
    try:
        writer = create(demo, {"name": unique("fill"), "command": [
            "/bin/sh", "-c",
            f"dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null; md5sum /data/blob; {SLEEP}"],
            "mounts": [{"source": filled, "destination": "/data"}]})
        demo.wait_status(writer["uuid"], "Running", timeout=120)
        checksum = wait_logs(demo, writer["uuid"], "/data/blob").split()[0]
        delete(demo, writer["uuid"])
        # Five volume-backed creates and one naming the filled volume; the
        # whole process (API and agent) SIGKILLed while they run.
        made = [create(demo, {"name": unique("burst"), "command": ["/bin/sh", "-c", SLEEP],
                             "mounts": [{"size": 1, "destination": "/data"}]})
                for _ in range(5)]
        made.append(create(demo, {"name": unique("reuse"), "command": [
            "/bin/sh", "-c", f"md5sum /data/blob; {SLEEP}"],
            "mounts": [{"source": filled, "destination": "/data"}]}))
        time.sleep(1.0)
        process = zc.processes[-1]
        process.kill()
        process.start()
        zc.wait_ready()
        for c in made:
            demo.wait_status(c["uuid"], "Running", timeout=180)
        assert checksum in wait_logs(demo, made[-1]["uuid"], "/data/blob")
        sized = [demo.get(c["uuid"]).json()["mounts"][0]["volume_id"] for c in made[:-1]]
        for c in made:
            delete(demo, c["uuid"])
        # Every volume made for a container is gone from Cinder; the filled
        # one is free again; nothing of them is left on the host.
        for volume_id in sized:
            wait_volume(cinder, token, volume_id, None)
        wait_volume(cinder, token, filled, "available")
        base = str(zc.data_dir)
        with open("/proc/self/mountinfo") as table:
            left = [line.split(" ")[4] for line in table if f" {base}/" in line]
        assert not left, left
        # rbd-fuse exits by itself once its mount is gone.
        deadline = time.monotonic() + 15
        while (fuse := subprocess.run(["pgrep", "-a", "rbd-fuse"], capture_output=True,
                                      text=True).stdout.strip()):
            assert time.monotonic() < deadline, f"rbd-fuse left running: {fuse}"
            time.sleep(0.3)
    finally:
        cinder_call(cinder, token, "DELETE", f"/volumes/{filled}")

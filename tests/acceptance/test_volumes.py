"""Volumes (issue 13): the `mounts` of a create with the local driver,
through the real CLI and the real engine.

A local volume is an ext4 image of its size on a loop device under the
agent's data dir (`volumes/local/<uuid>.img`, mounted at `<uuid>/`); an
injected file (`type=bind`) is written under `volumes/files/<container>/`
and bound read-only. Upstream's shapes: /work/shared/reference/zun-api.md
§4.2 (`mounts`); errors as upstream's (VolumeNotFound 404, VolumeInUse 400,
Base64Exception 400, schema errors).
"""

from __future__ import annotations

import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from conftest import IMAGE, MAX_VERSION, ZunAllInOne, _make

V = MAX_VERSION
SLEEP = "sleep 300"


@pytest.fixture(scope="module")
def zun(engine_cleanup, tmp_path_factory, log_dir):
    """An all-in-one of its own: a project whose quota the session's other
    tests have not used up."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "vol")
    try:
        z.start()
        yield z
    finally:
        z.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


def mount_points() -> list[str]:
    return [line.split(" ")[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def local_dir(zun) -> Path:
    return Path(zun.data_dir) / "volumes" / "local"


def wait_logs(zun, ident: str, needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        r = zun.http("GET", f"/v1/containers/{ident}/logs", version=V)
        if r.status_code == 200:
            text = r.json()
            if needle in text:
                return text
        time.sleep(0.3)
    pytest.fail(f"{needle!r} not in the logs of {ident} within {timeout}s: {text!r}")


def run_cli(zun, name: str, mounts: list[str], script: str) -> dict:
    args = ["appcontainer", "run", "--name", name]
    for m in mounts:
        args += ["--mount", m]
    rc, out, err = zun.openstack(*args, IMAGE, "/bin/sh", "-c", script)
    assert rc == 0, f"run -> {rc}\n{out}\n{err}"
    return zun.wait_status(name, "Running", timeout=60)


def delete_cli(zun, ident: str) -> None:
    rc, out, err = zun.openstack("appcontainer", "delete", "--stop", ident)
    assert rc == 0, f"delete -> {rc}\n{out}\n{err}"
    zun.wait_gone(ident, timeout=60)


def test_a_named_volume_keeps_data_for_the_next_container(zun):
    volume = unique("vol")
    first = run_cli(zun, unique("writer"), [f"source={volume},destination=/data"],
                    f"echo kept-by-{volume} > /data/f && echo written && {SLEEP}")
    wait_logs(zun, first["uuid"], "written")
    view = zun.get(first["uuid"]).json()
    [mount] = view["mounts"]
    assert mount["type"] == "volume" and mount["source"] == volume, view["mounts"]
    assert mount["destination"] == "/data" and mount["size"] == 1 and not mount["auto_remove"]
    vol_uuid = mount["volume_id"]
    assert str(local_dir(zun) / vol_uuid) in mount_points()
    # In use: a second container may not have it meanwhile.
    r = zun.http("POST", "/v1/containers", version=V,
                 json={"image": IMAGE, "mounts": [{"source": volume, "destination": "/d"}]})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "container.volume-in-use"
    assert r.json()["errors"][0]["detail"] == f"Volume {vol_uuid} is still in use."
    delete_cli(zun, first["uuid"])
    # Kept (Zun did not make it for that container alone), detached.
    assert (local_dir(zun) / f"{vol_uuid}.img").exists()
    assert str(local_dir(zun) / vol_uuid) not in mount_points()
    # By name and by uuid, the next container reads what the first wrote.
    for source in (volume, vol_uuid):
        reader = run_cli(zun, unique("reader"), [f"source={source},destination=/srv"],
                         f"cat /srv/f && {SLEEP}")
        wait_logs(zun, reader["uuid"], f"kept-by-{volume}")
        assert zun.get(reader["uuid"]).json()["mounts"][0]["volume_id"] == vol_uuid
        delete_cli(zun, reader["uuid"])


def test_a_sized_volume_bounds_writes_and_goes_with_its_container(zun):
    c = run_cli(zun, unique("sized"), ["size=1,destination=/data"],
                "dd if=/dev/zero of=/data/big bs=1M count=2048; echo rc=$?; "
                f"df -k /data | tail -1; echo done; {SLEEP}")
    logs = wait_logs(zun, c["uuid"], "done", timeout=120)
    assert "No space left on device" in logs and "rc=1" in logs, logs
    # df: about 1 GiB in all (ext4 keeps a little for itself).
    total_kib = int(logs.split("done")[0].strip().splitlines()[-1].split()[1])
    assert 900 * 1024 < total_kib <= 1024 * 1024, logs
    [mount] = zun.get(c["uuid"]).json()["mounts"]
    assert mount["size"] == 1 and mount["auto_remove"] and mount["source"] == mount["volume_id"]
    image = local_dir(zun) / f"{mount['volume_id']}.img"
    assert image.exists()
    delete_cli(zun, c["uuid"])
    assert not image.exists()
    assert not (local_dir(zun) / mount["volume_id"]).exists()


def test_an_injected_file_is_there_read_only(zun, tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("listen = 8080\nname = injected\n")
    c = run_cli(zun, unique("inject"), [f"type=bind,source={conf},destination=/etc/app.conf"],
                f"cat /etc/app.conf; echo x >> /etc/app.conf || echo refused; {SLEEP}")
    logs = wait_logs(zun, c["uuid"], "refused")
    assert "listen = 8080\nname = injected\n" in logs, logs
    view = zun.get(c["uuid"]).json()
    assert view["mounts"] == [{"type": "bind", "destination": "/etc/app.conf"}]
    files = Path(zun.data_dir) / "volumes" / "files" / c["uuid"]
    assert files.is_dir()
    delete_cli(zun, c["uuid"])
    assert not files.exists()


def assert_error(r, status: int, code: str, detail_part: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["errors"][0]
    assert err["code"] == f"container.{code}", err
    assert detail_part in err["detail"], err


@pytest.mark.parametrize("mounts,status,code,detail", [
    ([{"source": "v"}], 400, "schema-validation-error", "is not valid under any of the given schemas"),
    ([{"size": 1}], 400, "schema-validation-error", "is not valid under any of the given schemas"),
    ([{"source": "v", "size": 1, "destination": "/d"}], 400, "invalid", "not both"),
    ([{"size": 0, "destination": "/d"}], 400, "schema-validation-error", "less than the minimum of 1"),
    ([{"size": 100000, "destination": "/d"}], 400, "schema-validation-error", "greater than the maximum"),
    ([{"type": "bind", "source": "not base64!", "destination": "/f"}], 400, "base-64-exception",
     "Invalid Base 64 file data"),
    ([{"source": str(uuidlib.uuid4()), "destination": "/d"}], 404, "volume-not-found", "could not be found."),
    ([{"source": "v", "destination": "relative"}], 400, "invalid", "absolute path"),
    ([{"source": "v", "destination": "/d"}, {"size": 1, "destination": "/d"}], 400, "invalid",
     "used more than once"),
    ([{"source": "v", "destination": "/d", "readonly": True}], 400, "schema-validation-error",
     "'readonly' was unexpected"),
], ids=["no-destination", "size-no-destination", "source-and-size", "size-0", "size-too-large",
        "bad-base64", "unknown-volume", "relative", "same-destination", "unknown-key"])
def test_bad_mounts_are_refused_with_upstreams_errors(zun, mounts, status, code, detail):
    name = unique("bad")
    r = zun.http("POST", "/v1/containers", version=V,
                 json={"image": IMAGE, "name": name, "mounts": mounts})
    assert_error(r, status, code, detail)
    assert zun.get(name).status_code == 404


def test_mounts_need_1_11(zun):
    r = zun.http("POST", "/v1/containers", version="1.10",
                 json={"image": IMAGE, "mounts": [{"size": 1, "destination": "/d"}]})
    assert_error(r, 400, "invalid-param-in-version", "mounts is only supported from version 1.11")


def test_agent_killed_during_volume_creates_loses_and_leaks_nothing(zun_split):
    zun = zun_split
    # A volume filled with data first; its checksum must survive.
    filled = unique("filled")
    writer = zun.create({"name": unique("fill"), "mounts": [{"source": filled, "destination": "/data"}],
                         "command": ["/bin/sh", "-c",
                                     "dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null; "
                                     f"md5sum /data/blob; {SLEEP}"]}, run=True)
    zun.wait_status(writer["uuid"], "Running", timeout=60)
    checksum = wait_logs(zun, writer["uuid"], "/data/blob").split()[0]
    zun.http("DELETE", f"/v1/containers/{writer['uuid']}", version=V, params={"stop": "true"})
    zun.wait_gone(writer["uuid"], timeout=60)
    # Ten volume-backed creates, the agent killed while they run.
    made = [zun.create({"name": unique("burst"), "mounts": [{"size": 1, "destination": "/data"}],
                        "command": ["/bin/sh", "-c", SLEEP]}, run=True) for _ in range(9)]
    made.append(zun.create({"name": unique("reuse"),
                            "mounts": [{"source": filled, "destination": "/data"}],
                            "command": ["/bin/sh", "-c", f"md5sum /data/blob; {SLEEP}"]}, run=True))
    time.sleep(0.3)
    zun.kill_compute()
    zun.restart_compute()
    zun.wait_host_registered()
    for c in made:
        zun.wait_status(c["uuid"], "Running", timeout=120)
    assert checksum in wait_logs(zun, made[-1]["uuid"], "/data/blob")
    volumes = {zun.get(c["uuid"]).json()["mounts"][0]["volume_id"] for c in made}
    assert len(volumes) == 10
    for c in made:
        zun.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
    for c in made:
        zun.wait_gone(c["uuid"], timeout=60)
    # Nothing mounted, nothing of the sized volumes left; the named one kept.
    root = local_dir(zun)
    assert not [p for p in mount_points() if p.startswith(str(root))]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(root) not in loops, loops
    left = sorted(p.name for p in root.iterdir())
    [kept] = [v for v in volumes if (root / f"{v}.img").exists()]
    assert left == [f"{kept}.img"], left


def test_named_volumes_are_listed_and_deleted_once_free(zun):
    volume = unique("listed")
    c = zun.create({"name": unique("holder"), "command": ["sleep", "300"],
                    "mounts": [{"source": volume, "destination": "/data"}]}, run=True)
    zun.wait_status(c["uuid"], "Running", timeout=60)
    listed = zun.http("GET", "/v1/volumes", version=V)
    assert listed.status_code == 200, listed.text
    [row] = [v for v in listed.json()["volumes"] if v["name"] == volume]
    assert row["size"] == 1 and row["driver"] == "local" and row["container_uuid"] == c["uuid"]
    assert row["host"] == zun.host_name  # an admin sees the host
    assert zun.http("GET", f"/v1/volumes/{volume}", version=V).json()["uuid"] == row["uuid"]
    r = zun.http("DELETE", f"/v1/volumes/{volume}", version=V)
    assert_error(r, 400, "volume-in-use", f"Volume {row['uuid']} is still in use.")
    zun.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
    zun.wait_gone(c["uuid"], timeout=60)
    assert zun.http("GET", f"/v1/volumes/{row['uuid']}", version=V).json()["container_uuid"] is None
    image = local_dir(zun) / f"{row['uuid']}.img"
    assert image.exists()
    r = zun.http("DELETE", f"/v1/volumes/{row['uuid']}", version=V)
    assert r.status_code == 204 and r.content == b"", r.text
    assert_error(zun.http("GET", f"/v1/volumes/{volume}", version=V), 404, "volume-not-found",
                 f"Volume {volume} could not be found.")
    # The host's agent removes the data at its next resync.
    deadline = time.monotonic() + 30
    while image.exists():
        assert time.monotonic() < deadline, "the deleted volume's data is still on the host"
        time.sleep(0.5)

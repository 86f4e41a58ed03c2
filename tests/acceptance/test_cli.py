"""The real `openstack appcontainer` CLI (python-zunclient 5.4.0 on
python-openstackclient 9.0.0, no Keystone: --os-auth-type none --os-endpoint
http://127.0.0.1:PORT/v1) against `zund all-in-one`, checking both what the CLI
prints and what the Docker engine really holds.

The tests run in file order on one container ("web", later renamed); each
test first waits for the state it needs, so one failure does not hide the rest.
Note the CLI's action commands (start, stop, ...) print their failures and
still exit 0, so the printed text is asserted, not only the exit code.
"""

from __future__ import annotations

import time
import uuid as uuidlib

import pytest

from conftest import IMAGE

MiB = 1024 * 1024
SCRIPT = "trap 'exit 0' TERM; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
COMMAND = ["/bin/sh", "-c", SCRIPT]

state: dict = {}


def suffix() -> str:
    return uuidlib.uuid4().hex[:6]


@pytest.fixture(scope="module")
def web(zun):
    """Runs `appcontainer run` once; later tests use its uuid and current name."""
    name = f"web-{suffix()}"
    data = zun.openstack_json("appcontainer", "run", "-f", "json", "--name", name,
                              "--cpu", "0.5", "--memory", "128", IMAGE, *COMMAND)
    state["uuid"] = data["uuid"]
    state["name"] = name
    state["run_output"] = data
    return state


def engine(zun, uuid: str) -> dict:
    info = zun.inspect(uuid)
    assert info is not None, f"engine has no container zun-{uuid}"
    return info


def accepted(zun, verb: str, *args: str, expect: str) -> str:
    rc, out, err = zun.openstack("appcontainer", verb, *args)
    assert rc == 0, f"appcontainer {verb} {args}: rc {rc}\n{out}\n{err}"
    assert expect in out, f"appcontainer {verb} {args} printed {out!r} (stderr {err!r})"
    return out


def test_run(zun, web):
    data = web["run_output"]
    assert data["name"] == web["name"]
    assert data["image"] == IMAGE
    assert data["command"] == COMMAND
    assert data["memory"] == "128"
    assert float(data["cpu"]) == 0.5
    assert data["status"] in {"Creating", "Created", "Running"}
    uuid = web["uuid"]
    assert uuidlib.UUID(uuid)
    zun.wait_status(uuid, "Running")
    info = engine(zun, uuid)
    assert info["Name"] == f"/zun-{uuid}"
    assert info["Config"]["Labels"].get("zun.uuid") == uuid
    assert info["State"]["Running"] is True
    assert info["Config"]["Cmd"] == COMMAND
    assert info["HostConfig"]["Memory"] == 128 * MiB
    assert info["HostConfig"]["NanoCpus"] == 500_000_000


def test_list(zun, web):
    rows = zun.openstack_json("appcontainer", "list", "-f", "json")
    mine = [r for r in rows if r["uuid"] == web["uuid"]]
    assert len(mine) == 1, rows
    row = mine[0]
    assert set(row) == {"uuid", "name", "image", "status", "task_state", "addresses", "ports"}
    assert row["name"] == web["name"] and row["image"] == IMAGE
    assert row["status"] == "Running"
    rows = zun.openstack_json("appcontainer", "list", "-f", "json", "--name", web["name"])
    assert [r["uuid"] for r in rows] == [web["uuid"]]


def test_show(zun, web):
    for ident in (web["name"], web["uuid"]):
        data = zun.openstack_json("appcontainer", "show", "-f", "json", ident)
        assert data["uuid"] == web["uuid"]
        assert data["name"] == web["name"]
        assert data["status"] == "Running"
        assert data["memory"] == "128"
        assert data["host"] == zun.host_name
        assert data["project_id"] == zun.project_id
    rc, out, err = zun.openstack("appcontainer", "show", f"nope-{suffix()}")
    assert rc != 0
    assert "could not be found" in (out + err), (out, err)


def test_logs(zun, web):
    deadline = time.monotonic() + 10
    while True:
        rc, out, err = zun.openstack("appcontainer", "logs", web["name"])
        assert rc == 0, err
        if "tick-2" in out or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "tick-0" in out and "tick-1" in out and "tick-2" in out, out
    rc, out, err = zun.openstack("appcontainer", "logs", "--tail", "1", web["name"])
    assert rc == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tick-"), out


def test_stop(zun, web):
    zun.wait_status(web["uuid"], "Running")
    accepted(zun, "stop", web["name"],
             expect=f"Request to stop container {web['name']} has been accepted.")
    zun.wait_status(web["uuid"], "Stopped")
    info = engine(zun, web["uuid"])
    assert info["State"]["Running"] is False
    assert info["State"]["Status"] == "exited"


def test_start(zun, web):
    zun.wait_status(web["uuid"], "Stopped")
    accepted(zun, "start", web["name"],
             expect=f"Request to start container {web['name']} has been accepted")
    zun.wait_status(web["uuid"], "Running")
    assert engine(zun, web["uuid"])["State"]["Running"] is True
    # Starting a running container is refused with upstream's 409 text.
    out = accepted(zun, "start", web["name"], expect="Start for container")
    assert f"Cannot start container {web['uuid']} in Running state" in out, out


def test_restart(zun, web):
    zun.wait_status(web["uuid"], "Running")
    before = engine(zun, web["uuid"])["State"]["StartedAt"]
    accepted(zun, "restart", "--timeout", "5", web["name"],
             expect=f"Request to restart container {web['name']} has been accepted")
    deadline = time.monotonic() + 30
    while True:
        info = engine(zun, web["uuid"])
        if info["State"]["StartedAt"] != before and info["State"]["Running"]:
            break
        assert time.monotonic() < deadline, f"engine container not restarted: {info['State']}"
        time.sleep(0.2)
    zun.wait_status(web["uuid"], "Running")


def test_pause_unpause(zun, web):
    zun.wait_status(web["uuid"], "Running")
    accepted(zun, "pause", web["name"],
             expect=f"Request to pause container {web['name']} has been accepted")
    zun.wait_status(web["uuid"], "Paused")
    assert engine(zun, web["uuid"])["State"]["Paused"] is True
    out = accepted(zun, "pause", web["name"], expect="Pause for container")
    assert f"Cannot pause container {web['uuid']} in Paused state" in out, out

    accepted(zun, "unpause", web["name"],
             expect=f"Request to unpause container {web['name']} has been accepted")
    zun.wait_status(web["uuid"], "Running")
    info = engine(zun, web["uuid"])
    assert info["State"]["Paused"] is False and info["State"]["Running"] is True
    out = accepted(zun, "unpause", web["name"], expect="unpause for container")
    assert f"Cannot unpause container {web['uuid']} in Running state" in out, out


def test_kill(zun, web):
    zun.wait_status(web["uuid"], "Running")
    accepted(zun, "kill", web["name"],
             expect=f"Request to send kill signal to container {web['name']} has been accepted")
    zun.wait_status(web["uuid"], "Stopped")
    info = engine(zun, web["uuid"])
    assert info["State"]["Running"] is False
    assert info["State"]["ExitCode"] == 137, info["State"]


def test_rename(zun, web):
    new = f"web2-{suffix()}"
    data = zun.openstack_json("appcontainer", "set", "-f", "json", "--name", new, web["name"])
    assert data["name"] == new and data["uuid"] == web["uuid"]
    old = web["name"]
    web["name"] = new
    assert zun.openstack_json("appcontainer", "show", "-f", "json", new)["uuid"] == web["uuid"]
    rc, out, err = zun.openstack("appcontainer", "show", old)
    assert rc != 0 and "could not be found" in (out + err), (out, err)
    # Engine-side names never change.
    assert engine(zun, web["uuid"])["Name"] == f"/zun-{web['uuid']}"


def test_update(zun, web):
    zun.wait_status(web["uuid"], {"Stopped", "Running"})
    if zun.get(web["uuid"]).json()["status"] != "Running":
        accepted(zun, "start", web["name"], expect="has been accepted")
        zun.wait_status(web["uuid"], "Running")
    data = zun.openstack_json("appcontainer", "set", "-f", "json", "--cpu", "1.5",
                              "--memory", "256", web["name"])
    assert data["memory"] == "256", data
    assert float(data["cpu"]) == 1.5, data
    shown = zun.get(web["uuid"]).json()
    assert shown["memory"] == "256" and shown["cpu"] == 1.5, shown
    info = engine(zun, web["uuid"])
    assert info["HostConfig"]["Memory"] == 256 * MiB, info["HostConfig"]["Memory"]
    assert info["HostConfig"]["NanoCpus"] == 1_500_000_000, info["HostConfig"]["NanoCpus"]
    assert info["State"]["Running"] is True


def test_action_list(zun, web):
    rows = zun.openstack_json("appcontainer", "action", "list", "-f", "json", web["name"])
    actions = [r["action"] for r in rows]
    for expected in ["create", "stop", "start", "reboot", "pause", "unpause", "kill"]:
        assert expected in actions, actions
    assert all(r["container_uuid"] == web["uuid"] for r in rows)


def test_delete(zun, web):
    uuid = web["uuid"]
    zun.wait_status(uuid, {"Running", "Stopped"})
    if zun.get(uuid).json()["status"] == "Running":
        out = accepted(zun, "delete", web["name"], expect="Delete for container")
        assert f"Cannot delete container {uuid} in Running state" in out, out
        accepted(zun, "stop", web["name"], expect="has been accepted")
        zun.wait_status(uuid, "Stopped")
    accepted(zun, "delete", web["name"],
             expect=f"Request to delete container {web['name']} has been accepted.")
    zun.wait_gone(uuid)
    assert zun.inspect(uuid) is None, "engine still has the deleted container"
    rows = zun.openstack_json("appcontainer", "list", "-f", "json")
    assert uuid not in [r["uuid"] for r in rows]


def test_delete_force(zun):
    name = f"doomed-{suffix()}"
    data = zun.openstack_json("appcontainer", "run", "-f", "json", "--name", name, IMAGE, *COMMAND)
    uuid = data["uuid"]
    zun.wait_status(uuid, "Running")
    assert engine(zun, uuid)["State"]["Running"] is True
    accepted(zun, "delete", "--force", name,
             expect=f"Request to delete container {name} has been accepted.")
    zun.wait_gone(uuid)
    assert zun.inspect(uuid) is None, "engine still has the force-deleted container"


def test_delete_stop(zun):
    name = f"stopdel-{suffix()}"
    data = zun.openstack_json("appcontainer", "run", "-f", "json", "--name", name, IMAGE, *COMMAND)
    uuid = data["uuid"]
    zun.wait_status(uuid, "Running")
    accepted(zun, "delete", "--stop", name,
             expect=f"Request to delete container {name} has been accepted.")
    zun.wait_gone(uuid)
    assert zun.inspect(uuid) is None, "engine still has the deleted container"


def test_cli_sends_latest_microversion(zun):
    """The client discovers 1.40 from GET / and the server echoes it."""
    rc, out, err = zun.openstack("--debug", "appcontainer", "list")
    assert rc == 0, err
    assert "OpenStack-API-Version: container 1.40" in err, err[-3000:]

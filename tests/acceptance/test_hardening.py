"""What every container gets on a host, whatever its record says (issue 15,
first part): a PID limit (`[compute] pids_limit`, default 4096) so a fork
bomb stops inside its container, `no-new-privileges`, a capability set
without NET_RAW, MKNOD, AUDIT_WRITE and SETFCAP (`[compute]
drop_capabilities`), a log rotated at 3 × 10 MiB (`log_max_size`,
`log_max_files`), and a memory bomb shown as OOM-killed. Real engine."""

from __future__ import annotations

import time
import uuid as uuidlib

import pytest

from conftest import MAX_VERSION, ZunAllInOne, _make

V = MAX_VERSION
LIMIT = 100


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def small(engine_cleanup, tmp_path_factory, log_dir):
    """An all-in-one whose containers may have at most LIMIT processes (the
    default, 4096, would make the bomb cost the test machine hundreds of
    MiB)."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "pids")
    z.config_file = z.data_dir / "zun.toml"
    z.config_file.write_text(f"[compute]\npids_limit = {LIMIT}\n")
    try:
        z.start()
        yield z
    finally:
        z.stop()


def test_containers_get_the_default_pid_limit_and_no_new_privileges(zun):
    c = zun.create({"name": unique("hard"), "command": ["sleep", "300"]}, run=True)
    zun.wait_status(c["uuid"], "Running")
    hc = zun.inspect(c["uuid"])["HostConfig"]
    assert hc["PidsLimit"] == 4096, hc["PidsLimit"]
    assert hc["SecurityOpt"] == ["no-new-privileges:true"], hc["SecurityOpt"]
    r = zun.http("POST", f"/v1/containers/{c['uuid']}/execute", version=V,
                 params={"command": "grep NoNewPrivs /proc/self/status", "run": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["output"].split() == ["NoNewPrivs:", "1"], r.json()
    zun.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
    zun.wait_gone(c["uuid"])


def execute(zun, uuid: str, command: str) -> dict:
    r = zun.http("POST", f"/v1/containers/{uuid}/execute", version=V,
                 params={"command": command, "run": "true"})
    assert r.status_code == 200, r.text
    return r.json()


# Bits of the capabilities dropped by default (linux/capability.h).
DROPPED = {"NET_RAW": 13, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
KEPT = {"CHOWN": 0, "NET_BIND_SERVICE": 10, "SETUID": 7}


def test_containers_lose_the_capabilities_a_tenant_does_not_need(zun):
    a = zun.create({"name": unique("caps"), "command": ["sleep", "300"]}, run=True)
    b = zun.create({"name": unique("caps-peer"), "command": ["sleep", "300"]}, run=True)
    a, b = (zun.wait_status(c["uuid"], "Running") for c in (a, b))
    try:
        hc = zun.inspect(a["uuid"])["HostConfig"]
        assert sorted(hc["CapDrop"]) == sorted(DROPPED), hc["CapDrop"]
        line = execute(zun, a["uuid"], "grep CapEff /proc/self/status")["output"].split()
        effective = int(line[1], 16)
        for name, bit in DROPPED.items():
            assert not effective & (1 << bit), f"{name} is still effective: {line}"
        for name, bit in KEPT.items():
            assert effective & (1 << bit), f"{name} was dropped: {line}"
        made = execute(zun, a["uuid"], "mknod /tmp/null c 1 3")
        assert made["exit_code"] != 0 and "Operation not permitted" in made["output"], made
        # No raw socket (the test image's busybox ping opens one)...
        [(_, [port])] = b["addresses"].items()
        pinged = execute(zun, a["uuid"], f"ping -c 1 -W 5 {port['addr']}")
        assert pinged["exit_code"] != 0 and "permission denied" in pinged["output"], pinged
        # ...but ICMP echo sockets, which iputils' ping uses without
        # NET_RAW, are open to every group inside the container's network.
        groups = execute(zun, a["uuid"], "cat /proc/sys/net/ipv4/ping_group_range")
        assert groups["output"].split() == ["0", "2147483647"], groups
    finally:
        for c in (a, b):
            zun.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
        for c in (a, b):
            zun.wait_gone(c["uuid"])


def test_a_containers_log_is_bounded(zun):
    c = zun.create({"name": unique("logs"), "command": ["sleep", "300"]}, run=True)
    zun.wait_status(c["uuid"], "Running")
    log_config = zun.inspect(c["uuid"])["HostConfig"]["LogConfig"]
    assert log_config == {"Type": "json-file",
                          "Config": {"max-size": "10m", "max-file": "3"}}, log_config
    zun.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
    zun.wait_gone(c["uuid"])


def test_a_memory_bomb_is_oom_killed_and_shown_as_such(zun):
    bomb = zun.create({"name": unique("membomb"), "memory": 16, "command": [
        "/bin/sh", "-c", "x=0123456789; while true; do x=$x$x; done"]}, run=True)
    view = zun.wait_status(bomb["uuid"], "Stopped", timeout=60)
    deadline = time.monotonic() + 15
    while "OOM-killed" not in (view.get("status_reason") or ""):
        assert time.monotonic() < deadline, view
        time.sleep(0.3)
        view = zun.get(bomb["uuid"]).json()
    assert view["status_reason"] == (
        "OOM-killed: the container used all of its memory limit (16 MiB)"), view
    assert zun.inspect(bomb["uuid"])["State"]["OOMKilled"] is True
    zun.http("DELETE", f"/v1/containers/{bomb['uuid']}", version=V)
    zun.wait_gone(bomb["uuid"])


def test_a_fork_bomb_stops_at_its_containers_limit(small):
    neighbour = small.create({"name": unique("neighbour"), "command": ["sleep", "300"]}, run=True)
    bomb = small.create({"name": unique("bomb"), "command": [
        "/bin/sh", "-c",
        "(n=0; while [ $n -lt 5000 ]; do sleep 300 & n=$((n+1)); done); "
        "echo bomb-stopped; exec sleep 300"]}, run=True)
    for c in (neighbour, bomb):
        small.wait_status(c["uuid"], "Running")
    deadline = time.monotonic() + 60
    logs = ""
    while "bomb-stopped" not in logs:
        assert time.monotonic() < deadline, f"the bomb did not stop: {logs!r}"
        logs = small.http("GET", f"/v1/containers/{bomb['uuid']}/logs", version=V).json()
        time.sleep(0.5)
    # The shell's complaint is on stderr, which the engine may log a moment
    # after stdout's line.
    deadline = time.monotonic() + 15
    while "can't fork" not in logs:
        assert time.monotonic() < deadline, logs
        time.sleep(0.5)
        logs = small.http("GET", f"/v1/containers/{bomb['uuid']}/logs", version=V).json()
    # At most LIMIT processes in it (top reads them from the host's side).
    top = small.http("GET", f"/v1/containers/{bomb['uuid']}/top", version=V)
    assert top.status_code == 200, top.text
    assert 10 < len(top.json()["Processes"]) <= LIMIT, len(top.json()["Processes"])
    # The neighbour and the service keep answering.
    r = small.http("POST", f"/v1/containers/{neighbour['uuid']}/execute", version=V,
                   params={"command": "echo alive", "run": "true"})
    assert r.status_code == 200 and r.json()["output"].strip() == "alive", r.text
    for c in (neighbour, bomb):
        small.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
    for c in (neighbour, bomb):
        small.wait_gone(c["uuid"], timeout=60)

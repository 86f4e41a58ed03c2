"""What every container gets on a host, whatever its record says (issue 15,
first part): a PID limit (`[compute] pids_limit`, default 4096) so a fork
bomb stops inside its container, and `no-new-privileges`. Real engine."""

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

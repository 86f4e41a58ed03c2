"""What is done to containers behind the service's back, on the real engine,
is reported through the API (the agent follows the engine's events and
re-lists every 10 s)."""

from __future__ import annotations

import time
import uuid as uuidlib

from conftest import IMAGE, engine_zun_containers

LOOP = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
# Events arrive at once; the periodic re-list (10 s) is the fallback.
NOTICE_S = 25


def running(zun, **extra) -> dict:
    view = zun.create({"command": LOOP, **extra}, run=True)
    return zun.wait_status(view["uuid"], "Running")


def test_container_removed_behind_our_back_is_reported_as_error(zun):
    view = running(zun)
    rc, _, err = zun.docker("rm", "-f", f"zun-{view['uuid']}")
    assert rc == 0, err
    now = zun.wait_status(view["uuid"], "Error", timeout=NOTICE_S)
    assert "removed outside the container service" in (now["status_reason"] or ""), now
    # It can still be deleted through the API.
    r = zun.http("DELETE", f"/v1/containers/{view['uuid']}", version="1.40")
    assert r.status_code == 204, r.text
    zun.wait_gone(view["uuid"])


def test_container_removed_behind_our_back_with_restart_always_comes_back(zun):
    view = running(zun, restart_policy={"Name": "always"})
    before = zun.inspect(view["uuid"])
    assert before is not None
    rc, _, err = zun.docker("rm", "-f", f"zun-{view['uuid']}")
    assert rc == 0, err
    deadline = time.monotonic() + NOTICE_S
    while True:
        after = zun.inspect(view["uuid"])
        if after is not None and after["Id"] != before["Id"] and after["State"]["Running"]:
            break
        assert time.monotonic() < deadline, "not re-created as its restart policy says"
        time.sleep(0.2)
    zun.wait_status(view["uuid"], "Running")


def test_container_stopped_behind_our_back_shows_stopped(zun):
    view = running(zun)
    rc, _, err = zun.docker("stop", "-t", "1", f"zun-{view['uuid']}")
    assert rc == 0, err
    now = zun.wait_status(view["uuid"], "Stopped", timeout=NOTICE_S)
    assert now["status_detail"].startswith("Exited("), now


def test_engine_container_the_store_does_not_know_is_removed(zun):
    orphan = f"zun-{uuidlib.uuid4()}"
    rc, _, err = zun.docker("create", "--name", orphan, "--label", f"zun.host={zun.host_name}",
                            IMAGE, "sleep", "3600")
    assert rc == 0, err
    deadline = time.monotonic() + NOTICE_S
    while orphan in engine_zun_containers(zun.host_name).values():
        assert time.monotonic() < deadline, f"orphan {orphan} still in the engine"
        time.sleep(0.5)

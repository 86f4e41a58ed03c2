"""The compute agent killed with SIGKILL in the middle of 20 concurrent
`run=true` creates, then restarted (`zund api` + `zund compute` on one data dir).

After the restart, within RECOVERY_DEADLINE_S:
  * every container is Running or Error (none left Creating or in another
    transient status), and every Error carries a status_reason;
  * the store and the engine agree: the engine holds no `zun-` container of
    this host (label zun.host) the API does not list, and every container the
    API calls Running is running in the engine under `zun-<uuid>` with labels
    zun.uuid and zun.host.
"""

from __future__ import annotations

import subprocess
import threading
import time

from pathlib import Path

from conftest import IMAGE, engine_zun_containers

CONCURRENT_CREATES = 20
# Deadline, counted from the agent's restart, for every container to settle.
RECOVERY_DEADLINE_S = 60
# Kill the agent once this many of our containers exist in the engine (or
# after KILL_AFTER_S at the latest), so it dies with work half done.
KILL_WHEN_ENGINE_HAS = 1
KILL_AFTER_S = 10
SETTLED = {"Running", "Error"}
LOOP = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def test_agent_sigkill_during_concurrent_creates(zun_split):
    zun = zun_split
    host = zun.host_name

    results: list = [None] * CONCURRENT_CREATES
    barrier = threading.Barrier(CONCURRENT_CREATES)

    def create(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            r = zun.http("POST", "/v1/containers", version="1.40", params={"run": "true"},
                         json={"image": IMAGE, "name": f"crash-{i}", "command": LOOP})
            results[i] = (r.status_code, r.json() if r.content else None)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CONCURRENT_CREATES)]
    for t in threads:
        t.start()

    # Kill the agent while it works through the creates.
    started = time.monotonic()
    while time.monotonic() - started < KILL_AFTER_S:
        if len(engine_zun_containers(host)) >= KILL_WHEN_ENGINE_HAS:
            break
        time.sleep(0.01)
    zun.kill_compute()
    killed_with = len(engine_zun_containers(host))

    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads), "a create request hung"
    bad = [r for r in results if r is None or r[0] != 202]
    assert not bad, f"creates not accepted (the API must not need the agent): {bad}"
    uuids = {r[1]["uuid"] for r in results}
    assert len(uuids) == CONCURRENT_CREATES

    # The API keeps answering while the agent is dead.
    listed = zun.list_all()
    assert uuids <= {c["uuid"] for c in listed}

    zun.restart_compute()
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    while True:
        views = {c["uuid"]: c for c in zun.list_all() if c["uuid"] in uuids}
        unsettled = {u: v["status"] for u, v in views.items() if v["status"] not in SETTLED}
        if len(views) == CONCURRENT_CREATES and not unsettled:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(unsettled)} of {CONCURRENT_CREATES} containers not Running/Error "
                f"{RECOVERY_DEADLINE_S}s after the agent restarted (killed with {killed_with} "
                f"in the engine): {unsettled}; missing from the API: "
                f"{sorted(uuids - set(views))}")
        time.sleep(0.5)

    for uuid, view in views.items():
        if view["status"] == "Error":
            assert view["status_reason"], f"{uuid} is Error without a status_reason: {view}"

    # Let any cleanup the agent does on its own finish, then compare.
    time.sleep(2)
    views = {c["uuid"]: c for c in zun.list_all()}
    engine_now = engine_zun_containers(host)
    engine_uuids = {name[len("zun-"):] for name in engine_now.values()}
    unknown = engine_uuids - set(views)
    assert not unknown, f"engine holds zun- containers the store does not know: {sorted(unknown)}"
    assert len(engine_uuids) == len(engine_now), f"duplicate engine containers: {engine_now}"

    running = [u for u in uuids if views[u]["status"] == "Running"]
    for uuid in running:
        info = zun.inspect(uuid)
        assert info is not None, f"{uuid} is Running in the API but absent from the engine"
        assert info["State"]["Running"] is True, f"{uuid} Running in the API, engine: {info['State']}"
        assert info["Config"]["Labels"].get("zun.uuid") == uuid
        assert info["Config"]["Labels"].get("zun.host") == host
    print(f"killed with {killed_with} engine containers; after restart: {len(running)} Running, "
          f"{CONCURRENT_CREATES - len(running)} Error")

    # Every one of them can still be deleted through the API.
    for uuid in uuids:
        r = zun.http("DELETE", f"/v1/containers/{uuid}", version="1.40", params={"force": "True"})
        assert r.status_code == 204, f"force delete {uuid}: {r.status_code} {r.text}"
    for uuid in uuids:
        zun.wait_gone(uuid, timeout=60)
    leftover = set(engine_zun_containers(host).values())
    assert not leftover, f"engine still holds deleted containers: {leftover}"


def test_api_and_agent_start_together(make_split):
    """Started at the same moment on a fresh data dir, both processes come up
    (they must not race each other over creating the store) and serve."""
    for _ in range(3):
        zun = make_split()
        zun.start(together=True)
        view = zun.create({"name": "together", "command": LOOP}, run=True)
        zun.wait_status(view["uuid"], "Running", timeout=15)
        zun.assert_alive()
        zun.stop()


ENGINE_RESTART_CREATES = 10
# Creates have a 120 s deadline in the agent; in practice they settle a few
# seconds after the engine answers again.
ENGINE_RESTART_DEADLINE_S = 130
TRANSIENT = {"Creating", "Deleting", "Restarting", "Rebuilding"}


def test_engine_restarted_during_creates_leaves_nothing_transient(zun_split):
    """The engine (the project's dockerd) is stopped and started again while
    10 `run=true` creates are in flight: every container ends in a settled
    status, and the engine and the store agree."""
    zun = zun_split
    script = Path(__file__).resolve().parents[2] / "scripts" / "dockerd.sh"
    uuids = []
    for i in range(ENGINE_RESTART_CREATES):
        r = zun.http("POST", "/v1/containers", version="1.40", params={"run": "true"},
                     json={"image": IMAGE, "name": f"engine-{i}", "command": LOOP})
        assert r.status_code == 202, r.text
        uuids.append(r.json()["uuid"])
    subprocess.run(["bash", str(script), "stop"], check=True, timeout=120)
    subprocess.run(["bash", str(script), "start"], check=True, timeout=180,
                   stdout=subprocess.DEVNULL)

    deadline = time.monotonic() + ENGINE_RESTART_DEADLINE_S
    while True:
        views = {c["uuid"]: c for c in zun.list_all() if c["uuid"] in uuids}
        transient = {u: v["status"] for u, v in views.items()
                     if v["status"] in TRANSIENT or v["task_state"] is not None}
        if len(views) == len(uuids) and not transient:
            break
        assert time.monotonic() < deadline, f"still transient after the engine restart: {transient}"
        time.sleep(0.5)
    zun.assert_alive()
    for uuid, view in views.items():
        info = zun.inspect(uuid)
        if view["status"] == "Running":
            assert info is not None and info["State"]["Running"], (uuid, view, info)
        if view["status"] == "Error":
            assert view["status_reason"], view
    # The agent still works: a new container runs.
    fresh = zun.create({"command": LOOP}, run=True)
    zun.wait_status(fresh["uuid"], "Running", timeout=30)

"""Container networks under faults (issue 12), built-in driver: the agent
SIGKILLed while networked creates are in flight, a container deleted while its
network is set up, an agent restart, and what a crash between a delete's steps
leaves behind. `zund api` and `zund compute` run as two processes (noauth), so
the agent alone can be killed. Counted after each: the host's namespaces, veth
ends, state directories and anti-spoofing entries of the containers.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

from conftest import IMAGE, docker_cmd
from test_networks import (
    HTTPD,
    STATE_DIR,
    V,
    host_objects,
    ip_of,
    netns,
    port_ids,
    reaches_http,
)


CREATES = 20


def test_agent_killed_during_networked_creates_leaks_nothing(zun_split):
    zun = zun_split
    uuids = []
    for i in range(CREATES):
        r = zun.http("POST", "/v1/containers", version=V, params={"run": "true"},
                     json={"image": IMAGE, "name": f"netcrash-{i}", "command": HTTPD,
                           "cpu": 0.1, "memory": 64})
        assert r.status_code == 202, r.text
        uuids.append(r.json()["uuid"])
    # Kill the agent part way through.
    deadline = time.monotonic() + 30
    while not any(Path("/var/run/netns", netns(u)).exists() for u in uuids):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    zun.kill_compute()
    zun.compute.start()
    views = [zun.wait_status(u, {"Running", "Error"}, timeout=120) for u in uuids]
    running = [v for v in views if v["status"] == "Running"]
    assert running, [v["status_reason"] for v in views]
    ips = [ip_of(v) for v in running]
    assert len(set(ips)) == len(ips), "no address is handed out twice"
    # The restarted agent's containers talk (the last one's server may
    # still be starting when its container shows Running).
    deadline = time.monotonic() + 30
    while reaches_http(running[0]["uuid"], ip_of(running[-1])) is None:
        assert time.monotonic() < deadline, "the restarted agent's containers do not talk"
        time.sleep(0.5)
    for v in views:
        if v["status"] == "Error":
            assert v["status_reason"], v
    # A container deleted while its network is being set up.
    r = zun.http("POST", "/v1/containers", version=V, params={"run": "true"},
                 json={"image": IMAGE, "name": "netcrash-deleted", "command": HTTPD,
                       "cpu": 0.1, "memory": 64})
    assert r.status_code == 202, r.text
    doomed = r.json()["uuid"]
    r = zun.http("DELETE", f"/v1/containers/{doomed}", version=V, params={"force": "true"})
    assert r.status_code == 204, r.text
    uuids.append(doomed)
    for u in uuids:
        r = zun.http("DELETE", f"/v1/containers/{u}", version=V, params={"force": "true"})
        assert r.status_code in (204, 404), r.text
    for u in uuids:
        zun.wait_gone(u, timeout=120)
    ports = port_ids(*running)
    assert host_objects(uuids, zun.host_name, ports) == {"netns": [], "links": [], "state": [],
                                                        "nft": []}


def test_agent_restart_keeps_addresses_and_leftovers_are_collected(zun_split):
    zun = zun_split
    a = zun.create({"name": "keep-a", "command": HTTPD, "hostname": "keep-a"}, run=True)
    b = zun.create({"name": "keep-b", "command": HTTPD, "hostname": "keep-b"}, run=True)
    a, b = (zun.wait_status(v["uuid"], "Running") for v in (a, b))
    zun.restart_compute()
    zun.wait_host_registered()
    # Within the agent's first resyncs: in full CI runs on a loaded 2-core
    # machine this took longer than 15 s in 2 of 5 runs (never alone); the
    # cause is not found yet (issue 12's note), so the bound is 3 resyncs.
    deadline = time.monotonic() + 30
    while reaches_http(a["uuid"], ip_of(b)) != "keep-b":
        assert time.monotonic() < deadline, "containers do not talk after the agent restart"
        time.sleep(0.5)
    assert zun.get(a["uuid"]).json()["addresses"] == a["addresses"]
    # What a crash between a delete's steps leaves (a namespace and state
    # directory of a container the store no longer has) is removed by the
    # agent's next resync.
    ghost = str(uuidlib.uuid4())
    subprocess.run(["ip", "netns", "add", netns(ghost)], check=True)
    (STATE_DIR / zun.host_name / ghost).mkdir(parents=True)
    deadline = time.monotonic() + 30
    while host_objects([ghost], zun.host_name) != {"netns": [], "links": [], "state": [],
                                                   "nft": []}:
        assert time.monotonic() < deadline, host_objects([ghost], zun.host_name)
        time.sleep(0.5)
    # Nothing of the live containers was touched.
    assert reaches_http(a["uuid"], ip_of(b)) == "keep-b"


def wipe_like_a_reboot(zun, uuid: str) -> None:
    """What a reboot takes from a stopped container: everything under /run
    (its namespace, state directory and engine link)."""
    engine_id = docker_cmd("inspect", "-f", "{{.Id}}", f"zun-{uuid}").stdout.strip()
    subprocess.run(["ip", "netns", "del", netns(uuid)], check=True)
    shutil.rmtree(STATE_DIR / zun.host_name / uuid)
    Path("/run/zun/engine-netns", engine_id).unlink()


def own_address(uuid: str) -> str:
    return docker_cmd("exec", f"zun-{uuid}", "ip", "-4", "-o", "addr", "show", "dev",
                      "eth0").stdout


def test_a_network_gone_with_a_reboot_comes_back_on_start(zun_split):
    zun = zun_split
    peer = zun.create({"name": "boot-peer", "command": HTTPD, "hostname": "boot-peer"}, run=True)
    c = zun.create({"name": "boot", "command": HTTPD, "hostname": "boot"}, run=True)
    peer, c = (zun.wait_status(v["uuid"], "Running") for v in (peer, c))
    r = zun.http("POST", f"/v1/containers/{c['uuid']}/stop", version=V)
    assert r.status_code == 202, r.text
    zun.wait_status(c["uuid"], "Stopped")
    wipe_like_a_reboot(zun, c["uuid"])
    rc, _, err = zun.openstack("appcontainer", "start", c["uuid"])
    assert rc == 0, err
    view = zun.wait_status(c["uuid"], "Running")
    assert view["addresses"] == c["addresses"]
    assert f" {ip_of(c)}/" in own_address(c["uuid"])
    # See the agent-restart test: the bound is 3 resyncs.
    deadline = time.monotonic() + 30
    while reaches_http(peer["uuid"], ip_of(c)) != "boot":
        assert time.monotonic() < deadline, "the restarted container is not reachable"
        time.sleep(0.5)


def test_the_agent_restores_networks_when_it_starts(zun_split):
    """After a reboot the engine starts containers with a restart policy by
    itself: the agent, starting, makes their networks again first."""
    zun = zun_split
    c = zun.create({"name": "reboot", "command": HTTPD}, run=True)
    c = zun.wait_status(c["uuid"], "Running")
    zun.kill_compute()
    docker_cmd("stop", "-t", "1", f"zun-{c['uuid']}")
    wipe_like_a_reboot(zun, c["uuid"])
    zun.compute.start()
    deadline = time.monotonic() + 30
    while not Path("/var/run/netns", netns(c["uuid"])).exists():
        assert time.monotonic() < deadline, "the agent did not restore the namespace"
        time.sleep(0.2)
    # As the engine's restart manager would.
    assert docker_cmd("start", f"zun-{c['uuid']}").returncode == 0
    assert f" {ip_of(c)}/" in own_address(c["uuid"])

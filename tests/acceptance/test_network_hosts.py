"""Container networks across hosts (issue 12), built-in driver with VXLAN.

Two compute hosts, each a network namespace with its own dockerd
(scripts/hosts.sh), joined by an underlay bridge; their agents keep each
host's bridges in that namespace (`--network-host-netns`) and carry the
networks between hosts over VXLAN from their underlay address
(`--network-overlay-address`). One `zund api` on PostgreSQL validates tokens
with a real Keystone; demo and alt_demo (two Keystone projects) each put a
container on each host (one availability zone per host). Containers of one
project on different hosts reach each other; another project's, on either
host, do not.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from conftest import (
    IMAGE,
    KEEP_NET_RAW,
    ROOT,
    MAX_VERSION,
    Zun,
    ZundProcess,
    _OUR_HOSTS,
    free_port,
    network_pool,
)
from engine_hosts import EngineHosts
from keystone import KeystoneServer
from test_hosts import fresh_database
from test_keystone import Caller, keystone_toml

V = MAX_VERSION
KEYSTONE_DATA_DIR = Path(os.environ.get("ZUN_TEST_KEYSTONE_NETHOSTS_DATA_DIR")
                         or ROOT / ".data" / "keystone-acceptance-nethosts")
# httpd serving its hostname and a 256 KiB file (big enough to need full
# frames across the overlay).
HTTPD = ["/bin/sh", "-c",
         "mkdir -p /www && hostname > /www/index.html && "
         "dd if=/dev/zero of=/www/big bs=1024 count=256 2>/dev/null && "
         "exec httpd -f -p 8080 -h /www"]


class Site:
    """The two hosts, their engines and agents, the API, and a Keystone
    caller per user (demo and alt_demo, each in a project of their own, and
    admin)."""

    engines: EngineHosts
    hosts: list[str]
    callers: dict[str, Caller]
    processes: list[ZundProcess]

    def exec(self, host: int, uuid: str, command: str) -> tuple[int, str]:
        r = self.engines.docker(host, "exec", f"zun-{uuid}", "/bin/sh", "-c", command, timeout=30)
        return r.returncode, r.stdout

    def http_body(self, host: int, uuid: str, ip: str, path: str = "/") -> str | None:
        # busybox 1.35's wget crashes with -q or -T, and now and then after
        # the body: `timeout` bounds it, and what it wrote counts.
        _, out = self.exec(host, uuid, f"timeout 3 wget -O - http://{ip}:8080{path} 2>/dev/null")
        return out or None

    def pings(self, host: int, uuid: str, ip: str) -> bool:
        return self.exec(host, uuid, f"ping -c 1 -W 2 {ip}")[0] == 0


def ip_of(view: dict) -> str:
    (entries,) = view["addresses"].values()
    return entries[0]["addr"]


@pytest.fixture(scope="module")
def site(engine_cleanup, tmp_path_factory, log_dir):
    base = os.environ.get("ZUN_TEST_POSTGRES_URL")
    assert base, "ZUN_TEST_POSTGRES_URL is not set: run `bash scripts/postgres.sh start`"
    url = fresh_database(base)
    data_dir = tmp_path_factory.mktemp("nethosts")
    suffix = uuidlib.uuid4().hex[:6]
    s = Site()
    s.processes = []
    api_port = free_port()
    ks = KeystoneServer.reusing(KEYSTONE_DATA_DIR,
                                zun_endpoint=f"http://127.0.0.1:{api_port}/v1",
                                log_file=log_dir / "keystone-nethosts-script.log")
    ks.start()
    s.engines = EngineHosts(2).start()
    try:
        s.hosts = [f"nh{i + 1}-{suffix}" for i in range(2)]
        _OUR_HOSTS.update(s.hosts)
        common = f'[store]\nurl = "{url}"\n\n'
        api_config = data_dir / "api.toml"
        api_config.write_text(common + keystone_toml(ks))
        api = Zun(port=api_port, data_dir=data_dir, log_dir=log_dir, host_name=s.hosts[0],
                  project_id="", user_id="", roles="")
        api_process = ZundProcess("api", ["--config", str(api_config), "api", "--listen",
                                          f"127.0.0.1:{api_port}", "--data-dir", str(data_dir)],
                                  log_dir / f"zund-nethosts-{suffix}-api.log")
        s.processes.append(api_process)
        pool = network_pool()  # one deployment: one pool
        for i, host in enumerate(s.hosts):
            config = data_dir / f"{host}.toml"
            # One zone per host: tenants place a container on a host by zone.
            config.write_text(common + f'[compute]\nreport_interval_seconds = 1\n'
                              f'availability_zone = "az-{i}"\n' + KEEP_NET_RAW)
            s.processes.append(ZundProcess(
                "compute", ["--config", str(config), "compute", "--data-dir", str(data_dir),
                            "--docker-socket", s.engines.sockets[i], "--host-name", host,
                            "--network-host-netns", s.engines.namespaces[i],
                            "--network-overlay-address", s.engines.underlay_address(i)],
                log_dir / f"zund-nethosts-{suffix}-{host}.log", network_pool=pool))
        api_process.start()  # migrates the database first
        api.wait_ready()
        for p in s.processes[1:]:
            p.start()
        s.callers = {user: Caller(api, ks.issue_token(user).id, user)
                     for user in ("demo", "alt_demo", "admin")}
        deadline = time.monotonic() + 60
        while True:
            r = s.callers["admin"].http("GET", "/v1/services", version=V)
            up = {x["host"] for x in r.json()["services"] if x["state"] == "up"}
            if set(s.hosts) <= up:
                break
            assert time.monotonic() < deadline, f"hosts did not register: {up}"
            time.sleep(0.2)
        yield s
    finally:
        for user in ("demo", "alt_demo"):
            caller = getattr(s, "callers", {}).get(user)
            if caller is not None:
                rows = caller.list()
                for row in rows:
                    caller.http("DELETE", f"/v1/containers/{row['uuid']}", version=V,
                                params={"stop": "true"})
                # The agents remove the engine containers: wait for them
                # before stopping the agents.
                for row in rows:
                    caller.wait_gone(row["uuid"], timeout=60)
        for p in reversed(s.processes):
            p.stop()
        s.engines.stop()
        ks.stop()


@pytest.fixture(scope="module")
def placed(site):
    """{(project, host index): running view}: an httpd of each project on
    each host."""
    made = {}
    for project, user in (("pa", "demo"), ("pb", "alt_demo")):
        for i in range(len(site.hosts)):
            r = site.callers[user].http(
                "POST", "/v1/containers", version=V, params={"run": "true"},
                json={"image": IMAGE, "command": HTTPD, "availability_zone": f"az-{i}",
                      "hostname": f"{project}{i + 1}", "cpu": 0.1, "memory": 64})
            assert r.status_code == 202, r.text
            made[(project, i)] = (user, r.json()["uuid"])
    views = {}
    for (project, i), (user, uuid) in made.items():
        views[(project, i)] = site.callers[user].wait_status(uuid, "Running", timeout=120)
    for (project, i), view in views.items():
        deadline = time.monotonic() + 10
        while site.http_body(i, view["uuid"], "127.0.0.1") is None:
            assert time.monotonic() < deadline, f"httpd of {project} on host {i} does not answer"
            time.sleep(0.2)
    return views


def test_containers_land_where_asked_on_one_network_per_project(site, placed):
    for (project, i), view in placed.items():
        # Only an admin sees where a container is.
        r = site.callers["admin"].http("GET", f"/v1/containers/{view['uuid']}", version=V,
                                       params={"all_projects": "true"})
        assert r.json()["host"] == site.hosts[i], r.text
    demo, alt = placed[("pa", 0)]["project_id"], placed[("pb", 0)]["project_id"]
    assert demo != alt, "two Keystone projects"
    assert placed[("pa", 0)]["addresses"].keys() == placed[("pa", 1)]["addresses"].keys()
    assert placed[("pa", 0)]["addresses"].keys() != placed[("pb", 0)]["addresses"].keys()
    assert len({ip_of(v) for v in placed.values()}) == 4


def test_one_project_talks_across_hosts(site, placed):
    a1, a2 = placed[("pa", 0)], placed[("pa", 1)]
    assert site.pings(0, a1["uuid"], ip_of(a2))
    assert site.pings(1, a2["uuid"], ip_of(a1))
    assert site.http_body(0, a1["uuid"], ip_of(a2)) == "pa2\n"
    assert site.http_body(1, a2["uuid"], ip_of(a1)) == "pa1\n"
    # Full-size frames cross the overlay (the MTU leaves room for VXLAN).
    rc, out = site.exec(0, a1["uuid"],
                        f"timeout 5 wget -O - http://{ip_of(a2)}:8080/big 2>/dev/null | wc -c")
    assert rc == 0 and out.strip() == str(256 * 1024), out


def test_other_projects_have_no_path_on_either_host(site, placed):
    for (src_project, src_host), src in placed.items():
        for (dst_project, _), dst in placed.items():
            if src_project == dst_project:
                continue
            assert not site.pings(src_host, src["uuid"], ip_of(dst)), (src_project, dst_project)
            assert site.http_body(src_host, src["uuid"], ip_of(dst)) is None


def test_each_network_floods_to_the_other_hosts(site, placed):
    """Each network's VXLAN device floods to every other host's overlay
    address, as the compute nodes record them."""
    for i in range(2):
        other = site.engines.underlay_address(1 - i)
        fdb = subprocess.run(["bridge", "-n", site.engines.namespaces[i], "fdb", "show"],
                             capture_output=True, text=True, check=True).stdout
        floods = [line for line in fdb.splitlines()
                  if line.startswith("00:00:00:00:00:00 dev zxl")]
        assert floods and all(f"dst {other} " in line for line in floods), fdb


def test_a_group_admits_its_members_on_every_host(site, placed):
    """A rule naming a group as its remote admits that group's members on
    every host; a container that joins the group is admitted on the other
    host once that host's agent resyncs (its member set is refreshed from
    the store)."""
    demo = site.callers["demo"]
    r = demo.http("POST", "/v1/security_groups", version=V, json={
        "name": "members", "rules": [
            {"direction": "ingress", "protocol": "tcp", "port_range_min": 8080,
             "remote_group_id": "members"},
            {"direction": "egress"}]})
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["security_group_rules"][0]["remote_group_id"] == group["id"]
    made = []
    for i, name in ((0, "m1"), (1, "m2")):
        r = demo.http("POST", "/v1/containers", version=V, params={"run": "true"},
                      json={"image": IMAGE, "command": HTTPD, "availability_zone": f"az-{i}",
                            "hostname": name, "cpu": 0.1, "memory": 64,
                            "security_groups": ["members"]})
        assert r.status_code == 202, r.text
        made.append(r.json()["uuid"])
    m1, m2 = (demo.wait_status(u, "Running", timeout=120) for u in made)
    for i, view in ((0, m1), (1, m2)):
        deadline = time.monotonic() + 10
        while site.http_body(i, view["uuid"], "127.0.0.1") is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    def converges(host: int, src: dict, dst: dict, body: str, within: float) -> None:
        deadline = time.monotonic() + within
        while site.http_body(host, src["uuid"], ip_of(dst)) != body:
            assert time.monotonic() < deadline, f"{body.strip()} not reached"
            time.sleep(0.5)

    try:
        # The host of `dst` may have filled its member set before the other
        # member's port existed: it reads the set anew within about a second
        # of a port appearing anywhere.
        converges(0, m1, m2, "m2\n", within=5)
        converges(1, m2, m1, "m1\n", within=5)
        # pa1 (host 0, default group only) is no member.
        pa1 = placed[("pa", 0)]
        assert site.http_body(0, pa1["uuid"], ip_of(m2)) is None
        r = demo.http("POST", f"/v1/containers/{pa1['uuid']}/add_security_group",
                      version="1.14", params={"name": "members"})
        assert r.status_code == 202, r.text
        # A group change of an existing container reaches other hosts at
        # their resync (10 s).
        converges(0, pa1, m2, "m2\n", within=40)
    finally:
        for uuid in made:
            demo.http("DELETE", f"/v1/containers/{uuid}", version=V, params={"stop": "true"})
        for uuid in made:
            demo.wait_gone(uuid, timeout=60)
    r = demo.http("POST", f"/v1/containers/{pa1['uuid']}/remove_security_group",
                  version="1.14", params={"name": "members"})
    assert r.status_code == 202, r.text

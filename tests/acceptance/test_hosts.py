"""Several hosts (issue 6): two `zund api` processes and three `zund compute`
agents on one real PostgreSQL, each agent driving its own real dockerd in
its own network namespace (scripts/hosts.sh), with the real
`openstack appcontainer` CLI.

Hosts: h1 (zone az1, offers 34 CPUs), h2 (az1, 33), h3 (az2, 33), with
`cpu_allocation_ratio = 1`, so containers of 1 CPU fill them at exactly
100. Expected values: reference §7.2-7.4 (hosts, services, zones), upstream's
"There are not enough hosts available." for a create no host can take.

The tests run in file order: the host-failure test and the 200-container
race come last.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import subprocess
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import websocket  # websocket-client, the library python-zunclient uses

from conftest import (
    IMAGE,
    MAX_VERSION,
    ZUND_BIN,
    ZundProcess,
    Zun,
    _OUR_HOSTS,
    free_port,
    network_pool,
)
from engine_hosts import EngineHosts

V = MAX_VERSION
SLEEPER = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
DOWN_AFTER_S = 6
CAPACITY = {"h1": 34, "h2": 33, "h3": 33}
ZONES = {"h1": "az1", "h2": "az1", "h3": "az2"}
NO_HOST = "There are not enough hosts available."


def fresh_database(base_url: str) -> str:
    """A new database on the test PostgreSQL; returns its URL."""
    name = f"zun_hosts_{uuidlib.uuid4().hex[:10]}"
    r = subprocess.run(["psql", base_url, "-v", "ON_ERROR_STOP=1", "-c",
                        f"CREATE DATABASE {name}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"creating {name}: {r.stderr}"
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class Cluster(Zun):
    """The client side: HTTP and CLI against API #1 (`self`), API #2 at
    `second_url`; the processes of every role."""

    hosts: list[str]
    computes: dict[str, ZundProcess]
    apis: list[ZundProcess]
    engines: EngineHosts

    def compute_args(self, host: str) -> list[str]:
        return ["--config", str(self.data_dir / f"{host}.toml"), "compute",
                "--data-dir", str(self.data_dir),
                "--docker-socket", self.engines.sockets[self.hosts.index(host)],
                "--host-name", self.host_of[host],
                # The host's bridges live beside its engine.
                "--network-host-netns", self.engines.namespaces[self.hosts.index(host)]]

    def engine_containers(self, host: str) -> set[str]:
        """uuids of this cluster's zun containers in that host's engine (a
        host's data root outlives the test session: a run killed before its
        teardown leaves containers of other host names)."""
        i = self.hosts.index(host)
        r = self.engines.docker(i, "ps", "-a", "--filter", f"label=zun.host={self.host_of[host]}",
                                "--format", '{{.Label "zun.uuid"}}')
        return {line for line in r.stdout.split() if line}

    def services(self) -> dict[str, dict]:
        r = self.http("GET", "/v1/services", version=V)
        assert r.status_code == 200, r.text
        return {s["host"]: s for s in r.json()["services"]}

    def delete_everything(self) -> None:
        rows = self.list_all(all_projects="true")
        for row in rows:
            self.http("DELETE", f"/v1/containers/{row['uuid']}", version=V,
                      params={"force": "true"})
        for row in rows:
            self.wait_gone(row["uuid"], timeout=120)


@pytest.fixture(scope="module")
def cluster(engine_cleanup, tmp_path_factory, log_dir):
    base = os.environ.get("ZUN_TEST_POSTGRES_URL")
    assert base, "ZUN_TEST_POSTGRES_URL is not set: run `bash scripts/postgres.sh start` " \
                 "(scripts/test.sh does) and export the URL it prints"
    url = fresh_database(base)
    data_dir = tmp_path_factory.mktemp("hosts")
    suffix = uuidlib.uuid4().hex[:6]
    engines = EngineHosts(3)
    engines.start()
    c = Cluster(port=free_port(), data_dir=data_dir, log_dir=log_dir,
                host_name=f"hosts-{suffix}", project_id=uuidlib.uuid4().hex,
                user_id=uuidlib.uuid4().hex, roles="admin")
    c.engines = engines
    c.hosts = ["h1", "h2", "h3"]
    c.host_of = {h: f"{h}-{suffix}" for h in c.hosts}
    c.name_of = {v: k for k, v in c.host_of.items()}
    _OUR_HOSTS.update(c.host_of.values())
    common = (f'[store]\nurl = "{url}"\n\n'
              f"[api]\nservice_down_time_seconds = {DOWN_AFTER_S}\n\n"
              "[scheduler]\ncpu_allocation_ratio = 1.0\nreserved_host_memory_mb = 0\n\n")
    (data_dir / "api.toml").write_text(common)
    # Each agent's endpoint, on a fixed port so a restarted agent keeps it.
    c.agent_ports = {h: free_port() for h in c.hosts}
    for h in c.hosts:
        (data_dir / f"{h}.toml").write_text(
            common + "[compute]\nreport_interval_seconds = 1\n"
            f'availability_zone = "{ZONES[h]}"\ncpus = {CAPACITY[h]}\n'
            f'listen = "127.0.0.1:{c.agent_ports[h]}"\n')
    second_port = free_port()
    c.second_url = f"http://127.0.0.1:{second_port}"
    c.apis = []
    for port in (c.port, second_port):
        p = ZundProcess("api", ["--config", str(data_dir / "api.toml"), "api",
                                "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
                                "--project-id", c.project_id, "--user-id", c.user_id,
                                "--roles", "admin"],
                        log_dir / f"zund-hosts-{suffix}-api-{port}.log")
        c.apis.append(p)
    # One deployment: every agent carves subnets from the same pool.
    pool = network_pool()
    c.computes = {h: ZundProcess("compute", c.compute_args(h),
                                 log_dir / f"zund-hosts-{suffix}-{h}.log", network_pool=pool)
                  for h in c.hosts}
    c.processes = [*c.apis, *c.computes.values()]
    try:
        c.apis[0].start()  # migrates the database first
        c.wait_ready()
        c.apis[1].start()
        for p in c.computes.values():
            p.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            up = [h for h, s in c.services().items() if s["state"] == "up"]
            if len(up) == 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("compute hosts did not register: " + "; ".join(
                f"{h}: {p.log_tail(10)}" for h, p in c.computes.items()))
        # No project quota in the way of the 200-container race.
        r = c.http("PUT", "/v1/quota_classes/default", version=V,
                   json={"containers": -1, "cpu": -1, "memory": -1, "disk": -1})
        assert r.status_code == 200, r.text
        yield c
    finally:
        c.stop()
        engines.stop()


def create(cluster: Cluster, body: dict, base_url: str | None = None) -> dict:
    body = {"image": IMAGE, "command": SLEEPER, "cpu": 1, "memory": 16, **body}
    r = cluster.http("POST", (base_url or cluster.base_url) + "/v1/containers", version=V,
                     json=body, params={"run": "true"})
    assert r.status_code == 202, r.text
    return r.json()


def host_of(cluster: Cluster, uuid: str) -> str:
    row = cluster.get(uuid).json()
    return cluster.name_of.get(row["host"], row["host"])


# --------------------------------------------------------------------------- listing


def test_cli_lists_services_and_hosts(cluster):
    rows = cluster.openstack_json("appcontainer", "service", "list", "-f", "json")
    ours = {r["Host"]: r for r in rows}
    assert set(ours) == set(cluster.host_of.values()), rows
    for h, name in cluster.host_of.items():
        assert ours[name]["Binary"] == "zun-compute", rows
        assert ours[name]["State"] == "up", rows
        assert ours[name]["Disabled"] is False, rows
        assert ours[name]["Availability Zone"] == ZONES[h], rows
    hosts = cluster.openstack_json("appcontainer", "host", "list", "-f", "json")
    by_name = {r["hostname"]: r for r in hosts}
    assert set(by_name) == set(cluster.host_of.values()), hosts
    for h, name in cluster.host_of.items():
        assert by_name[name]["cpus"] == CAPACITY[h], hosts
        assert by_name[name]["mem_total"] > 0 and by_name[name]["disk_total"] > 0, hosts
    shown = cluster.openstack_json("appcontainer", "host", "show", "-f", "json",
                                   cluster.host_of["h3"])
    assert shown["hostname"] == cluster.host_of["h3"], shown
    assert shown["uuid"] == by_name[cluster.host_of["h3"]]["uuid"], shown
    assert shown["cpus"] == 33 and shown["os_type"] == "linux", shown
    assert "runc" in shown["runtimes"], shown
    zones = cluster.openstack_json("appcontainer", "availability", "zone", "list", "-f", "json")
    assert {z["availability_zone"] for z in zones} >= {"az1", "az2"}, zones


def test_hosts_api_needs_1_4(cluster):
    r = cluster.http("GET", "/v1/hosts", version="1.3")
    assert r.status_code == 406, r.text
    r = cluster.http("GET", "/v1/hosts/nope", version=V)
    assert r.status_code == 404, r.text


# --------------------------------------------------------------------------- placement


def test_thirty_containers_spread_over_the_hosts(cluster):
    made = [create(cluster, {"name": f"spread-{i}"}) for i in range(30)]
    counts = {h: 0 for h in cluster.hosts}
    for c in made:
        cluster.wait_status(c["uuid"], "Running", timeout=120)
        counts[host_of(cluster, c["uuid"])] += 1
    # The spread weigher: most free capacity first, so 10 each.
    assert counts == {"h1": 10, "h2": 10, "h3": 10}, counts
    for h in cluster.hosts:
        on_host = {c["uuid"] for c in made if host_of(cluster, c["uuid"]) == h}
        assert on_host <= cluster.engine_containers(h), f"{h}: engine lacks some"
    hosts = {r["hostname"]: r for r in
             cluster.http("GET", "/v1/hosts", version=V).json()["hosts"]}
    for h, name in cluster.host_of.items():
        assert hosts[name]["total_containers"] == 10 and hosts[name]["cpu_used"] == 10.0, hosts
    cluster.delete_everything()


def test_a_disabled_host_gets_nothing(cluster):
    h3 = cluster.host_of["h3"]
    rc, out, err = cluster.openstack("appcontainer", "service", "disable", h3, "zun-compute",
                                     "--reason", "maintenance")
    assert rc == 0, err
    try:
        svc = cluster.services()[h3]
        assert svc["disabled"] is True and svc["disabled_reason"] == "maintenance", svc
        made = [create(cluster, {"name": f"disabled-{i}"}) for i in range(6)]
        for c in made:
            cluster.wait_status(c["uuid"], "Running", timeout=120)
            assert host_of(cluster, c["uuid"]) != "h3"
        assert cluster.engine_containers("h3") == set()
    finally:
        rc, out, err = cluster.openstack("appcontainer", "service", "enable", h3, "zun-compute")
        assert rc == 0, err
    assert cluster.services()[h3]["disabled"] is False
    cluster.delete_everything()


def test_an_availability_zone_request_lands_in_its_zone(cluster):
    made = [create(cluster, {"availability_zone": "az2"}) for _ in range(3)]
    for c in made:
        cluster.wait_status(c["uuid"], "Running", timeout=120)
        assert host_of(cluster, c["uuid"]) == "h3"
    c = create(cluster, {"availability_zone": "az1"})
    cluster.wait_status(c["uuid"], "Running", timeout=120)
    assert host_of(cluster, c["uuid"]) in {"h1", "h2"}
    cluster.delete_everything()


def test_a_request_that_fits_nowhere_gets_no_valid_host(cluster):
    for body in ({"availability_zone": "az9"}, {"runtime": "kata"}):
        c = create(cluster, body)
        view = cluster.get(c["uuid"]).json()
        assert view["status"] == "Error", view
        assert view["status_reason"] == NO_HOST, view
        assert view["host"] is None, view
    # Nothing was claimed; the rows delete at once.
    cluster.delete_everything()
    r = cluster.http("POST", "/v1/containers", version=V,
                     json={"image": IMAGE, "host": "no-such-host"})
    assert r.status_code == 404 and "Requested host no-such-host could not be found." in r.text


def test_a_requested_host_is_used(cluster):
    c = create(cluster, {"host": cluster.host_of["h2"]})
    cluster.wait_status(c["uuid"], "Running", timeout=120)
    assert host_of(cluster, c["uuid"]) == "h2"
    cluster.delete_everything()


def test_a_local_volume_pins_its_containers_to_its_host(cluster):
    """A named local volume made on h3 keeps its data there: every later
    container that mounts it goes to h3 (the spread weigher would pick the
    emptier hosts) and reads what the first wrote."""
    name = f"pinned-{uuidlib.uuid4().hex[:8]}"
    mount = [{"source": name, "destination": "/data"}]
    first = create(cluster, {"host": cluster.host_of["h3"], "mounts": mount,
                             "command": ["/bin/sh", "-c", "echo on-h3 > /data/f; sleep 300"]})
    cluster.wait_status(first["uuid"], "Running", timeout=120)
    cluster.http("DELETE", f"/v1/containers/{first['uuid']}", version=V, params={"stop": "true"})
    cluster.wait_gone(first["uuid"], timeout=60)
    for _ in range(3):
        c = create(cluster, {"mounts": mount, "command": ["/bin/sh", "-c", "cat /data/f; sleep 300"]})
        cluster.wait_status(c["uuid"], "Running", timeout=120)
        assert host_of(cluster, c["uuid"]) == "h3"
        deadline = time.monotonic() + 30
        while "on-h3" not in cluster.http("GET", f"/v1/containers/{c['uuid']}/logs",
                                          version=V).text:
            assert time.monotonic() < deadline, "the volume's data is not there"
            time.sleep(0.3)
        cluster.http("DELETE", f"/v1/containers/{c['uuid']}", version=V, params={"stop": "true"})
        cluster.wait_gone(c["uuid"], timeout=60)
    r = cluster.http("DELETE", f"/v1/volumes/{name}", version=V)
    assert r.status_code == 204, r.text


# --------------------------------------------------------------------------- streams


@pytest.fixture
def via_second(cluster):
    """The cluster, with HTTP and the CLI going to API #2."""
    first = cluster.base_url
    cluster.base_url = cluster.second_url
    try:
        yield cluster
    finally:
        cluster.base_url = first


@pytest.mark.parametrize("h", ["h2", "h3"])
def test_streams_through_a_separate_api_reach_the_containers_agent(via_second, tmp_path, h):
    """logs, exec, cp, stats, top and an interactive exec over the websocket,
    through API #2 (no agent in its process) to the agent of h2 or h3."""
    cluster = via_second
    name = f"streams-{h}-{uuidlib.uuid4().hex[:6]}"
    command = ["/bin/sh", "-c",
               f"echo hello-from-{h}; trap 'exit 0' TERM; while true; do sleep 1; done"]
    c = create(cluster, {"name": name, "host": cluster.host_of[h], "command": command})
    uuid = c["uuid"]
    try:
        cluster.wait_status(uuid, "Running", timeout=120)
        assert host_of(cluster, uuid) == h
        assert uuid in cluster.engine_containers(h)

        deadline = time.monotonic() + 30
        while True:
            rc, out, err = cluster.openstack("appcontainer", "logs", name)
            assert rc == 0, err
            if f"hello-from-{h}" in out or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert f"hello-from-{h}" in out, out

        rc, out, err = cluster.openstack("appcontainer", "exec", name,
                                         "sh", "-c", "echo out-$((6*7)); exit 5")
        assert rc == 5, (out, err)
        assert "out-42" in out, out

        payload = os.urandom(256 * 1024)
        src = tmp_path / "blob.bin"
        src.write_bytes(payload)
        rc, out, err = cluster.openstack("appcontainer", "cp", str(src), f"{name}:/tmp")
        assert rc == 0, (out, err)
        r = cluster.http("POST", f"/v1/containers/{uuid}/execute", version=V,
                         params={"command": "sha256sum /tmp/blob.bin"})
        assert r.status_code == 200, r.text
        assert r.json()["output"].split()[0] == hashlib.sha256(payload).hexdigest()
        back = tmp_path / "back"
        back.mkdir()
        rc, out, err = cluster.openstack("appcontainer", "cp", f"{name}:/tmp/blob.bin", str(back))
        assert rc == 0, (out, err)
        assert (back / "blob.bin").read_bytes() == payload

        data = cluster.openstack_json("appcontainer", "stats", "-f", "json", name)
        assert data["CONTAINER"] == name, data
        assert data["MEM USAGE(MiB)"] > 0, data
        r = cluster.http("GET", f"/v1/containers/{uuid}/top", version=V)
        assert r.status_code == 200, r.text
        assert "PID" in r.json()["Titles"], r.text

        # The agent's errors arrive as the in-process link gives them.
        r = cluster.http("GET", f"/v1/containers/{uuid}/get_archive", version=V,
                         params={"path": "/no/such/file"})
        assert r.status_code == 404, r.text

        r = cluster.http("POST", f"/v1/containers/{uuid}/execute", version=V,
                         params={"command": "/bin/sh", "run": "false", "interactive": "true"})
        assert r.status_code == 200, r.text
        url = r.json()["proxy_url"]
        assert url.startswith(cluster.second_url.replace("http://", "ws://") + "/websocket?")
        ws = websocket.create_connection(url, subprotocols=["binary", "base64"], timeout=15)
        try:
            ws.send_binary(b"echo over-$((1+1))-" + h.encode() + b"\n")
            seen = b""
            while f"over-2-{h}".encode() not in seen:
                seen += ws.recv()
            ws.send_binary(b"exit\n")
            with pytest.raises(websocket.WebSocketConnectionClosedException):
                while True:
                    ws.recv()
        finally:
            ws.close()
    finally:
        cluster.http("DELETE", f"/v1/containers/{uuid}", version=V, params={"force": "true"})
        cluster.wait_gone(uuid, timeout=120)


def agent_token(cluster: Cluster, host: str, method: str, path: str,
                issued: int | None = None) -> str:
    """The token the API presents to `host`'s agent for one request:
    `<issued>.<nonce>.<mac>`, HMAC-SHA256 under the shared service key of
    the length-prefixed purpose, then host, method, path, issue time and
    nonce."""
    key = base64.b64decode((cluster.data_dir / "secret.key").read_text().strip())
    issued = int(time.time()) if issued is None else issued
    nonce = uuidlib.uuid4().hex
    purpose = b"zun agent endpoint v2"
    message = (struct.pack(">Q", len(purpose)) + purpose
               + f"{host}\n{method}\n{path}\n{issued}\n{nonce}".encode())
    return f"{issued}.{nonce}." + hmac.new(key, message, hashlib.sha256).hexdigest()


def agent_ca(cluster: Cluster, tmp_path) -> str:
    """The CA the API trusts of agents by default, as `zund agent-ca` prints
    it (derived from the service key): a PEM file's path."""
    out = subprocess.run([str(ZUND_BIN), "agent-ca", "--data-dir", str(cluster.data_dir)],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    assert out.startswith("-----BEGIN CERTIFICATE-----"), out
    path = tmp_path / "agent-ca.pem"
    path.write_text(out)
    return str(path)


def test_agent_endpoints_refuse_other_callers(cluster, tmp_path):
    c = create(cluster, {"host": cluster.host_of["h2"]})
    uuid = c["uuid"]
    ca = agent_ca(cluster, tmp_path)
    try:
        cluster.wait_status(uuid, "Running", timeout=120)
        # The endpoints serve HTTPS with certificates of the service's CA.
        h2 = f"https://127.0.0.1:{cluster.agent_ports['h2']}"
        h3 = f"https://127.0.0.1:{cluster.agent_ports['h3']}"
        stats = f"/v1/agent/containers/{uuid}/stats"
        for headers in ({}, {"Authorization": "Bearer " + "0" * 64},
                        {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            r = requests.post(h2 + stats, json={}, headers=headers, timeout=10, verify=ca)
            assert r.status_code == 401 and r.text == "", (headers, r.status_code, r.text)
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(h2 + stats, json={}, timeout=10)  # the system's CAs do not know it
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(h2.replace("https", "http") + stats, json={}, timeout=10)
        # A websocket without the token is refused before any upgrade.
        with pytest.raises(websocket.WebSocketBadStatusException) as caught:
            websocket.create_connection(
                h2.replace("https", "wss") + f"/v1/agent/containers/{uuid}/attach", timeout=10,
                sslopt={"ca_certs": ca})
        assert caught.value.status_code == 401
        h2_name, h3_name = cluster.host_of["h2"], cluster.host_of["h3"]

        def stats_with(base: str, token: str):
            return requests.post(base + stats, json={}, timeout=10, verify=ca,
                                 headers={"Authorization": "Bearer " + token})

        # Another host's token is no good here.
        r = stats_with(h3, agent_token(cluster, h2_name, "POST", stats))
        assert r.status_code == 401 and r.text == "", r.text
        # h3's own token does not reach a container of h2.
        r = stats_with(h3, agent_token(cluster, h3_name, "POST", stats))
        assert r.status_code == 403 and r.text == "", r.text
        # A token is for one request: not another path, nor another method.
        logs = f"/v1/agent/containers/{uuid}/logs"
        r = stats_with(h2, agent_token(cluster, h2_name, "POST", logs))
        assert r.status_code == 401 and r.text == "", r.text
        r = stats_with(h2, agent_token(cluster, h2_name, "GET", stats))
        assert r.status_code == 401 and r.text == "", r.text
        # Nor later than its lifetime (60 s), nor ahead of the agent's clock.
        for skew in (-120, 120):
            late = agent_token(cluster, h2_name, "POST", stats, int(time.time()) + skew)
            r = stats_with(h2, late)
            assert r.status_code == 401 and r.text == "", (skew, r.text)
        # The right token works once (the test derives it like the API does);
        # recorded and replayed, it is refused.
        recorded = agent_token(cluster, h2_name, "POST", stats)
        r = stats_with(h2, recorded)
        assert r.status_code == 200 and r.json()["memory_bytes"] > 0, r.text
        r = stats_with(h2, recorded)
        assert r.status_code == 401 and r.text == "", r.text
    finally:
        cluster.http("DELETE", f"/v1/containers/{uuid}", version=V, params={"force": "true"})
        cluster.wait_gone(uuid, timeout=120)


# --------------------------------------------------------------------------- failure


def test_a_dead_host_is_reported_and_comes_back_true(cluster):
    made = [create(cluster, {"name": f"down-{i}", "host": cluster.host_of["h2"]})
            for i in range(4)]
    for c in made:
        cluster.wait_status(c["uuid"], "Running", timeout=120)
    before = cluster.engine_containers("h2")
    cluster.computes["h2"].kill()
    killed = time.monotonic()
    h2 = cluster.host_of["h2"]
    deadline = killed + DOWN_AFTER_S + 10
    while cluster.services()[h2]["state"] != "down":
        assert time.monotonic() < deadline, "h2 not reported down"
        time.sleep(0.2)
    for c in made:
        view = cluster.wait_status(c["uuid"], "Unknown", timeout=DOWN_AFTER_S + 10)
        assert h2 in view["status_reason"], view
    took = time.monotonic() - killed
    assert took < DOWN_AFTER_S + 10, took
    # New containers avoid it.
    other = create(cluster, {"name": "while-down"})
    cluster.wait_status(other["uuid"], "Running", timeout=120)
    assert host_of(cluster, other["uuid"]) != "h2"
    # A delete waits for the host; an admin's force delete does not.
    waiting, forced = made[0]["uuid"], made[1]["uuid"]
    r = cluster.http("DELETE", f"/v1/containers/{waiting}", version=V)
    assert r.status_code == 204, r.text
    assert cluster.get(waiting).json()["status"] == "Deleting"
    r = cluster.http("DELETE", f"/v1/containers/{forced}", version=V, params={"force": "true"})
    assert r.status_code == 204, r.text
    assert cluster.get(forced).status_code == 404
    # The host returns: what it holds is true again, nothing duplicated.
    cluster.computes["h2"].start()
    cluster.wait_gone(waiting, timeout=60)
    for c in made[2:]:
        cluster.wait_status(c["uuid"], "Running", timeout=60)
    deadline = time.monotonic() + 30
    while True:
        engine = cluster.engine_containers("h2")
        rows = {r["uuid"] for r in cluster.list_all(all_projects="true")
                if r.get("host") == h2}
        if engine == rows or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert engine == rows == {c["uuid"] for c in made[2:]}, (engine, rows, before)
    assert cluster.services()[h2]["state"] == "up"
    cluster.delete_everything()


# --------------------------------------------------------------------------- the race


def test_two_apis_placing_200_containers_never_over_commit(cluster):
    """200 creates at once, half through each API process, against hosts
    that fit exactly 100 containers of 1 CPU."""
    urls = [cluster.base_url, cluster.second_url]

    def one(i: int) -> dict:
        return create(cluster, {"name": f"race-{i}"}, base_url=urls[i % 2])

    with ThreadPoolExecutor(max_workers=16) as pool:
        made = list(pool.map(one, range(200)))
    placed = [c for c in made if cluster.get(c["uuid"]).json()["status"] != "Error"]
    refused = [c for c in made if c not in placed]
    assert len(placed) == 100, len(placed)
    for c in refused:
        assert cluster.get(c["uuid"]).json()["status_reason"] == NO_HOST
    counts = {h: 0 for h in cluster.hosts}
    for c in placed:
        counts[host_of(cluster, c["uuid"])] += 1
    assert counts == CAPACITY, counts
    for c in placed:
        cluster.wait_status(c["uuid"], "Running", timeout=300)
    for h in cluster.hosts:
        assert len(cluster.engine_containers(h)) == CAPACITY[h], h
    cluster.delete_everything()

"""Container networks (issue 12), built-in driver, against a REAL Keystone with
two projects (demo and alt_demo) and the real engine.

Every container gets an address on its project's network (one Linux bridge per
network, a veth into the container's own namespace, addresses from the store).
The checks here send real traffic between containers: ping, TCP (busybox httpd
and wget) and UDP (busybox tftp to a responder in the peer's namespace), across
projects (nothing), with forged addresses (nothing), to the host (nothing), and
out of the cloud through SNAT to a namespace standing for the outside world.

Expected shapes: /work/shared/reference/zun-api.md §4.3 (`addresses`) and §4.7
(`network_list`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.request
import uuid as uuidlib
from pathlib import Path

import pytest

from conftest import (
    CLI_TIMEOUT_S,
    IMAGE,
    KEEP_NET_RAW,
    OPENSTACK,
    ROOT,
    docker_cmd,
)
from keystone import KeystoneServer
from test_keystone import Caller, keystone_toml, make_configured, unique

V = "1.40"
# httpd serving the container's own name, so a reply says who answered.
HTTPD = ["/bin/sh", "-c",
         "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
KEYSTONE_DATA_DIR = Path(os.environ.get("ZUN_TEST_KEYSTONE_NETWORKS_DATA_DIR")
                         or ROOT / ".data" / "keystone-acceptance-networks")
STATE_DIR = Path("/run/zun/net")
# The namespace standing for the world outside the cloud, and its link.
OUTSIDE_NS = f"zt-out-{uuidlib.uuid4().hex[:6]}"
# A /24 of 198.18.0.0/15 (benchmarking addresses) of this session's own: a
# killed session's outside namespace on another keeps its route to itself.
_OUTSIDE_NET = f"198.18.{random.randrange(256)}"
OUTSIDE_HOST_IP = f"{_OUTSIDE_NET}.1"
OUTSIDE_IP = f"{_OUTSIDE_NET}.2"


# --------------------------------------------------------------------------- helpers

# python-zunclient's own network_list call, authenticated from OS_* variables.
ZUNCLIENT_NETWORK_LIST = """
import json, os, sys
from keystoneauth1 import loading, session
from zunclient import client
auth = loading.get_plugin_loader("password").load_from_options(
    auth_url=os.environ["OS_AUTH_URL"], username=os.environ["OS_USERNAME"],
    password=os.environ["OS_PASSWORD"], project_name=os.environ["OS_PROJECT_NAME"],
    user_domain_name=os.environ["OS_USER_DOMAIN_NAME"],
    project_domain_name=os.environ["OS_PROJECT_DOMAIN_NAME"])
zun = client.Client("1.40", session=session.Session(auth=auth))
print(json.dumps([n.to_dict() for n in zun.containers.network_list(sys.argv[1])]))
"""


def in_container(uuid: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`sh -c command` inside the container, through the engine."""
    return docker_cmd("exec", f"zun-{uuid}", "/bin/sh", "-c", command, timeout=timeout)


def ip_of(view: dict) -> str:
    (entries,) = view["addresses"].values()
    (entry,) = entries
    return entry["addr"]


def reaches_http(src: str, dst_ip: str, port: int = 8080) -> str | None:
    """The body `src` gets from http://dst_ip:port/ within 4 s, or None."""
    # (busybox 1.35's wget crashes with -q or -T, and now and then after
    # the body, in its progress meter: `timeout` bounds it, its progress
    # goes to stderr, and what it wrote counts, whatever its exit status.)
    r = in_container(src, f"timeout 4 wget -O - http://{dst_ip}:{port}/ 2>/dev/null")
    return r.stdout.strip() or None


def pings(src: str, dst_ip: str) -> bool:
    return in_container(src, f"ping -c 1 -W 2 {dst_ip}").returncode == 0


def netns(uuid: str) -> str:
    return f"zun-{uuid}"


def ip_netns(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "-n", name, *args], capture_output=True, text=True, timeout=30)


UDP_RESPONDER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 69))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    # A TFTP ERROR packet (opcode 5, code 1) whose text names the sender.
    s.sendto(b"\x00\x05\x00\x01udp-from-" + peer[0].encode() + b"\x00", peer)
"""


class UdpResponder:
    """A UDP server on port 69 inside a container's namespace (what the
    container itself would receive), answering TFTP requests with an error
    that names the sender: busybox's tftp client prints it."""

    def __init__(self, uuid: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns(uuid), "python3", "-u", "-c", UDP_RESPONDER],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def udp_reply(src: str, dst_ip: str) -> str:
    r = in_container(src, f"timeout 5 tftp -g -r probe -l /tmp/probe {dst_ip} 69 2>&1")
    return r.stdout


def port_link(port_id: str) -> str:
    """The host end of a port's veth."""
    return "zv" + port_id.replace("-", "")[:12]


def port_ids(*views: dict) -> list[str]:
    return [e["port"] for v in views for entries in (v.get("addresses") or {}).values()
            for e in entries]


def host_objects(uuids: list[str], host: str, ports: list[str] = ()) -> dict[str, list[str]]:
    """This host's network objects belonging to containers `uuids` (their
    ports `ports`): namespaces, host ends of veths, state directories,
    anti-spoofing entries."""
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               check=True).stdout.split())
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                      text=True, check=True).stdout)
    ports = {port_link(p) for p in ports}
    elements = subprocess.run(["nft", "list", "set", "bridge", "zun", "ports"],
                              capture_output=True, text=True).stdout
    return {
        "netns": sorted(n for n in (netns(u) for u in uuids) if n in names),
        "links": sorted(link["ifname"] for link in links if link["ifname"] in ports),
        "state": sorted(u for u in uuids if (STATE_DIR / host / u).exists()),
        "nft": sorted(p for p in ports if f'"{p}"' in elements),
    }


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def zund_port() -> int:
    from conftest import free_port
    return free_port()


@pytest.fixture(scope="module")
def keystone(engine_cleanup, zund_port, log_dir):
    with KeystoneServer.reusing(KEYSTONE_DATA_DIR,
                                zun_endpoint=f"http://127.0.0.1:{zund_port}/v1",
                                log_file=log_dir / "keystone-networks-script.log") as ks:
        yield ks


@pytest.fixture(scope="module")
def zk(keystone, zund_port, tmp_path_factory, log_dir):
    config = keystone_toml(keystone) + "[compute]\n" + KEEP_NET_RAW
    z = make_configured(tmp_path_factory, log_dir, "net", config, port=zund_port)
    try:
        z.start()
        yield z
    finally:
        z.stop()


@pytest.fixture(scope="module")
def demo(zk, keystone) -> Caller:
    return Caller(zk, keystone.issue_token("demo").id, "demo")


@pytest.fixture(scope="module")
def alt(zk, keystone) -> Caller:
    return Caller(zk, keystone.issue_token("alt_demo").id, "alt_demo")


@pytest.fixture(scope="module")
def servers(demo, alt):
    """Two running httpd containers of demo and one of alt_demo."""
    made = {}
    for key, caller in (("demo_a", demo), ("demo_b", demo), ("alt_a", alt)):
        view = caller.create({"name": f"net-{key}", "command": HTTPD,
                              "hostname": key.replace("_", "-")}, run=True)
        made[key] = (caller, view["uuid"])
    views = {k: c.wait_status(u, "Running") for k, (c, u) in made.items()}
    # httpd is up once it answers from inside its own container.
    for key, (_, uuid) in made.items():
        deadline = time.monotonic() + 10
        while reaches_http(uuid, "127.0.0.1") is None:
            assert time.monotonic() < deadline, f"httpd of {key} does not answer"
            time.sleep(0.2)
    yield views
    demo.delete_all()
    alt.delete_all()


@pytest.fixture(scope="module")
def outside():
    """A namespace for the world outside the cloud, linked to the host by a
    veth (a /24 of 198.18.0.0/15), with an HTTP server that answers the address it
    sees the request come from."""
    subprocess.run(["ip", "netns", "add", OUTSIDE_NS], check=True)
    try:
        host_end = f"zt{OUTSIDE_NS[-6:]}"
        subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
                        "netns", OUTSIDE_NS], check=True)
        subprocess.run(["ip", "addr", "add", f"{OUTSIDE_HOST_IP}/24", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
        for args in (["addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0"],
                     ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", OUTSIDE_NS, *args], check=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", OUTSIDE_NS, "python3", "-u", "-c",
             "import http.server as h\n"
             "class H(h.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        body = self.client_address[0].encode()\n"
             "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
             "        self.end_headers(); self.wfile.write(body)\n"
             "    def log_message(self, *a): pass\n"
             "print('ready', flush=True)\n"
             "h.HTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"],
            stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        try:
            yield OUTSIDE_IP
        finally:
            server.kill()
            server.wait(timeout=10)
    finally:
        subprocess.run(["ip", "netns", "del", OUTSIDE_NS], check=False)


# --------------------------------------------------------------------------- tests


def test_every_container_gets_an_address_on_its_projects_network(servers):
    demo_a, demo_b, alt_a = servers["demo_a"], servers["demo_b"], servers["alt_a"]
    for view in servers.values():
        (net_id, entries), = view["addresses"].items()
        (entry,) = entries
        assert set(entry) == {"addr", "version", "port", "subnet_id", "preserve_on_delete"}, entry
        assert entry["version"] == 4 and entry["preserve_on_delete"] is False
        uuidlib.UUID(net_id), uuidlib.UUID(entry["port"]), uuidlib.UUID(entry["subnet_id"])
        ipaddress.IPv4Address(entry["addr"])
    assert demo_a["addresses"].keys() == demo_b["addresses"].keys(), "one network per project"
    assert demo_a["addresses"].keys() != alt_a["addresses"].keys()
    assert len({ip_of(v) for v in servers.values()}) == 3
    # The address is the container's own, on eth0.
    r = in_container(demo_a["uuid"], "ip -4 -o addr show dev eth0")
    assert f" {ip_of(demo_a)}/" in r.stdout, r.stdout


def test_network_list_has_upstreams_shapes(demo, servers, keystone):
    view = servers["demo_a"]
    (net_id, [entry]), = view["addresses"].items()
    r = demo.http("GET", f"/v1/containers/{view['uuid']}/network_list", version="1.18")
    assert r.status_code == 200, r.text
    assert r.json() == {"networks": [{"net_id": net_id, "port_id": entry["port"], "fixed_ips": [
        {"subnet_id": entry["subnet_id"], "version": 4, "ip_address": entry["addr"]}]}]}
    r = demo.http("GET", f"/v1/containers/{view['uuid']}/network_list", version="1.13")
    assert r.json() == {"networks": [{"net_id": net_id, "subnet_id": entry["subnet_id"],
                                      "port_id": entry["port"], "version": 4,
                                      "ip_address": entry["addr"]}]}
    # The real client. python-zunclient 5.4.0's `openstack appcontainer
    # network list` cannot print (it hands osc-lib a plain function as a
    # column formatter: "Invalid formatter provided."), so its library call,
    # which the command makes, is driven directly.
    r = subprocess.run([str(Path(OPENSTACK).with_name("python")), "-c", ZUNCLIENT_NETWORK_LIST,
                        view["uuid"]], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                       env=keystone.cli_env("demo"), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"net_id": net_id, "port_id": entry["port"], "fixed_ips": [
        {"subnet_id": entry["subnet_id"], "version": 4, "ip_address": entry["addr"]}]}]
    r = subprocess.run([OPENSTACK, "appcontainer", "show", view["uuid"], "-f", "json"],
                       capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                       env=keystone.cli_env("demo"), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert entry["addr"] in r.stdout


def test_same_project_containers_reach_each_other(servers):
    a, b = servers["demo_a"]["uuid"], servers["demo_b"]
    assert pings(a, ip_of(b))
    assert reaches_http(a, ip_of(b)) == "demo-b"
    responder = UdpResponder(b["uuid"])
    try:
        assert f"udp-from-{ip_of(servers['demo_a'])}" in udp_reply(a, ip_of(b))
    finally:
        responder.stop()


def test_other_projects_have_no_path(servers):
    demo_a, alt_a = servers["demo_a"], servers["alt_a"]
    assert not pings(demo_a["uuid"], ip_of(alt_a))
    assert reaches_http(demo_a["uuid"], ip_of(alt_a)) is None
    assert not pings(alt_a["uuid"], ip_of(demo_a))
    assert reaches_http(alt_a["uuid"], ip_of(demo_a)) is None
    responder = UdpResponder(alt_a["uuid"])
    try:
        assert "udp-from" not in udp_reply(demo_a["uuid"], ip_of(alt_a))
    finally:
        responder.stop()
    # Not merely filtered: another project's network is another bridge.
    bridges = set()
    for view in (demo_a, alt_a):
        master = json.loads(subprocess.run(
            ["ip", "-j", "link", "show", port_link(port_ids(view)[0])],
            capture_output=True, text=True, check=True).stdout)[0]["master"]
        bridges.add(master)
    assert len(bridges) == 2, bridges


def test_forged_addresses_reach_nothing(servers):
    """A container that takes another address or MAC (done here from the host,
    in its namespace: containers lack CAP_NET_ADMIN) is cut off until it
    gives them back."""
    a, b = servers["demo_a"], servers["demo_b"]
    ns, own = netns(a["uuid"]), ip_of(a)
    prefix = ipaddress.IPv4Interface(
        in_container(a["uuid"], "ip -4 -o addr show dev eth0").stdout.split()[3]).network.prefixlen
    forged = str(ipaddress.IPv4Address(own) + 100)
    gateway = in_container(a["uuid"], "ip route show default").stdout.split()[2]
    try:
        # Another address on the same subnet instead of its own.
        assert ip_netns(ns, "addr", "del", f"{own}/{prefix}", "dev", "eth0").returncode == 0
        assert ip_netns(ns, "addr", "add", f"{forged}/{prefix}", "dev", "eth0").returncode == 0
        assert ip_netns(ns, "route", "replace", "default", "via", gateway).returncode == 0
        assert not pings(a["uuid"], ip_of(b))
        assert reaches_http(a["uuid"], ip_of(b)) is None
        assert ip_netns(ns, "addr", "del", f"{forged}/{prefix}", "dev", "eth0").returncode == 0
        assert ip_netns(ns, "addr", "add", f"{own}/{prefix}", "dev", "eth0").returncode == 0
        assert ip_netns(ns, "route", "replace", "default", "via", gateway).returncode == 0
        assert pings(a["uuid"], ip_of(b)), "its own address works again"
        # Another MAC.
        mac = json.loads(ip_netns(ns, "-j", "link", "show", "eth0").stdout)[0]["address"]
        assert ip_netns(ns, "link", "set", "eth0", "address", "02:00:00:00:be:ef").returncode == 0
        assert not pings(a["uuid"], ip_of(b))
        assert reaches_http(a["uuid"], ip_of(b)) is None
        assert ip_netns(ns, "link", "set", "eth0", "address", mac).returncode == 0
        assert pings(a["uuid"], ip_of(b)), "its own MAC works again"
    finally:
        ip_netns(ns, "addr", "del", f"{forged}/{prefix}", "dev", "eth0")
        ip_netns(ns, "addr", "replace", f"{own}/{prefix}", "dev", "eth0")
        ip_netns(ns, "route", "replace", "default", "via", gateway)


def test_containers_cannot_reach_the_host(servers, zk):
    """A service listening on every address of the host (as an engine or an
    agent endpoint bound to 0.0.0.0 would) is out of reach, through the
    network's gateway and through the host's other addresses; so is the API."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted = []

    def serve():
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:
                return
            accepted.append(peer)
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nhost")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        a = servers["demo_a"]["uuid"]
        gateway = in_container(a, "ip route show default").stdout.split()[2]
        # The gateway, and the host's addresses outside the service's own
        # bridges (other deployments' gateways are filtered alike).
        links = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True,
                                          text=True, check=True).stdout)
        host_ips = [gateway] + [i["local"] for link in links
                                if not link["ifname"].startswith("zbr")
                                for i in link.get("addr_info", []) if i["family"] == "inet"
                                and not i["local"].startswith("127.")]
        for address in host_ips:
            assert reaches_http(a, address, port) is None, f"host service reached at {address}"
            assert reaches_http(a, address, zk.port) is None, f"the API reached at {address}"
        assert not pings(a, gateway)
        assert accepted == []
    finally:
        listener.close()


def test_egress_goes_out_through_the_hosts_address(servers, outside):
    a = servers["demo_a"]
    # Three tries of 4 s: one wget on a loaded machine may not finish in one.
    seen = [reaches_http(a["uuid"], outside, 8000) for _ in range(3)]
    assert OUTSIDE_HOST_IP in seen and set(seen) <= {OUTSIDE_HOST_IP, None}, \
        f"the outside world sees the host's address (SNAT), not the container's: {seen}"
    # Nothing from outside comes in unasked.
    r = subprocess.run(["ip", "netns", "exec", OUTSIDE_NS, "ip", "route", "add",
                        str(ipaddress.IPv4Interface(f"{ip_of(a)}/16").network), "via",
                        OUTSIDE_HOST_IP], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["ip", "netns", "exec", OUTSIDE_NS, "python3", "-c",
                        "import socket; s = socket.create_connection"
                        f"(('{ip_of(a)}', 8080), timeout=3); print('connected')"],
                       capture_output=True, text=True, timeout=30)
    assert "connected" not in r.stdout


def test_resolv_conf_and_hosts(servers):
    a = servers["demo_a"]["uuid"]
    resolv = in_container(a, "cat /etc/resolv.conf").stdout
    host_servers = [line.split()[1] for line in Path("/etc/resolv.conf").read_text().splitlines()
                    if line.startswith("nameserver") and not line.split()[1].startswith("127.")]
    for server in host_servers:
        assert f"nameserver {server}" in resolv, resolv
    assert "127.0.0.53" not in resolv
    hosts = in_container(a, "cat /etc/hosts").stdout
    assert "localhost" in hosts and f"{ip_of(servers['demo_a'])}\tnet-demo_a demo-a" in hosts


def test_containers_find_the_others_of_their_network_by_name(servers):
    """Managed /etc/hosts entries: a new container knows the names already
    on its networks at once; the others learn its name at the agent's next
    resync (10 s). Another project's names are not there."""
    a, b = servers["demo_a"]["uuid"], servers["demo_b"]["uuid"]
    assert reaches_http(b, "net-demo_a") == "demo-a", "made later: knows a at once"
    deadline = time.monotonic() + 20
    while reaches_http(a, "net-demo_b") != "demo-b":
        assert time.monotonic() < deadline, in_container(a, "cat /etc/hosts").stdout
        time.sleep(0.5)
    for uuid in (a, b):
        hosts = in_container(uuid, "cat /etc/hosts").stdout
        assert "net-alt_a" not in hosts and ip_of(servers["alt_a"]) not in hosts, hosts


def test_address_survives_a_container_restart(demo, servers, keystone):
    b = servers["demo_b"]
    r = subprocess.run([OPENSTACK, "appcontainer", "restart", b["uuid"]], capture_output=True,
                       text=True, timeout=CLI_TIMEOUT_S, env=keystone.cli_env("demo"),
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 30
    while reaches_http(servers["demo_a"]["uuid"], ip_of(b)) != "demo-b":
        assert time.monotonic() < deadline, "the restarted container is not reachable again"
        time.sleep(0.5)
    view = demo.wait_status(b["uuid"], "Running")
    assert view["addresses"] == b["addresses"]


def test_rebuild_keeps_uuid_name_and_addresses(demo, servers, keystone):
    b = servers["demo_b"]
    engine_id = docker_cmd("inspect", "-f", "{{.Id}}", f"zun-{b['uuid']}").stdout.strip()
    assert docker_cmd("tag", IMAGE, "zun-test/rebuilt:1").returncode == 0
    r = subprocess.run([OPENSTACK, "appcontainer", "rebuild", "--image", "zun-test/rebuilt:1",
                        b["uuid"]], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                       env=keystone.cli_env("demo"), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 60
    while True:
        view = demo.get(b["uuid"]).json()
        if view["status"] == "Running" and view["task_state"] is None:
            break
        assert view["status"] in ("Running", "Rebuilding"), view
        assert time.monotonic() < deadline, view
        time.sleep(0.2)
    new_id = docker_cmd("inspect", "-f", "{{.Id}} {{.Config.Image}}", f"zun-{b['uuid']}").stdout
    assert new_id.split() != [engine_id] and new_id.split()[1] == "zun-test/rebuilt:1", new_id
    assert view["image"] == "zun-test/rebuilt:1"
    assert view["name"] == b["name"] and view["addresses"] == b["addresses"]
    deadline = time.monotonic() + 15
    while reaches_http(servers["demo_a"]["uuid"], ip_of(b)) != "demo-b":
        assert time.monotonic() < deadline, "the rebuilt container is not reachable at its address"
        time.sleep(0.5)
    r = demo.http("GET", f"/v1/containers/{b['uuid']}/container_actions")
    assert "rebuild" in [a["action"] for a in r.json()["containerActions"]]


def test_rebuild_and_resize_refuse_bad_input(demo, servers):
    a = servers["demo_a"]["uuid"]
    r = demo.http("POST", f"/v1/containers/{a}/rebuild", params={"image_driver": "nope"})
    assert r.status_code == 400, r.text
    r = demo.http("POST", f"/v1/containers/{a}/rebuild", params={"image": "!"})
    assert r.status_code == 400, r.text
    r = demo.http("POST", f"/v1/containers/{a}/resize_container", params={"memory": "12M"})
    assert r.status_code == 400, r.text


def test_resize_container_answers_the_container_as_it_was(demo, servers):
    a = servers["demo_a"]
    r = demo.http("POST", f"/v1/containers/{a['uuid']}/resize_container",
                  params={"memory": "256", "cpu": "0.5"})
    assert r.status_code == 202, r.text
    assert r.json()["memory"] == a["memory"] and r.json()["cpu"] == a["cpu"]
    deadline = time.monotonic() + 30
    while True:
        info = json.loads(docker_cmd("inspect", f"zun-{a['uuid']}").stdout)[0]["HostConfig"]
        if info["Memory"] == 256 * 1024 * 1024 and info["NanoCpus"] == 500_000_000:
            break
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    view = demo.get(a["uuid"]).json()
    assert view["memory"] == "256" and view["cpu"] == 0.5


def host_http(ip: str, port: int) -> str | None:
    """The body the host itself gets from http://ip:port/, or None."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(f"http://{ip}:{port}/", timeout=3) as r:
            return r.read().decode()
    except OSError:
        return None


def test_exposed_ports_open_to_the_host_and_other_projects(demo, servers, keystone):
    """`--expose-port 8080/tcp`: the host and other projects reach that port
    (as upstream's security group opens it), not the container's others;
    its own network reaches every port."""
    two_servers = ("mkdir -p /www && hostname > /www/index.html && httpd -p 9090 -h /www "
                   "&& exec httpd -f -p 8080 -h /www")
    r = subprocess.run([OPENSTACK, "appcontainer", "run", "--name", "net-web", "--hostname", "web",
                        "--expose-port", "8080/tcp", "-f", "json", IMAGE, "/bin/sh", "-c",
                        two_servers], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                       env=keystone.cli_env("demo"), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    web = demo.wait_status(json.loads(r.stdout)["uuid"], "Running")
    ip = ip_of(web)
    deadline = time.monotonic() + 10
    while reaches_http(web["uuid"], "127.0.0.1", 9090) is None:
        assert time.monotonic() < deadline, "the second httpd does not answer"
        time.sleep(0.2)
    try:
        assert host_http(ip, 8080) == "web\n"
        assert host_http(ip, 9090) is None
        alt_a, demo_a = servers["alt_a"]["uuid"], servers["demo_a"]["uuid"]
        assert reaches_http(alt_a, ip, 8080) == "web"
        assert reaches_http(alt_a, ip, 9090) is None
        # As upstream, the container is in the exposed ports' group only:
        # its own project reaches the exposed port, not the others.
        assert reaches_http(demo_a, ip, 8080) == "web"
        assert reaches_http(demo_a, ip, 9090) is None
        # A container that exposes nothing is closed to the host.
        assert host_http(ip_of(servers["demo_a"]), 8080) is None
    finally:
        r = demo.http("DELETE", f"/v1/containers/{web['uuid']}", params={"stop": "true"})
        assert r.status_code == 204, r.text
        demo.wait_gone(web["uuid"])
    assert ip not in security_map(), "the deleted container's rules are gone"
    r = demo.http("GET", "/v1/security_groups")
    assert f"zun-{web['uuid']}" not in {g["name"] for g in r.json()["security_groups"]}


def test_delete_leaves_no_network_objects(demo, zk):
    view = demo.create({"name": "net-short", "command": HTTPD}, run=True)
    view = demo.wait_status(view["uuid"], "Running")
    ports = port_ids(view)
    assert host_objects([view["uuid"]], zk.host_name, ports) == {
        "netns": [netns(view["uuid"])], "links": [port_link(ports[0])],
        "state": [view["uuid"]], "nft": [port_link(ports[0])]}
    r = demo.http("DELETE", f"/v1/containers/{view['uuid']}", params={"stop": "true"})
    assert r.status_code == 204, r.text
    demo.wait_gone(view["uuid"])
    assert host_objects([view["uuid"]], zk.host_name, ports) == {
        "netns": [], "links": [], "state": [], "nft": []}


def test_a_reused_address_does_not_inherit_the_old_containers_groups(demo, servers):
    """A container in the default group is deleted and the next one gets its
    address: the next one is in another group only, so the default group's
    members (demo_a admits only them) must not let it in, right away."""
    r = demo.http("POST", "/v1/security_groups", json={
        "name": unique("egress-only"), "rules": [{"direction": "egress"}]})
    assert r.status_code == 201, r.text
    group = r.json()
    first = demo.create({"name": unique("net-first"), "command": HTTPD}, run=True)
    first = demo.wait_status(first["uuid"], "Running")
    ip = ip_of(first)
    assert reaches_http(first["uuid"], ip_of(servers["demo_a"])) == "demo-a"
    r = demo.http("DELETE", f"/v1/containers/{first['uuid']}", params={"stop": "true"})
    assert r.status_code == 204, r.text
    demo.wait_gone(first["uuid"])
    second = demo.create({"name": unique("net-second"), "command": HTTPD,
                          "security_groups": [group["id"]]}, run=True)
    try:
        second = demo.wait_status(second["uuid"], "Running")
        assert ip_of(second) == ip, "the freed address is the first free one"
        assert reaches_http(second["uuid"], ip_of(servers["demo_a"])) is None
    finally:
        r = demo.http("DELETE", f"/v1/containers/{second['uuid']}", params={"stop": "true"})
        assert r.status_code == 204, r.text
        demo.wait_gone(second["uuid"])
    assert demo.http("DELETE", f"/v1/security_groups/{group['id']}").status_code == 204


def security_map() -> str:
    """The addresses the host's security rules guard."""
    return subprocess.run(["nft", "list", "map", "inet", "zun", "ingress"],
                          capture_output=True, text=True, check=True).stdout


WEB_RULES = [{"direction": "ingress", "protocol": "tcp", "port_range_min": 8080,
              "port_range_max": 8080, "remote_ip_prefix": "0.0.0.0/0"},
             {"direction": "egress"}]


def test_security_groups_decide_who_reaches_a_container(demo, alt, servers, keystone):
    """A group made through /v1/security_groups, given with the real CLI's
    `--security-group`, then `add/remove security group` (API 1.14, where
    upstream has them): reachability follows at once."""
    for bad in ({"name": "x", "rules": [{"direction": "sideways"}]},
                {"name": "x", "rules": [{"direction": "ingress", "port_range_min": 80}]},
                {"name": "x", "colour": "blue"}, {"rules": []}):
        r = demo.http("POST", "/v1/security_groups", json=bad)
        assert r.status_code == 400, (bad, r.text)
    r = demo.http("POST", "/v1/security_groups", json={"name": "web8080", "rules": WEB_RULES})
    assert r.status_code == 201, r.text
    group = r.json()
    assert [x["protocol"] for x in group["security_group_rules"]] == ["tcp", None]
    r = demo.http("POST", "/v1/security_groups", json={"name": "web8080"})
    assert r.status_code == 409, r.text
    # Another project neither sees nor uses it.
    r = alt.http("POST", "/v1/containers", json={"image": IMAGE, "security_groups": ["web8080"]})
    assert r.status_code == 400 and "web8080 not found" in r.text, r.text
    two_servers = ("mkdir -p /www && hostname > /www/index.html && httpd -p 9090 -h /www "
                   "&& exec httpd -f -p 8080 -h /www")
    env = keystone.cli_env("demo")
    r = subprocess.run([OPENSTACK, "appcontainer", "run", "--name", "net-sg", "--hostname", "sg",
                        "--security-group", "web8080", "-f", "json", IMAGE, "/bin/sh", "-c",
                        two_servers], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                       env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    sg = demo.wait_status(json.loads(r.stdout)["uuid"], "Running")
    assert sg["security_groups"] == [group["id"]], sg
    ip = ip_of(sg)
    deadline = time.monotonic() + 10
    while reaches_http(sg["uuid"], "127.0.0.1", 9090) is None:
        assert time.monotonic() < deadline, "the second httpd does not answer"
        time.sleep(0.2)
    alt_a, demo_a = servers["alt_a"]["uuid"], servers["demo_a"]["uuid"]

    def cli(*args: str) -> None:
        r = subprocess.run([OPENSTACK, "--os-container-api-version", "1.14", "appcontainer",
                            *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                           env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr

    def settle(check) -> None:
        deadline = time.monotonic() + 15
        while not check():
            assert time.monotonic() < deadline
            time.sleep(0.3)

    try:
        assert host_http(ip, 8080) == "sg\n"
        assert host_http(ip, 9090) is None
        assert reaches_http(alt_a, ip, 8080) == "sg"
        assert reaches_http(demo_a, ip, 9090) is None, "not in the default group"
        # Its egress rule lets it out, but demo_a's default group admits
        # only the group's members.
        assert reaches_http(sg["uuid"], ip_of(servers["demo_a"])) is None
        r = demo.http("DELETE", f"/v1/security_groups/{group['id']}")
        assert r.status_code == 409, "in use"
        cli("add", "security", "group", "net-sg", "default")
        settle(lambda: reaches_http(demo_a, ip, 9090) == "sg")
        settle(lambda: reaches_http(sg["uuid"], ip_of(servers["demo_a"])) == "demo-a")
        view = demo.get(sg["uuid"]).json()
        assert len(view["security_groups"]) == 2, view
        cli("remove", "security", "group", "net-sg", "web8080")
        settle(lambda: host_http(ip, 8080) is None)
        assert reaches_http(alt_a, ip, 8080) is None
        assert reaches_http(demo_a, ip, 8080) == "sg", "the default group's members still do"
        r = demo.http("POST", f"/v1/containers/{sg['uuid']}/remove_security_group",
                      params={"name": "web8080"}, version="1.14")
        assert r.status_code == 400, r.text
        r = demo.http("POST", f"/v1/containers/{sg['uuid']}/add_security_group",
                      params={"name": "web8080"}, version="1.15")
        assert r.status_code in (404, 406), r.text
    finally:
        r = demo.http("DELETE", f"/v1/containers/{sg['uuid']}", params={"stop": "true"})
        assert r.status_code == 204, r.text
        demo.wait_gone(sg["uuid"])
    assert ip not in security_map()
    r = demo.http("DELETE", f"/v1/security_groups/{group['id']}")
    assert r.status_code == 204, r.text
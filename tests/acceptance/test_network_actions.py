"""Choosing networks (issue 12), built-in driver: `/v1/networks`, `nets` on
create with a fixed address, and `network_attach` / `network_detach` on a
running container (its namespace is the service's, so a network is plugged
in and out without the engine), through the real CLI and raw HTTP.

Expected shapes and errors: /work/shared/reference/zun-api.md §4.1 (the
network actions), §4.2 (`nets`), §4.7 (`network_list`), §7.8 (networks).
"""

from __future__ import annotations

import ipaddress
import json
import time
import uuid as uuidlib

import pytest

from conftest import IMAGE
from test_networks import HTTPD, in_container, reaches_http

V = "1.40"


def create_network(zun, name: str) -> dict:
    r = zun.http("POST", "/v1/networks", version=V, json={"name": name})
    assert r.status_code == 200, r.text
    return r.json()


def addresses_on(view: dict, network_uuid: str) -> list[str]:
    return [e["addr"] for e in (view.get("addresses") or {}).get(network_uuid, [])]


def error_of(r) -> dict:
    (err,) = r.json()["errors"]
    return err


@pytest.fixture(scope="module")
def backend(zun):
    return create_network(zun, f"backend-{uuidlib.uuid4().hex[:6]}")


def test_networks_api(zun, backend):
    assert set(backend) >= {"uuid", "name", "project_id", "user_id", "network_id",
                            "neutron_net_id"}
    assert backend["project_id"] == zun.project_id
    r = zun.http("POST", "/v1/networks", version=V, json={"name": backend["name"]})
    assert r.status_code == 409, r.text
    r = zun.http("POST", "/v1/networks", version=V, json={"name": "x", "bogus": 1})
    assert r.status_code == 400, r.text
    r = zun.http("POST", "/v1/networks", version=V, json={})
    assert r.status_code == 400 and "'name' is a required property" in r.text, r.text
    r = zun.http("POST", "/v1/networks", version=V,
                 json={"name": "neutronish", "neutron_net_id": str(uuidlib.uuid4())})
    assert r.status_code == 400, r.text
    r = zun.http("GET", "/v1/networks", version=V)
    assert backend["uuid"] in [n["uuid"] for n in r.json()["networks"]]
    r = zun.http("DELETE", "/v1/networks/no-such-net", version=V)
    assert r.status_code == 404 and error_of(r)["code"] == "container.network-not-found"
    r = zun.http("DELETE", f"/v1/networks/{backend['uuid']}", version="1.26")
    assert r.status_code == 406, r.text


def test_nets_with_a_fixed_address_through_the_cli(zun, backend):
    subnet = ipaddress.IPv4Network(backend["cidr"])
    fixed = str(subnet.network_address + 77)
    rc, out, err = zun.openstack("appcontainer", "run", "--name", "net-fixed", "-f", "json",
                                 "--net", f"network={backend['name']},v4-fixed-ip={fixed}",
                                 IMAGE, *HTTPD)
    assert rc == 0, err
    view = zun.wait_status(json.loads(out)["uuid"], "Running")
    assert list(view["addresses"]) == [backend["uuid"]]
    assert addresses_on(view, backend["uuid"]) == [fixed]
    assert f" {fixed}/" in in_container(view["uuid"], "ip -4 -o addr show dev eth0").stdout
    # The address is taken now.
    r = zun.http("POST", "/v1/containers", version=V, params={"run": "true"},
                 json={"image": IMAGE, "command": HTTPD,
                       "nets": [{"network": backend["uuid"], "v4-fixed-ip": fixed}]})
    assert r.status_code == 202, r.text
    taken = zun.wait_status(r.json()["uuid"], "Error")
    assert fixed in taken["status_reason"], taken
    for uuid in (view["uuid"], taken["uuid"]):
        zun.http("DELETE", f"/v1/containers/{uuid}", version=V, params={"force": "true"})
        zun.wait_gone(uuid)


@pytest.mark.parametrize("nets, status, code", [
    ([{"network": "no-such-net"}], 404, "container.network-not-found"),
    ([{"network": "private", "port": "p"}], 400, "container.schema-validation-error"),
    ([{}], 400, "container.schema-validation-error"),
    ([{"network": "private", "x": 1}], 400, "container.schema-validation-error"),
    ([{"network": "private", "v4-fixed-ip": "nope"}], 400, "container.schema-validation-error"),
    ([{"network": "private", "v6-fixed-ip": "::1"}], 400, "container.invalid"),
    ([{"port": str(uuidlib.uuid4())}], 400, "container.invalid"),
    ([{"network": "private"}, {"network": "private"}], 400, "container.invalid"),
])
def test_bad_nets_are_refused(zun, nets, status, code):
    r = zun.http("POST", "/v1/containers", version=V, json={"image": IMAGE, "nets": nets})
    assert r.status_code == status, r.text
    assert error_of(r)["code"] == code, r.text


def test_a_fixed_address_outside_the_subnet_is_refused(zun, backend):
    r = zun.http("POST", "/v1/containers", version=V,
                 json={"image": IMAGE, "nets": [{"network": backend["name"],
                                                 "v4-fixed-ip": "192.0.2.10"}]})
    assert r.status_code == 400 and error_of(r)["code"] == "container.invalid", r.text


def test_attach_and_detach_a_network_while_running(zun, backend):
    a = zun.create({"name": "net-a", "command": HTTPD, "hostname": "net-a"}, run=True)
    b = zun.create({"name": "net-b", "command": HTTPD, "hostname": "net-b",
                    "nets": [{"network": backend["name"]}]}, run=True)
    a, b = (zun.wait_status(v["uuid"], "Running") for v in (a, b))
    (private,) = a["addresses"]
    b_ip = addresses_on(b, backend["uuid"])[0]
    assert reaches_http(a["uuid"], b_ip) is None, "different networks"

    rc, _, err = zun.openstack("appcontainer", "network", "attach", "--network",
                               backend["name"], a["uuid"])
    assert rc == 0, err
    view = zun.get(a["uuid"]).json()
    assert set(view["addresses"]) == {private, backend["uuid"]}
    a_backend = addresses_on(view, backend["uuid"])[0]
    assert view["status"] == "Running", "attached without a restart"
    assert reaches_http(a["uuid"], b_ip) == "net-b"
    assert reaches_http(b["uuid"], a_backend) == "net-a"
    r = zun.http("GET", f"/v1/containers/{a['uuid']}/network_list", version=V)
    assert sorted(n["net_id"] for n in r.json()["networks"]) == sorted([private, backend["uuid"]])
    # Already attached.
    r = zun.http("POST", f"/v1/containers/{a['uuid']}/network_attach", version=V,
                 params={"network": backend["uuid"]})
    assert r.status_code == 400 and error_of(r)["code"] == "container.invalid", r.text
    # Both network and port, or neither.
    r = zun.http("POST", f"/v1/containers/{a['uuid']}/network_attach", version=V,
                 params={"network": backend["uuid"], "port": "p"})
    assert r.status_code == 400, r.text
    # In use: the network cannot go.
    r = zun.http("DELETE", f"/v1/networks/{backend['uuid']}", version=V)
    assert r.status_code == 409, r.text

    rc, _, err = zun.openstack("appcontainer", "network", "detach", "--network",
                               backend["name"], a["uuid"])
    assert rc == 0, err
    deadline = time.monotonic() + 30
    while set(zun.get(a["uuid"]).json()["addresses"]) != {private}:
        assert time.monotonic() < deadline, zun.get(a["uuid"]).json()["addresses"]
        time.sleep(0.2)
    assert reaches_http(a["uuid"], b_ip) is None
    assert f" {a_backend}/" not in in_container(a["uuid"], "ip -4 -o addr show").stdout
    r = zun.http("POST", f"/v1/containers/{a['uuid']}/network_detach", version=V,
                 params={"network": backend["uuid"]})
    assert r.status_code == 400 and error_of(r)["code"] == "container.invalid", r.text
    actions = [x["action"] for x in zun.http(
        "GET", f"/v1/containers/{a['uuid']}/container_actions", version=V).json()["containerActions"]]
    assert {"network_attach", "network_detach"} <= set(actions)

    for view in (a, b):
        zun.http("DELETE", f"/v1/containers/{view['uuid']}", version=V, params={"force": "true"})
        zun.wait_gone(view["uuid"])


def test_two_networks_at_create_and_the_first_routes(zun, backend):
    view = zun.create({"name": "net-two", "command": HTTPD,
                       "nets": [{"network": "private"}, {"network": backend["uuid"]}]}, run=True)
    view = zun.wait_status(view["uuid"], "Running")
    assert len(view["addresses"]) == 2 and backend["uuid"] in view["addresses"]
    links = in_container(view["uuid"], "ip -o link show").stdout
    assert "eth0" in links and "eth1" in links
    route = in_container(view["uuid"], "ip route show default").stdout
    assert "dev eth0" in route, route
    zun.http("DELETE", f"/v1/containers/{view['uuid']}", version=V, params={"force": "true"})
    zun.wait_gone(view["uuid"])


def test_an_unused_network_is_deleted(zun):
    scratch = create_network(zun, f"scratch-{uuidlib.uuid4().hex[:6]}")
    r = zun.http("DELETE", f"/v1/networks/{scratch['uuid']}", version=V)
    assert r.status_code == 204 and r.content == b"", r.text
    r = zun.http("GET", f"/v1/networks/{scratch['uuid']}", version=V)
    assert r.status_code == 404

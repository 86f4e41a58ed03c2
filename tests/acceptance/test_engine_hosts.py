"""The test infrastructure for several compute hosts on one machine (not the
product): scripts/hosts.sh through engine_hosts.EngineHosts, three hosts, each a
network namespace with its own dockerd."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from engine_hosts import PREFIX, EngineHosts

COUNT = 3


@pytest.fixture(scope="module")
def hosts():
    with EngineHosts(COUNT) as h:
        yield h


def ok(r):
    assert r.returncode == 0, f"{r.args}: {r.stderr}"
    return r.stdout.strip()


def test_sockets_and_namespaces(hosts):
    assert len(hosts.sockets) == COUNT == len(set(hosts.sockets))
    assert hosts.namespaces == [f"{PREFIX}-{i}" for i in range(1, COUNT + 1)]
    for i in range(COUNT):
        assert os.path.exists(f"/var/run/netns/{hosts.namespaces[i]}")
        assert ok(hosts.docker(i, "image", "inspect", "--format", "{{.Id}}", "busybox:latest"))


def test_each_dockerd_runs_in_its_own_namespace(hosts):
    links = []
    for i in range(COUNT):
        link = os.readlink(f"/proc/{hosts.dockerd_pid(i)}/ns/net")
        assert link == hosts.netns_link(i), f"host {i + 1}'s dockerd is in {link}"
        links.append(link)
    assert len(set(links)) == COUNT, links
    root = os.readlink("/proc/self/ns/net")  # pytest runs in the root namespace
    assert root not in links, (root, links)


def test_container_runs_in_each_engine_only_visible_there(hosts):
    names = [f"zun-hosts-test-{uuid.uuid4().hex[:8]}-{i + 1}" for i in range(COUNT)]
    try:
        for i, name in enumerate(names):
            ok(hosts.docker(i, "run", "-d", "--name", name, "busybox:latest", "sleep", "300"))
        for i, name in enumerate(names):
            state = json.loads(ok(hosts.docker(i, "inspect", "--format", "{{json .State}}", name)))
            assert state["Running"] and state["Pid"] > 0, state
            seen = ok(hosts.docker(i, "ps", "-a", "--filter", "name=zun-hosts-test-",
                                   "--format", "{{.Names}}")).split()
            assert name in seen
            assert not set(seen) & (set(names) - {name}), f"host {i + 1} sees {seen}"
            # Its process lives in a cgroup under the host's cgroup parent.
            with open(f"/proc/{state['Pid']}/cgroup") as f:
                assert f"/{PREFIX}-{i + 1}/" in f.read()
    finally:
        for i, name in enumerate(names):
            hosts.docker(i, "rm", "-f", name)


def test_host_network_container_sees_the_namespace(hosts):
    for i in range(COUNT):
        out = ok(hosts.docker(i, "run", "--rm", "--network", "host", "busybox:latest",
                              "sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev"))
        link, *dev = out.splitlines()
        assert link == hosts.netns_link(i)
        # The namespace has loopback and its leg on the underlay between
        # hosts only (the root namespace has more).
        names = sorted(line.split(":")[0].strip() for line in dev if ":" in line)
        assert names == ["lo", "uly0"], dev

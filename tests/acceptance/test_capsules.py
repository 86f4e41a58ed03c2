"""Capsules (issue 14): Zun's pods through `/v1/capsules`, the real
`openstack capsule` CLI (python-zunclient 5.4.0) and the real engine.

A capsule's containers share the capsule's network namespace (one address,
`localhost` between them), an IPC namespace and `/dev/shm`, and its
volumes; init containers run to completion, in order, first. Upstream's
shapes: /work/shared/reference/zun-api.md §6 (endpoints, template, view);
template errors upstream answered with a 500 are 400 here (§12).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import IMAGE, MAX_VERSION, ZunAllInOne, _make, docker_cmd, engine_zun_containers

V = MAX_VERSION
CAPSULE_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def zun(engine_cleanup, tmp_path_factory, log_dir):
    """An all-in-one of its own (it is killed and restarted by one test)."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "cap")
    try:
        z.start()
        yield z
    finally:
        z.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


def post(zun, template, version: str = V):
    return zun.http("POST", "/v1/capsules", version=version, json={"template": template})


def create(zun, template) -> dict:
    r = post(zun, template)
    assert r.status_code == 202, f"capsule create -> {r.status_code} {r.text}"
    assert r.headers["Location"].endswith(f"/v1/capsules/{r.json()['uuid']}")
    return r.json()


def show(zun, ident: str, version: str = V):
    return zun.http("GET", f"/v1/capsules/{ident}", version=version)


def wait_capsule(zun, ident: str, statuses, timeout: float = CAPSULE_TIMEOUT_S) -> dict:
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = show(zun, ident)
        if r.status_code == 200:
            last = r.json()
            if last["status"] in statuses:
                return last
            if last["status"] == "Error" and "Error" not in statuses:
                pytest.fail(f"capsule {ident} went to Error: {last['status_reason']!r}")
        else:
            last = f"{r.status_code} {r.text}"
        time.sleep(0.3)
    pytest.fail(f"capsule {ident} not in {sorted(statuses)} after {timeout}s; last: {last}")


def delete(zun, ident: str) -> None:
    r = zun.http("DELETE", f"/v1/capsules/{ident}", version=V)
    assert r.status_code == 204, f"capsule delete -> {r.status_code} {r.text}"
    deadline = time.monotonic() + CAPSULE_TIMEOUT_S
    while show(zun, ident).status_code != 404:
        assert time.monotonic() < deadline, f"capsule {ident} still there"
        time.sleep(0.3)


def member(view: dict, name: str) -> dict:
    """A member of a capsule view by the name its template gave it."""
    found = [c for c in view["containers"] + view["init_containers"]
             if c["name"].endswith(f"-{name}")]
    assert len(found) == 1, f"{name} in {[c['name'] for c in found]}"
    return found[0]


def logs(zun, ident: str) -> str:
    r = zun.http("GET", f"/v1/containers/{ident}/logs", version=V)
    assert r.status_code == 200, f"logs -> {r.status_code} {r.text}"
    return r.json()


def wait_logs(zun, ident: str, needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = logs(zun, ident)
        if needle in text:
            return text
        time.sleep(0.3)
    pytest.fail(f"{needle!r} not in the logs of {ident} within {timeout}s: {text!r}")


def execute(zun, ident: str, command: str) -> dict:
    r = zun.http("POST", f"/v1/containers/{ident}/execute", version=V,
                 params={"command": command, "run": "true"})
    assert r.status_code == 200, f"exec {command} -> {r.status_code} {r.text}"
    return r.json()


def engine_members(zun) -> set[str]:
    """The uuids of the engine containers of this test's host."""
    return {name.removeprefix("zun-") for name in engine_zun_containers(zun.host_name).values()}


def namespaces_dir(zun) -> Path:
    return Path("/run/zun/capsules") / zun.host_name


POD_YAML = """\
capsuleVersion: beta
kind: capsule
metadata:
  name: {name}
  labels:
    app: web
  annotations:
    team: blue
spec:
  restartPolicy: Always
  initContainers:
  - name: first
    image: busybox
    command: ["sh", "-c", "echo first >> /shared/order; sleep 1"]
    volumeMounts:
    - name: shared
      mountPath: /shared
  - name: second
    image: busybox
    command: ["sh", "-c", "echo second >> /shared/order"]
    volumeMounts:
    - name: shared
      mountPath: /shared
  containers:
  - name: server
    image: busybox
    command: ["sh", "-c"]
    args: ["echo hello-from-server > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
    ports:
    - containerPort: 8080
    resources:
      requests:
        cpu: 0.5
        memory: 64
  - name: client
    image: busybox
    command: ["sh", "-c", "cat /shared/order; until wget -q -O - http://localhost:8080/; do sleep 0.2; done; exec sleep 3600"]
    env:
      ROLE: client
    volumeMounts:
    - name: shared
      mountPath: /shared
      readOnly: true
    resources:
      requests:
        cpu: 0.25
        memory: 32
  volumes:
  - name: shared
    cinder:
      size: 1
      autoRemove: true
"""


def test_a_capsule_from_the_cli_runs_its_containers_together(zun, tmp_path):
    """The real CLI creates a capsule from a YAML file: the init containers
    ran in order before the others, the client reaches the server on
    localhost, all share one address, IPC namespace and /dev/shm; list,
    show and delete work, and nothing is left behind."""
    name = unique("pod")
    template = tmp_path / "pod.yaml"
    template.write_text(POD_YAML.format(name=name))
    created = zun.openstack_json("capsule", "create", "--file", str(template), "-f", "json")
    assert created["name"] == name
    assert created["status"] == "Creating"
    uuid = created["uuid"]
    view = wait_capsule(zun, uuid, "Running")

    # Upstream's view (1.32+): summed requests, the template's metadata.
    assert view["cpu"] == 0.75
    assert view["memory"] == "96"
    assert view["labels"] == {"app": "web"}
    assert view["annotations"] == {"team": "blue"}
    assert view["restart_policy"] == {"Name": "always", "MaximumRetryCount": "0"}
    assert view["host"] == zun.host_name
    assert [c["name"] for c in view["init_containers"]] == [
        f"capsule-{name}-first", f"capsule-{name}-second"]
    assert {c["status"] for c in view["init_containers"]} == {"Stopped"}
    assert {c["status"] for c in view["containers"]} == {"Running"}
    [(network, ports)] = view["addresses"].items()
    [address] = ports
    for c in view["containers"]:
        assert c["addresses"] == view["addresses"], "members show the capsule's one address"

    server, client = member(view, "server"), member(view, "client")
    text = wait_logs(zun, client["uuid"], "hello-from-server")
    assert text.index("first") < text.index("second") < text.index("hello-from-server")
    assert execute(zun, client["uuid"], "sh -c 'echo $ROLE'")["output"].strip() == "client"
    # Shared IPC namespace and /dev/shm; separate mount namespaces.
    ipc = {execute(zun, c["uuid"], "readlink /proc/self/ns/ipc")["output"].strip()
           for c in (server, client)}
    assert len(ipc) == 1, ipc
    execute(zun, server["uuid"], "sh -c 'echo shared > /dev/shm/note'")
    assert execute(zun, client["uuid"], "cat /dev/shm/note")["output"].strip() == "shared"
    # The volume is read-only for the client, as its volumeMount says.
    assert execute(zun, client["uuid"], "touch /shared/x")["exit_code"] != 0
    # The server's `ports` are the capsule's exposed ports: the host
    # reaches them on the capsule's one address.
    assert address["version"] == 4
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(f"http://{address['addr']}:8080/", timeout=5) as page:
        assert page.read().decode() == "hello-from-server\n"

    # The CLI's list and show; containers of capsules are not in the
    # container list, and their life is the capsule's.
    listed = zun.openstack_json("capsule", "list", "-f", "json")
    assert {c["uuid"]: c["status"] for c in listed}.get(uuid) == "Running"
    shown = zun.openstack_json("capsule", "show", name, "-f", "json")
    assert shown["uuid"] == uuid and shown["addresses"] == address["addr"]
    assert server["uuid"] not in {c["uuid"] for c in zun.list_all()}
    r = zun.http("POST", f"/v1/containers/{server['uuid']}/stop", version=V)
    assert r.status_code == 409 and "belongs to capsule" in r.text, r.text
    r = zun.http("DELETE", f"/v1/containers/{server['uuid']}", version=V)
    assert r.status_code == 409, r.text
    rc, out, err = zun.openstack("appcontainer", "logs", client["uuid"])
    assert rc == 0 and "hello-from-server" in out, err

    rc, out, err = zun.openstack("capsule", "delete", name)
    assert rc == 0 and "accepted" in out, (out, err)
    deadline = time.monotonic() + CAPSULE_TIMEOUT_S
    while show(zun, uuid).status_code != 404:
        assert time.monotonic() < deadline, "capsule not deleted"
        time.sleep(0.3)
    members = [c["uuid"] for c in view["containers"] + view["init_containers"]]
    for m in members:
        assert zun.get(m).status_code == 404
        assert zun.inspect(m) is None, f"engine container of {m} left behind"
    assert not (namespaces_dir(zun) / uuid).exists()
    # The volume made with autoRemove went with it.
    assert zun.http("GET", "/v1/volumes", version=V).json()["volumes"] == []


def simple_template(name: str, policy: str, init_command: str | None = None,
                    command: str = "exec sleep 3600") -> dict:
    spec: dict = {
        "restartPolicy": policy,
        "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", command]}],
    }
    if init_command is not None:
        spec["initContainers"] = [
            {"name": "prepare", "image": IMAGE, "command": ["sh", "-c", init_command]}]
    return {"kind": "capsule", "metadata": {"name": name}, "spec": spec}


def test_a_failing_init_container_fails_the_capsule_with_its_reason(zun):
    name = unique("init-fails")
    made = create(zun, simple_template(name, "Always", "echo preparing; exit 3"))
    view = wait_capsule(zun, made["uuid"], "Error")
    assert "prepare" in view["status_reason"] and "code 3" in view["status_reason"], view
    main = member(view, "main")
    assert main["status"] == "Error"
    assert zun.inspect(main["uuid"]) is None, "the containers after it never ran"
    delete(zun, made["uuid"])


def engine_pid(uuid: str) -> int:
    r = docker_cmd("inspect", "-f", "{{.State.Pid}}", f"zun-{uuid}")
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def restart_count(uuid: str) -> int:
    r = docker_cmd("inspect", "-f", "{{.RestartCount}}", f"zun-{uuid}")
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


@pytest.mark.parametrize("policy,comes_back", [
    ("Always", True), ("OnFailure", True), ("Never", False)])
def test_restart_policies_apply_to_each_container(zun, policy, comes_back):
    """The process of a capsule's container is killed on the host: the
    engine restarts it as the capsule's restartPolicy says, or the capsule
    shows it stopped, naming it."""
    made = create(zun, simple_template(unique(f"restart-{policy.lower()}"), policy))
    view = wait_capsule(zun, made["uuid"], "Running")
    main = member(view, "main")
    os.kill(engine_pid(main["uuid"]), signal.SIGKILL)
    if comes_back:
        deadline = time.monotonic() + 60
        while restart_count(main["uuid"]) < 1:
            assert time.monotonic() < deadline, "the engine did not restart it"
            time.sleep(0.3)
        zun.wait_status(main["uuid"], "Running", timeout=60)
        wait_capsule(zun, made["uuid"], "Running")
    else:
        zun.wait_status(main["uuid"], "Stopped", timeout=60)
        stopped = wait_capsule(zun, made["uuid"], "Stopped", timeout=60)
        assert "main" in stopped["status_reason"] and "137" in stopped["status_reason"], stopped
    delete(zun, made["uuid"])


def test_the_view_of_older_microversions_is_the_legacy_one(zun):
    made = create(zun, simple_template(unique("legacy"), "Never", command="true"))
    try:
        old = show(zun, made["uuid"], version="1.31").json()
        assert old["meta_name"] == made["name"] and "name" not in old
        assert old["restart_policy"] == "no"
        assert old["volumes_info"] == {} and old["containers_uuids"] == []
        assert old["capsule_version"] == ""
        listed = zun.http("GET", "/v1/capsules", version=V).json()
        [item] = [c for c in listed["capsules"] if c["uuid"] == made["uuid"]]
        assert item["links"][0]["href"].endswith(f"/v1/capsules/{made['uuid']}")
        assert "next" in listed
        # The unversioned alias the python client's legacy HTTP client uses.
        assert zun.http("GET", f"/capsules/{made['uuid']}", version=V).status_code == 200
    finally:
        wait_capsule(zun, made["uuid"], {"Stopped", "Running", "Error"})
        delete(zun, made["uuid"])


BAD_TEMPLATES = {
    "no template": None,
    "not an object": "[1, 2]",
    "not JSON": "{kind: capsule",
    "missing kind": {"metadata": {}, "spec": {"containers": [{"image": IMAGE}]}},
    "missing metadata": {"kind": "capsule", "spec": {"containers": [{"image": IMAGE}]}},
    "missing spec": {"kind": "capsule", "metadata": {}},
    "wrong kind": {"kind": "pod", "metadata": {}, "spec": {"containers": [{"image": IMAGE}]}},
    "wrong version": {"kind": "capsule", "capsuleVersion": "v1", "metadata": {},
                      "spec": {"containers": [{"image": IMAGE}]}},
    "unknown top key": {"kind": "capsule", "metadata": {}, "nets": [],
                        "spec": {"containers": [{"image": IMAGE}]}},
    "bad name": {"kind": "capsule", "metadata": {"name": "-x"},
                 "spec": {"containers": [{"image": IMAGE}]}},
    "no containers key": {"kind": "capsule", "metadata": {}, "spec": {}},
    "empty containers": {"kind": "capsule", "metadata": {}, "spec": {"containers": []}},
    "container without image": {"kind": "capsule", "metadata": {},
                                "spec": {"containers": [{"name": "a"}]}},
    "unknown container key": {"kind": "capsule", "metadata": {},
                              "spec": {"containers": [{"image": IMAGE, "privileged": True}]}},
    "bad restart policy": {"kind": "capsule", "metadata": {},
                           "spec": {"restartPolicy": "Sometimes",
                                    "containers": [{"image": IMAGE}]}},
    "bad cpu": {"kind": "capsule", "metadata": {}, "spec": {"containers": [
        {"image": IMAGE, "resources": {"requests": {"cpu": 1000}}}]}},
    "unknown resource": {"kind": "capsule", "metadata": {}, "spec": {"containers": [
        {"image": IMAGE, "resources": {"limits": {"cpu": 1}}}]}},
    "port without containerPort": {"kind": "capsule", "metadata": {}, "spec": {"containers": [
        {"image": IMAGE, "ports": [{"protocol": "TCP"}]}]}},
    "bad protocol": {"kind": "capsule", "metadata": {}, "spec": {"containers": [
        {"image": IMAGE, "ports": [{"containerPort": 80, "protocol": "SCTP"}]}]}},
    "init container without image": {"kind": "capsule", "metadata": {}, "spec": {
        "initContainers": [{"name": "i"}], "containers": [{"image": IMAGE}]}},
    "volume without size or id": {"kind": "capsule", "metadata": {}, "spec": {
        "containers": [{"image": IMAGE, "volumeMounts": [{"name": "v1", "mountPath": "/v"}]}],
        "volumes": [{"name": "v1", "cinder": {}}]}},
    "volume with size and id": {"kind": "capsule", "metadata": {}, "spec": {
        "containers": [{"image": IMAGE, "volumeMounts": [{"name": "v1", "mountPath": "/v"}]}],
        "volumes": [{"name": "v1", "cinder": {"size": 1,
                                              "volumeID": str(uuidlib.uuid4())}}]}},
    "volume not cinder": {"kind": "capsule", "metadata": {}, "spec": {
        "containers": [{"image": IMAGE, "volumeMounts": [{"name": "v1", "mountPath": "/v"}]}],
        "volumes": [{"name": "v1", "hostPath": {"path": "/etc"}}]}},
    "unreferenced volume": {"kind": "capsule", "metadata": {}, "spec": {
        "containers": [{"image": IMAGE}],
        "volumes": [{"name": "v1", "cinder": {"size": 1}}]}},
    "mount of an unknown volume": {"kind": "capsule", "metadata": {}, "spec": {
        "containers": [{"image": IMAGE, "volumeMounts": [{"name": "v9", "mountPath": "/v"}]}]}},
    "relative mount path": {"kind": "capsule", "metadata": {}, "spec": {
        "containers": [{"image": IMAGE, "volumeMounts": [{"name": "v1", "mountPath": "v"}]}],
        "volumes": [{"name": "v1", "cinder": {"size": 1}}]}},
}


@pytest.mark.parametrize("case", sorted(BAD_TEMPLATES))
def test_every_malformed_template_is_a_400(zun, case):
    template = BAD_TEMPLATES[case]
    body = {} if template is None else {"template": template}
    r = zun.http("POST", "/v1/capsules", version=V, json=body)
    assert r.status_code == 400, f"{case}: {r.status_code} {r.text}"
    [error] = r.json()["errors"]
    assert error["status"] == 400 and error["detail"], error
    assert error["code"].startswith("container."), error


def test_a_capsule_create_is_json_only_and_unknown_capsules_are_404(zun):
    r = zun.http("POST", "/v1/capsules", version=V, data="kind: capsule",
                 headers={"Content-Type": "application/yaml"})
    assert r.status_code == 415, r.text
    ident = str(uuidlib.uuid4())
    for method in ("GET", "DELETE"):
        r = zun.http(method, f"/v1/capsules/{ident}", version=V)
        assert r.status_code == 404, r.text
        assert r.json()["errors"][0]["code"] == "container.container-not-found"


def test_a_killed_agent_leaves_no_capsule_half_made(zun):
    """zund is SIGKILLed while 10 capsules are being created, then started
    again: every capsule ends Running or Error, and the engine holds
    exactly the members of the capsules the store has, each capsule one
    set of namespaces."""
    templates = [simple_template(unique("crash"), "Always", "sleep 0.5")
                 for _ in range(10)]
    for t in templates:
        t["spec"]["containers"].append(
            {"name": "side", "image": IMAGE, "command": ["sh", "-c", "exec sleep 3600"]})
    with ThreadPoolExecutor(max_workers=10) as pool:
        made = list(pool.map(lambda t: create(zun, t), templates))
    time.sleep(1.0)
    for p in zun.processes:
        p.kill()
    zun.processes.clear()
    zun.start()
    views = [wait_capsule(zun, m["uuid"], {"Running", "Error"}, timeout=120) for m in made]
    members = {c["uuid"] for v in views for c in v["containers"] + v["init_containers"]}
    running = [v for v in views if v["status"] == "Running"]
    assert running, [v["status_reason"] for v in views]
    held = engine_members(zun)
    expected = {c["uuid"] for v in running for c in v["containers"] + v["init_containers"]}
    assert held - members == set(), "engine containers no capsule has"
    assert expected <= held
    assert {p.name for p in namespaces_dir(zun).iterdir()} >= {v["uuid"] for v in running}
    for m in made:
        delete(zun, m["uuid"])
    assert not any(namespaces_dir(zun).iterdir())
    assert engine_members(zun) & members == set()


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.3)


@pytest.mark.parametrize("policy,comes_back", [("Always", True), ("Never", False)])
def test_a_member_removed_behind_the_services_back(zun, policy, comes_back):
    """`docker rm -f` of a capsule's container: one whose restart policy
    would bring it back is made again in the capsule's sandbox (the
    engine's event, at the latest the next resync: 10 s); another leaves
    the capsule in Error, naming it."""
    made = create(zun, simple_template(unique(f"removed-{policy.lower()}"), policy))
    view = wait_capsule(zun, made["uuid"], "Running")
    main = member(view, "main")
    old_id = zun.inspect(main["uuid"])["Id"]
    r = docker_cmd("rm", "-f", f"zun-{main['uuid']}")
    assert r.returncode == 0, r.stderr
    if comes_back:
        wait_until(lambda: (zun.inspect(main["uuid"]) or {}).get("Id") not in (None, old_id),
                   "the member made again")
        zun.wait_status(main["uuid"], "Running", timeout=30)
        again = wait_capsule(zun, made["uuid"], "Running", timeout=30)
        assert member(again, "main")["addresses"] == view["addresses"]
    else:
        failed = wait_capsule(zun, made["uuid"], "Error", timeout=30)
        assert "main" in failed["status_reason"], failed
    delete(zun, made["uuid"])


def test_a_lost_sandbox_is_made_again_and_its_members_rejoin_it(zun):
    """The capsule's IPC namespace and /dev/shm are unmounted behind the
    agent's back (as a reboot would lose them): within a resync the agent
    makes them again and restarts the running members into them, so they
    share one IPC namespace again."""
    t = simple_template(unique("sandbox"), "Always")
    t["spec"]["containers"].append(
        {"name": "side", "image": IMAGE, "command": ["sh", "-c", "exec sleep 3600"]})
    made = create(zun, t)
    view = wait_capsule(zun, made["uuid"], "Running")
    root = namespaces_dir(zun) / made["uuid"]
    def started_at(uuid: str) -> str:
        return zun.inspect(uuid)["State"]["StartedAt"]

    before = {c["uuid"]: started_at(c["uuid"]) for c in view["containers"]}
    for point in ("ipc", "shm"):
        r = subprocess.run(["umount", str(root / point)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def rejoined():
        mounted = [line.split(" ")[4] for line in
                   Path("/proc/self/mountinfo").read_text().splitlines()]
        return (str(root / "ipc") in mounted and str(root / "shm") in mounted
                and all(started_at(uuid) != started for uuid, started in before.items()))

    wait_until(rejoined, "the sandbox made again and its members restarted", timeout=45)
    for c in view["containers"]:
        zun.wait_status(c["uuid"], "Running", timeout=30)
    ipc = {execute(zun, c["uuid"], "readlink /proc/self/ns/ipc")["output"].strip()
           for c in view["containers"]}
    assert len(ipc) == 1, ipc
    wait_capsule(zun, made["uuid"], "Running")
    delete(zun, made["uuid"])

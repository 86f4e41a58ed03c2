"""Quotas and quota classes over raw HTTP against `zund all-in-one` without
Keystone (reference §7.5, §7.6, §8, §10, §12.6).

Most tests use a fresh all-in-one of their own (an admin of one project), so
the containers other test files leave in the session's `zun` do not count
against the quotas set here. Policy checks for a non-admin use `zun_member`.
"""

from __future__ import annotations

import threading
import uuid as uuidlib

import pytest

from conftest import IMAGE, MAX_VERSION, ZunAllInOne, _make

V = MAX_VERSION
DEFAULTS = {"containers": 40, "memory": 51200, "cpu": 20, "disk": 100}
LOOP = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
CONCURRENT_CREATES = 20


@pytest.fixture(scope="module")
def zq(engine_cleanup, tmp_path_factory, log_dir):
    """A fresh all-in-one (admin) whose project holds only this file's containers."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "quota")
    try:
        z.start()
        yield z
    finally:
        z.stop()


def assert_error(r, status: int, code: str, detail: str | None = None):
    """§3.1 error body with one error."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    err = body["errors"][0]
    assert set(err) == {"request_id", "code", "status", "title", "detail", "links"}, err
    assert err["code"] == f"container.{code}", err
    assert err["status"] == status, err
    if detail is not None:
        assert err["detail"] == detail, err
        assert err["title"] == detail, err


def quota_path(z, project: str | None = None) -> str:
    return f"/v1/quotas/{project or z.project_id}"


def get_limits(z, project: str | None = None) -> dict:
    r = z.http("GET", quota_path(z, project), version=V)
    assert r.status_code == 200, r.text
    return r.json()


def in_use(z) -> dict:
    r = z.http("GET", quota_path(z), version=V, params={"usages": "True"})
    assert r.status_code == 200, r.text
    return {k: v["in_use"] for k, v in r.json().items()}


def delete_all(z, uuids) -> None:
    for u in uuids:
        r = z.http("DELETE", f"/v1/containers/{u}", version=V, params={"force": "true"})
        assert r.status_code in (204, 404), f"delete {u}: {r.status_code} {r.text}"
    for u in uuids:
        z.wait_gone(u, timeout=60)


@pytest.fixture
def restore(zq):
    """Reverts the project's quota and the `default` class after a test."""
    yield
    r = zq.http("DELETE", quota_path(zq), version=V)
    assert r.status_code == 200, r.text
    r = zq.http("PUT", "/v1/quota_classes/default", version=V, json=DEFAULTS)
    assert r.status_code == 200, r.text


# ================================================================ reading


def test_defaults_everywhere(zq):
    assert get_limits(zq) == DEFAULTS
    assert get_limits(zq, uuidlib.uuid4().hex) == DEFAULTS
    r = zq.http("GET", f"{quota_path(zq)}/defaults", version=V)
    assert r.status_code == 200, r.text
    assert r.json() == DEFAULTS
    for cls in ("default", "gold"):
        r = zq.http("GET", f"/v1/quota_classes/{cls}", version=V)
        assert r.status_code == 200, r.text
        assert r.json() == DEFAULTS
    # The unversioned alias and a trailing slash reach the same routes.
    r = zq.http("GET", f"/quotas/{zq.project_id}/", version=V)
    assert r.status_code == 200 and r.json() == DEFAULTS, r.text


def test_usages_is_a_boolean(zq):
    """§12.6: upstream shows usages for any non-empty value, even "false";
    here it is a boolean."""
    r = zq.http("GET", quota_path(zq), version=V, params={"usages": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == set(DEFAULTS), body
    for res, limit in DEFAULTS.items():
        assert body[res]["limit"] == limit, body
        assert set(body[res]) == {"limit", "in_use"}, body
        assert isinstance(body[res]["in_use"], (int, float)), body
    for value in ("false", "False", "0", "no", ""):
        r = zq.http("GET", quota_path(zq), version=V, params={"usages": value})
        assert r.status_code == 200 and r.json() == DEFAULTS, f"{value!r}: {r.text}"
    r = zq.http("GET", quota_path(zq), version=V, params={"usages": "maybe"})
    assert_error(r, 400, "schema-validation-error")


# ================================================================ writing


def test_put_get_delete(zq, restore):
    r = zq.http("PUT", quota_path(zq), version=V, json={"containers": 5, "cpu": "8"})
    assert r.status_code == 200, r.text
    assert r.json() == {**DEFAULTS, "containers": 5, "cpu": 8}
    r = zq.http("PUT", quota_path(zq), version=V, json={"memory": -1})
    assert r.status_code == 200, r.text
    assert r.json() == {**DEFAULTS, "containers": 5, "cpu": 8, "memory": -1}
    assert get_limits(zq) == {**DEFAULTS, "containers": 5, "cpu": 8, "memory": -1}
    # Another project is untouched.
    assert get_limits(zq, uuidlib.uuid4().hex) == DEFAULTS

    r = zq.http("DELETE", quota_path(zq), version=V)
    assert r.status_code == 200, r.text
    assert r.text == "null"
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert get_limits(zq) == DEFAULTS


@pytest.mark.parametrize("body, detail", [
    ({"containers": -2},
     "Invalid input for field 'containers'.Value: '-2'. -2 is less than the minimum of -1"),
    ({"cpu": "abc"},
     "Invalid input for field 'cpu'.Value: 'abc'. 'abc' does not match '^-?[0-9]+$'"),
    ({"disk": 1.5},
     "Invalid input for field 'disk'.Value: '1.5'. 1.5 is not of type 'integer', 'string'"),
    ({"volumes": 1}, "Additional properties are not allowed ('volumes' was unexpected)"),
    ([1], "[1] is not of type 'object'"),
])
def test_bad_put_is_400(zq, body, detail):
    for path in (quota_path(zq), "/v1/quota_classes/default"):
        r = zq.http("PUT", path, version=V, json=body)
        assert_error(r, 400, "schema-validation-error", detail)
    assert get_limits(zq) == DEFAULTS


def test_quota_class_default_applies_to_projects(zq, restore):
    r = zq.http("PUT", "/v1/quota_classes/default", version=V, json={"disk": 50})
    assert r.status_code == 200, r.text
    assert r.json() == {**DEFAULTS, "disk": 50}
    assert get_limits(zq)["disk"] == 50
    assert get_limits(zq, uuidlib.uuid4().hex)["disk"] == 50
    r = zq.http("GET", f"{quota_path(zq)}/defaults", version=V)
    assert r.json()["disk"] == 50, r.text
    # Other classes fill missing resources from the configuration.
    r = zq.http("PUT", "/v1/quota_classes/gold", version=V, json={"cpu": 64})
    assert r.status_code == 200 and r.json() == {**DEFAULTS, "cpu": 64}, r.text
    # A project's own row wins over the class.
    r = zq.http("PUT", quota_path(zq), version=V, json={"disk": 7})
    assert r.status_code == 200 and r.json()["disk"] == 7, r.text


# ================================================================ enforcement


def test_concurrent_creates_never_overshoot(zq, restore):
    """20 creates at once against room for 3: exactly 3 are accepted."""
    base = in_use(zq)["containers"]
    r = zq.http("PUT", quota_path(zq), version=V, json={"containers": base + 3})
    assert r.status_code == 200, r.text

    results: list = [None] * CONCURRENT_CREATES
    barrier = threading.Barrier(CONCURRENT_CREATES)

    def create(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            r = zq.http("POST", "/v1/containers", version=V,
                        json={"image": IMAGE, "name": f"quota-{i}", "command": LOOP})
            results[i] = (r.status_code, r)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CONCURRENT_CREATES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    accepted = [r.json()["uuid"] for code, r in results if code == 202]
    try:
        refused = [r for code, r in results if code == 403]
        assert len(accepted) == 3, [(c, getattr(r, "text", r)) for c, r in results]
        assert len(refused) == CONCURRENT_CREATES - 3, results
        for r in refused:
            assert_error(r, 403, "over-quota", "Quota exceeded for resources: ['containers']")
        assert in_use(zq)["containers"] == base + 3
        listed = [c for c in zq.list_all() if c["name"].startswith("quota-")]
        assert len(listed) == 3, listed
    finally:
        delete_all(zq, accepted)
    assert in_use(zq)["containers"] == base


def test_create_and_patch_over_quota(zq, restore):
    used = in_use(zq)
    r = zq.http("PUT", quota_path(zq), version=V,
                json={"cpu": int(used["cpu"]) + 2, "memory": used["memory"] + 1024})
    assert r.status_code == 200, r.text

    # One over on memory and cpu at once: both named, sorted.
    r = zq.http("POST", "/v1/containers", version=V,
                json={"image": IMAGE, "cpu": 3, "memory": 2048, "command": LOOP})
    assert_error(r, 403, "over-quota", "Quota exceeded for resources: ['cpu', 'memory']")

    view = zq.create({"name": "quota-patch", "cpu": 1, "memory": 512, "command": LOOP})
    try:
        zq.wait_status(view["uuid"], "Created")
        r = zq.http("PATCH", f"/v1/containers/{view['uuid']}", version=V, json={"cpu": 3})
        assert_error(r, 403, "over-quota", "Quota exceeded for resources: ['cpu']")
        r = zq.http("PATCH", f"/v1/containers/{view['uuid']}", version=V, json={"memory": 2048})
        assert_error(r, 403, "over-quota", "Quota exceeded for resources: ['memory']")
        assert zq.get(view["uuid"]).json()["cpu"] == 1.0
        # Up to the limit exactly is allowed.
        r = zq.http("PATCH", f"/v1/containers/{view['uuid']}", version=V,
                    json={"cpu": 2, "memory": 1024})
        assert r.status_code == 200, r.text
        assert r.json()["cpu"] == 2.0 and r.json()["memory"] == "1024", r.json()
        usage = in_use(zq)
        assert usage["cpu"] == pytest.approx(used["cpu"] + 2)
        assert usage["memory"] == used["memory"] + 1024
        # A rename needs no quota room.
        r = zq.http("PATCH", f"/v1/containers/{view['uuid']}", version=V,
                    json={"name": "quota-patched"})
        assert r.status_code == 200, r.text
    finally:
        delete_all(zq, [view["uuid"]])


def test_unlimited_quota(zq, restore):
    r = zq.http("PUT", quota_path(zq), version=V, json={"cpu": 0})
    assert r.status_code == 200, r.text
    r = zq.http("POST", "/v1/containers", version=V, json={"image": IMAGE, "cpu": 0.5})
    assert_error(r, 403, "over-quota", "Quota exceeded for resources: ['cpu']")
    r = zq.http("PUT", quota_path(zq), version=V, json={"cpu": -1})
    assert r.status_code == 200, r.text
    view = zq.create({"cpu": 0.5, "command": LOOP})
    delete_all(zq, [view["uuid"]])


# ================================================================ policy (§8)


def test_member_policies(zun_member):
    z = zun_member
    own = quota_path(z)
    other = quota_path(z, uuidlib.uuid4().hex)
    # quota:get and quota:get_default: the owner of that project.
    r = z.http("GET", own, version=V, params={"usages": "true"})
    assert r.status_code == 200, r.text
    r = z.http("GET", f"{own}/defaults", version=V)
    assert r.status_code == 200, r.text
    r = z.http("GET", other, version=V)
    assert_error(r, 403, "policy-not-authorized", "Policy doesn't allow quota:get to be performed.")
    r = z.http("GET", f"{other}/defaults", version=V)
    assert_error(r, 403, "policy-not-authorized",
                 "Policy doesn't allow quota:get_default to be performed.")
    # Admin only: update, delete, quota classes.
    r = z.http("PUT", own, version=V, json={"containers": 1000})
    assert_error(r, 403, "policy-not-authorized",
                 "Policy doesn't allow quota:update to be performed.")
    r = z.http("DELETE", own, version=V)
    assert_error(r, 403, "policy-not-authorized",
                 "Policy doesn't allow quota:delete to be performed.")
    r = z.http("GET", "/v1/quota_classes/default", version=V)
    assert_error(r, 403, "policy-not-authorized",
                 "Policy doesn't allow quota_class:get to be performed.")
    r = z.http("PUT", "/v1/quota_classes/default", version=V, json={"cpu": 1000})
    assert_error(r, 403, "policy-not-authorized",
                 "Policy doesn't allow quota_class:update to be performed.")
    # Schema errors come before the policy check, as upstream's decorators do.
    r = z.http("PUT", own, version=V, json={"containers": "x"})
    assert_error(r, 400, "schema-validation-error")

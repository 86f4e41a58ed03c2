"""Raw HTTP against `zund all-in-one`: discovery, microversion negotiation,
the container view, create validation per microversion, routes per
microversion, error bodies, state conflicts, pagination and container actions.

Expected values come from /work/shared/reference/zun-api.md (sections named
in the test docstrings); where upstream is broken the intended answer is
expected (a 400, never a 500).
"""

from __future__ import annotations

import re
import shlex
import uuid as uuidlib

import pytest

from conftest import IMAGE, MAX_VERSION, MIN_VERSION

V = MAX_VERSION
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
ACTION_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$")
LOOP = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done"]

# §4.3: every key of the view (visibility does not vary by microversion),
# plus `mounts`, this service's one addition (what is mounted where: upstream
# kept it in volume mappings no view showed).
BASE_FIELDS = {
    "uuid", "user_id", "project_id", "name", "image", "command", "status", "status_reason",
    "task_state", "cpu", "memory", "environment", "workdir", "ports", "hostname", "labels",
    "addresses", "restart_policy", "status_detail", "interactive", "tty", "image_driver",
    "security_groups", "auto_remove", "disk", "auto_heal", "healthcheck", "cpu_policy",
    "registry_id", "entrypoint", "created_at", "updated_at", "mounts",
}
ADMIN_ONLY_FIELDS = {"host", "image_pull_policy", "privileged", "runtime"}
ADMIN_FIELDS = BASE_FIELDS | ADMIN_ONLY_FIELDS
STATUSES = {"Error", "Running", "Stopped", "Paused", "Unknown", "Creating", "Created",
            "Deleted", "Deleting", "Rebuilding", "Dead", "Restarting"}
RESOURCES = ["services", "containers", "images", "networks", "hosts", "capsules",
             "availability_zones", "quotas", "quota_classes", "registries"]
SUPPORTED_RANGE = "The supported version range is: [container 1.1, container 1.40]."


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:8]}"


def assert_error(r, status: int, code: str, detail: str | None = None,
                 detail_startswith: str | None = None, detail_contains: str | None = None):
    """§3.1 error body: exactly one error with upstream's keys."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"errors"}, body
    assert isinstance(body["errors"], list) and len(body["errors"]) == 1, body
    err = body["errors"][0]
    assert set(err) == {"request_id", "code", "status", "title", "detail", "links"}, err
    assert err["request_id"] == "", err
    assert err["status"] == status, err
    assert err["links"] == [], err
    assert err["code"] == f"container.{code}", err
    assert isinstance(err["title"], str) and isinstance(err["detail"], str), err
    if detail is not None:
        assert err["detail"] == detail, err
    if detail_startswith is not None:
        assert err["detail"].startswith(detail_startswith), err
    if detail_contains is not None:
        assert detail_contains in err["detail"], err
    return err


def assert_version_headers(r, version: str):
    assert r.headers.get("OpenStack-API-Minimum-Version") == f"container {MIN_VERSION}", r.headers
    assert r.headers.get("OpenStack-API-Maximum-Version") == f"container {MAX_VERSION}", r.headers
    assert r.headers.get("OpenStack-API-Version") == f"container {version}", r.headers
    vary = [v.strip().lower() for v in r.headers.get("Vary", "").split(",")]
    assert "openstack-api-version" in vary, r.headers


@pytest.fixture(scope="module")
def created(zun):
    """One container created (not started) at the newest microversion."""
    view = zun.create({"name": unique("fields"), "environment": {"A": "1"},
                       "labels": {"team": "qa"}, "command": ["/bin/true"]})
    zun.wait_status(view["uuid"], {"Created", "Stopped", "Running"})
    return view


@pytest.fixture(scope="module")
def running(zun):
    """One container running the tick loop."""
    view = zun.create({"name": unique("run"), "command": LOOP}, run=True)
    return zun.wait_status(view["uuid"], "Running")


# ============================================================== §1.1 discovery


def test_root_discovery_document(zun):
    r = zun.http("GET", "/")
    assert r.status_code == 200, r.text
    host = zun.base_url
    version = {
        "id": "v1",
        "links": [{"href": f"{host}/v1/", "rel": "self"}],
        "status": "CURRENT",
        "max_version": "1.40",
        "min_version": "1.1",
    }
    assert r.json() == {
        "name": "OpenStack Zun API",
        "description": "Zun is an OpenStack project which aims to provide containers service.",
        "versions": [version],
        "default_version": version,
    }
    # Not microversioned: no version headers on the root document.
    assert "OpenStack-API-Version" not in r.headers, r.headers


def test_root_ignores_version_header(zun):
    r = zun.http("GET", "/", version="9.99")
    assert r.status_code == 200, r.text
    assert r.json()["default_version"]["max_version"] == "1.40"


@pytest.mark.parametrize("path", ["/v1/", "/v1"])
def test_v1_discovery_document(zun, path):
    r = zun.http("GET", path)
    assert r.status_code == 200, r.text
    assert_version_headers(r, "1.1")
    host = zun.base_url
    doc = r.json()
    assert doc["id"] == "v1"
    assert doc["media_types"] == [
        {"base": "application/json", "type": "application/vnd.openstack.zun.v1+json"}
    ]
    assert doc["links"] == [
        {"href": f"{host}/v1/", "rel": "self"},
        {"href": "https://docs.openstack.org/developer/zun/dev/api-spec-v1.html",
         "rel": "describedby", "type": "text/html"},
    ]
    assert set(doc) == {"id", "media_types", "links", *RESOURCES}, sorted(doc)
    for res in RESOURCES:
        assert doc[res] == [
            {"href": f"{host}/v1/{res}/", "rel": "self"},
            {"href": f"{host}/{res}/", "rel": "bookmark"},
        ], res


# ============================================================== §1.2 negotiation


def test_version_headers_on_every_v1_response(zun, created):
    uuid = created["uuid"]
    cases = [
        ("GET", "/v1/containers", None),
        ("GET", f"/v1/containers/{uuid}", None),
        ("GET", f"/v1/containers/{uuid}/container_actions", None),
        ("GET", f"/v1/containers/{uuidlib.uuid4()}", None),  # 404
        ("POST", "/v1/containers", {"image": IMAGE, "bogus": 1}),  # 400
        ("POST", f"/v1/containers/{uuid}/unpause", None),  # 409
    ]
    for version in ["1.1", "1.12", "1.20", "1.36", "1.40"]:
        for method, path, body in cases:
            r = zun.http(method, path, version=version, json=body)
            assert r.status_code < 500, f"{method} {path} @{version}: {r.status_code} {r.text}"
            assert_version_headers(r, version)


def test_absent_header_means_1_1(zun):
    r = zun.http("GET", "/v1/containers")
    assert r.status_code == 200, r.text
    assert_version_headers(r, "1.1")


@pytest.mark.parametrize("value", ["latest", "LATEST", "Latest"])
def test_latest_means_1_40(zun, value):
    r = zun.http("GET", "/v1/containers", version=value)
    assert r.status_code == 200, r.text
    assert_version_headers(r, "1.40")


@pytest.mark.parametrize("raw,detail", [
    ("container 1.41", f"Version 1.41 was requested but the minor version is not supported "
                       f"by this service. {SUPPORTED_RANGE}"),
    ("container 1.0", f"Version 1.0 was requested but the minor version is not supported "
                      f"by this service. {SUPPORTED_RANGE}"),
    ("container 2.0", f"Mutually exclusive versions requested. Version 2.0 requested but not "
                      f"supported by this service. {SUPPORTED_RANGE}"),
    ("garbage", "Invalid service type for OpenStack-API-Version header"),
    ("compute 1.40", "Invalid service type for OpenStack-API-Version header"),
    ("container 1.40 extra", "Invalid service type for OpenStack-API-Version header"),
    ("container 1", "Invalid value for OpenStack-API-Version header"),
    ("container 1.2.3", "Invalid value for OpenStack-API-Version header"),
    ("container a.b", "Invalid value for OpenStack-API-Version header"),
])
def test_unacceptable_versions_are_406(zun, raw, detail):
    for method, path in [("GET", "/v1/containers"), ("GET", "/v1/")]:
        r = zun.http(method, path, headers={"OpenStack-API-Version": raw})
        assert_error(r, 406, "", detail=detail)


# ============================================================== §4.3 the view


@pytest.mark.parametrize("version", ["1.1", "1.12", "1.20", "1.36", "1.40"])
def test_view_fields_at_microversion(zun, created, version):
    uuid = created["uuid"]
    r = zun.get(uuid, version=version)
    assert r.status_code == 200, r.text
    view = r.json()
    assert set(view) == ADMIN_FIELDS | {"links"}, (
        f"missing {sorted(ADMIN_FIELDS | {'links'} - set(view))}, "
        f"extra {sorted(set(view) - ADMIN_FIELDS - {'links'})}")
    assert view["links"] == [
        {"href": f"{zun.base_url}/v1/containers/{uuid}", "rel": "self"},
        {"href": f"{zun.base_url}/containers/{uuid}", "rel": "bookmark"},
    ]
    items = [c for c in zun.list_all(version=version) if c["uuid"] == uuid]
    assert len(items) == 1
    assert set(items[0]) == ADMIN_FIELDS, sorted(set(items[0]) ^ ADMIN_FIELDS)


def test_view_values(zun, created):
    view = created
    assert set(view) == ADMIN_FIELDS | {"links"}, sorted(set(view) ^ (ADMIN_FIELDS | {"links"}))
    assert uuidlib.UUID(view["uuid"])
    assert view["image"] == IMAGE
    assert view["command"] == ["/bin/true"]
    assert view["status"] in STATUSES
    assert view["memory"] == "512"  # default_memory, rendered as a string
    assert view["cpu"] == 1.0  # default_cpu
    assert view["environment"] == {"A": "1"}
    assert view["labels"] == {"team": "qa"}
    assert view["project_id"] == zun.project_id
    assert view["user_id"] == zun.user_id
    assert view["host"] == zun.host_name
    assert view["restart_policy"] is None
    assert view["interactive"] is False
    assert view["privileged"] is False
    assert DATETIME_RE.match(view["created_at"]), view["created_at"]
    shown = zun.get(view["uuid"]).json()
    assert shown["status"] in {"Created", "Stopped", "Running"}
    for key in ("uuid", "name", "image", "command", "memory", "cpu", "environment", "labels"):
        assert shown[key] == view[key], key


def test_create_answers_202_with_location(zun):
    name = unique("loc")
    r = zun.http("POST", "/v1/containers", version=V, json={"image": IMAGE, "name": name})
    assert r.status_code == 202, r.text
    view = r.json()
    assert view["name"] == name
    assert view["status"] in STATUSES
    assert r.headers.get("Location") == f"{zun.base_url}/v1/containers/{view['uuid']}"
    assert set(view) == ADMIN_FIELDS | {"links"}


def test_member_view_hides_admin_fields(zun_member):
    view = zun_member.create({"name": unique("member")})
    assert set(view) == BASE_FIELDS | {"links"}, sorted(set(view) ^ (BASE_FIELDS | {"links"}))
    shown = zun_member.get(view["uuid"]).json()
    assert set(shown) == BASE_FIELDS | {"links"}
    listed = [c for c in zun_member.list_all() if c["uuid"] == view["uuid"]]
    assert len(listed) == 1 and set(listed[0]) == BASE_FIELDS
    # Filtering by host is admin-only (container:get_one:host).
    r = zun_member.http("GET", "/v1/containers", version=V, params={"host": "x"})
    assert_error(r, 403, "policy-not-authorized",
                 detail="Policy doesn't allow container:get_one:host to be performed.")
    # Force delete is admin-only from 1.7.
    r = zun_member.http("DELETE", f"/v1/containers/{view['uuid']}", version=V,
                        params={"force": "True"})
    assert_error(r, 403, "policy-not-authorized",
                 detail="Policy doesn't allow container:delete_force to be performed.")


# ============================================================== §4.2 create per mv


def test_auto_remove_needs_1_3(zun):
    r = zun.http("POST", "/v1/containers", version="1.2", json={"image": IMAGE, "auto_remove": True})
    assert_error(r, 400, "invalid-param-in-version",
                 detail="Invalid param auto_remove because current request version is 1.2. "
                        "auto_remove is only supported from version 1.3")
    view = zun.create({"auto_remove": False}, version="1.3")
    assert view["auto_remove"] is False


def test_hostname_needs_1_9(zun):
    r = zun.http("POST", "/v1/containers", version="1.8", json={"image": IMAGE, "hostname": "h1"})
    assert_error(r, 400, "invalid-param-in-version",
                 detail="Invalid param hostname because current request version is 1.8. "
                        "hostname is only supported from version 1.9")
    view = zun.create({"hostname": "myhost"}, version="1.9")
    assert view["hostname"] == "myhost"


def test_command_is_a_string_below_1_20(zun):
    view = zun.create({"command": "/bin/echo 'hello world'"}, version="1.19")
    assert view["command"] == shlex.split("/bin/echo 'hello world'")
    r = zun.http("POST", "/v1/containers", version="1.19",
                 json={"image": IMAGE, "command": ["/bin/echo", "x"]})
    assert_error(r, 400, "schema-validation-error",
                 detail_startswith="Invalid input for field 'command'.")


def test_command_is_an_array_from_1_20(zun):
    view = zun.create({"command": ["/bin/echo", "hello world"]}, version="1.20")
    assert view["command"] == ["/bin/echo", "hello world"]
    r = zun.http("POST", "/v1/containers", version="1.20",
                 json={"image": IMAGE, "command": "/bin/echo x"})
    assert_error(r, 400, "schema-validation-error",
                 detail_startswith="Invalid input for field 'command'.")


def test_entrypoint_only_from_1_40(zun):
    r = zun.http("POST", "/v1/containers", version="1.39",
                 json={"image": IMAGE, "entrypoint": ["/bin/sh"]})
    assert_error(r, 400, "schema-validation-error",
                 detail="Additional properties are not allowed ('entrypoint' was unexpected)")
    view = zun.create({"entrypoint": ["/bin/echo"], "command": ["hi"]}, version="1.40")
    assert view["entrypoint"] == ["/bin/echo"]
    inspected = None
    zun.wait_status(view["uuid"], {"Created", "Stopped", "Running"})
    inspected = zun.inspect(view["uuid"])
    assert inspected is not None, "engine has no container for a created container"
    assert inspected["Config"]["Entrypoint"] == ["/bin/echo"]
    assert inspected["Config"]["Cmd"] == ["hi"]


def test_host_only_from_1_39(zun):
    r = zun.http("POST", "/v1/containers", version="1.38",
                 json={"image": IMAGE, "host": zun.host_name})
    assert_error(r, 400, "schema-validation-error",
                 detail="Additional properties are not allowed ('host' was unexpected)")
    view = zun.create({"host": zun.host_name}, version="1.39")
    assert view["host"] == zun.host_name


# ============================================================== routes per mv


def test_rename_route_until_1_13(zun):
    view = zun.create({"name": unique("old")})
    uuid = view["uuid"]
    zun.wait_status(uuid, "Created")
    new = unique("new")
    r = zun.http("POST", f"/v1/containers/{uuid}/rename", version="1.12", params={"name": new})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == new
    assert r.json()["links"][0]["href"] == f"{zun.base_url}/v1/containers/{uuid}"
    assert zun.get(uuid).json()["name"] == new
    r = zun.http("POST", f"/v1/containers/{uuid}/rename", version="1.12", params={"name": new})
    assert_error(r, 409, "conflict",
                 detail="The new name for the container is the same as the old name.")
    for version in ["1.14", "1.40"]:
        r = zun.http("POST", f"/v1/containers/{uuid}/rename", version=version,
                     params={"name": unique("x")})
        assert_error(r, 406, "", detail=f"Version {version} was requested but the requested "
                                        f"API is not supported for this version.")
    # From 1.14 a rename is a PATCH of `name`.
    newer = unique("patched")
    r = zun.http("PATCH", f"/v1/containers/{uuid}", version="1.40", json={"name": newer})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == newer


def test_versioned_routes(zun, created):
    uuid = created["uuid"]
    r = zun.http("POST", f"/v1/containers/{uuid}/network_detach", version="1.1",
                 params={"network": "private"})
    assert_error(r, 406, "", detail="Version 1.1 was requested but the requested API is not "
                                    "supported for this version.")
    r = zun.http("POST", f"/v1/containers/{uuid}/resize_container", version="1.18",
                 params={"memory": "256"})
    assert_error(r, 406, "")
    r = zun.http("GET", f"/v1/containers/{uuid}/network_list", version="1.12")
    assert_error(r, 406, "")


# ============================================================== bad input → 400


# (body field, value, the field upstream names in the detail). Upstream reports
# the last element of the failing path, so nested errors name the inner key.
@pytest.mark.parametrize("field,value,named", [
    ("name", "a", "name"),
    ("name", "-bad", "name"),
    ("name", "bad name", "name"),
    ("name", 5, "name"),
    ("memory", "512M", "memory"),
    ("memory", "abc", "memory"),
    ("memory", -1, "memory"),
    ("memory", 3, "memory"),
    ("memory", 8193, "memory"),
    ("memory", 1.5, "memory"),
    ("cpu", 0, "cpu"),
    ("cpu", -1, "cpu"),
    ("cpu", 17, "cpu"),
    ("cpu", "abc", "cpu"),
    ("cpu", "-1", "cpu"),
    ("disk", 0, "disk"),
    ("disk", 161, "disk"),
    ("image", "a", "image"),
    ("image", "", "image"),
    ("environment", {"A": 1}, "A"),
    ("restart_policy", {"Name": "sometimes"}, "Name"),
    ("restart_policy", {"MaximumRetryCount": "1"}, "restart_policy"),
    ("restart_policy", {"Name": "on-failure", "Bogus": "1"}, "restart_policy"),
    ("restart_policy", {"Name": "on-failure", "MaximumRetryCount": "-1"}, "MaximumRetryCount"),
    ("restart_policy", "always", "restart_policy"),
    ("interactive", "maybe", "interactive"),
    ("image_pull_policy", "sometimes", "image_pull_policy"),
    ("hostname", "bad host", "hostname"),
])
def test_bad_create_field_is_400(zun, field, value, named):
    body = {"image": IMAGE, field: value}
    r = zun.http("POST", "/v1/containers", version=V, json=body)
    assert_error(r, 400, "schema-validation-error",
                 detail_startswith=f"Invalid input for field '{named}'.")


def test_restart_policy_retry_count_with_always_is_400(zun):
    for name in ["always", "unless-stopped"]:
        r = zun.http("POST", "/v1/containers", version=V,
                     json={"image": IMAGE, "restart_policy": {"Name": name, "MaximumRetryCount": 3}})
        assert_error(r, 400, "invalid-value",
                     detail=f"maximum retry count not valid with restart policy of {name}")


def test_restart_policy_is_stored_as_strings(zun):
    view = zun.create({"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3}})
    assert view["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": "3"}
    view = zun.create({"restart_policy": {"Name": "no", "MaximumRetryCount": "5"}})
    assert view["restart_policy"] == {"Name": "no", "MaximumRetryCount": "0"}


def test_unknown_field_is_400(zun):
    r = zun.http("POST", "/v1/containers", version=V, json={"image": IMAGE, "foo": 1})
    assert_error(r, 400, "schema-validation-error",
                 detail="Additional properties are not allowed ('foo' was unexpected)")


def test_missing_image_is_400(zun):
    r = zun.http("POST", "/v1/containers", version=V, json={"name": unique("noimg")})
    assert_error(r, 400, "schema-validation-error", detail="'image' is a required property")


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b"null", b"\xff\xfe", b'"image"'])
def test_non_json_or_non_object_body_is_400(zun, body):
    r = zun.http("POST", "/v1/containers", version=V, data=body,
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400, f"{body!r} -> {r.status_code} {r.text}"
    err = r.json()["errors"][0]
    assert err["status"] == 400 and err["code"].startswith("container."), err


def test_wrong_content_type_is_415(zun):
    r = zun.http("POST", "/v1/containers", version=V, data=b'{"image": "busybox"}',
                 headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "", detail="Unexpected content type: text/plain. "
                                    "Expected content types are: ['application/json']")


def test_bad_run_query_is_400(zun):
    r = zun.http("POST", "/v1/containers", version=V, json={"image": IMAGE},
                 params={"run": "perhaps"})
    assert r.status_code == 400, r.text
    r = zun.http("POST", "/v1/containers", version=V, json={"image": IMAGE},
                 params={"bogus": "1"})
    assert r.status_code == 400, r.text


def test_huge_body_is_refused_not_500(zun):
    big = "a" * (20 * 1024 * 1024)
    body = ('{"image": "busybox", "labels": {"x": "' + big + '"}}').encode()
    r = zun.http("POST", "/v1/containers", version=V, data=body,
                 headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code in (400, 413), f"{r.status_code} {r.text[:300]}"
    assert r.json()["errors"][0]["status"] == r.status_code
    # The server is still there.
    assert zun.http("GET", "/").status_code == 200


@pytest.mark.parametrize("patch", [
    {"memory": "512M"}, {"cpu": 0}, {"cpu": 17}, {"name": "-x"}, {"image": "other"},
])
def test_bad_patch_is_400(zun, created, patch):
    r = zun.http("PATCH", f"/v1/containers/{created['uuid']}", version=V, json=patch)
    assert_error(r, 400, "schema-validation-error")


def test_empty_patch_is_200(zun, created):
    # Nothing to change: upstream saves nothing and answers the view.
    r = zun.http("PATCH", f"/v1/containers/{created['uuid']}", version=V, json={})
    assert r.status_code == 200, r.text
    assert r.json()["uuid"] == created["uuid"]


# ============================================================== 404 / 409


def test_unknown_container_is_404(zun):
    missing = str(uuidlib.uuid4())
    for method, path in [
        ("GET", f"/v1/containers/{missing}"),
        ("DELETE", f"/v1/containers/{missing}"),
        ("POST", f"/v1/containers/{missing}/start"),
        ("POST", f"/v1/containers/{missing}/stop"),
        ("GET", f"/v1/containers/{missing}/logs"),
        ("PATCH", f"/v1/containers/{missing}"),
        ("GET", f"/v1/containers/{missing}/container_actions"),
    ]:
        body = {"cpu": 1} if method == "PATCH" else None
        r = zun.http(method, path, version=V, json=body)
        assert_error(r, 404, "container-not-found", detail=f"Container {missing} could not be found.")
    r = zun.get("no-such-name")
    assert_error(r, 404, "container-not-found", detail="Container no-such-name could not be found.")


def test_unversioned_alias(zun, created):
    r = zun.http("GET", f"/containers/{created['uuid']}", version=V)
    assert r.status_code == 200, r.text
    assert r.json()["uuid"] == created["uuid"]


def test_trailing_slash(zun, created):
    r = zun.http("GET", "/v1/containers/", version=V)
    assert r.status_code == 200, r.text
    r = zun.http("GET", f"/v1/containers/{created['uuid']}/", version=V)
    assert r.status_code == 200, r.text


def test_get_by_name(zun, created):
    r = zun.get(created["name"])
    assert r.status_code == 200, r.text
    assert r.json()["uuid"] == created["uuid"]


def test_state_conflicts_are_409(zun, running):
    uuid = running["uuid"]
    for action in ["unpause", "start"]:
        r = zun.http("POST", f"/v1/containers/{uuid}/{action}", version=V)
        assert_error(r, 409, "invalid-state-exception",
                     detail=f"Cannot {action} container {uuid} in Running state")
    r = zun.http("DELETE", f"/v1/containers/{uuid}", version=V)
    assert_error(r, 409, "invalid-state-exception",
                 detail=f"Cannot delete container {uuid} in Running state")

    r = zun.http("POST", f"/v1/containers/{uuid}/pause", version=V)
    assert r.status_code == 202, r.text
    assert r.text.strip() == "null"
    zun.wait_status(uuid, "Paused")
    for action in ["pause", "stop", "kill", "start"]:
        r = zun.http("POST", f"/v1/containers/{uuid}/{action}", version=V)
        assert_error(r, 409, "invalid-state-exception",
                     detail=f"Cannot {action} container {uuid} in Paused state")
    r = zun.http("DELETE", f"/v1/containers/{uuid}", version=V, params={"force": "True"})
    assert_error(r, 409, "invalid-state-exception",
                 detail=f"Cannot delete_force container {uuid} in Paused state")
    r = zun.http("POST", f"/v1/containers/{uuid}/unpause", version=V)
    assert r.status_code == 202, r.text
    zun.wait_status(uuid, "Running")


def test_created_container_conflicts(zun, created):
    uuid = created["uuid"]
    status = zun.get(uuid).json()["status"]
    assert status == "Created", status
    for action in ["stop", "pause", "unpause", "kill"]:
        r = zun.http("POST", f"/v1/containers/{uuid}/{action}", version=V)
        assert_error(r, 409, "invalid-state-exception",
                     detail=f"Cannot {action} container {uuid} in Created state")


def test_delete_with_stop_and_force(zun):
    a = zun.create({"name": unique("delstop"), "command": LOOP}, run=True)
    zun.wait_status(a["uuid"], "Running")
    r = zun.http("DELETE", f"/v1/containers/{a['uuid']}", version="1.11", params={"stop": "True"})
    assert_error(r, 400, "invalid-param-in-version")
    r = zun.http("DELETE", f"/v1/containers/{a['uuid']}", version=V, params={"stop": "True"})
    assert r.status_code == 204, r.text
    assert r.content in (b"", b"null"), r.content
    zun.wait_gone(a["uuid"])
    assert zun.inspect(a["uuid"]) is None, "engine still has the deleted container"

    b = zun.create({"name": unique("delforce"), "command": LOOP}, run=True)
    zun.wait_status(b["uuid"], "Running")
    r = zun.http("DELETE", f"/v1/containers/{b['uuid']}", version="1.6", params={"force": "True"})
    assert_error(r, 400, "invalid-param-in-version")
    r = zun.http("DELETE", f"/v1/containers/{b['uuid']}", version=V, params={"force": "True"})
    assert r.status_code == 204, r.text
    zun.wait_gone(b["uuid"])
    assert zun.inspect(b["uuid"]) is None, "engine still has the force-deleted container"


def test_kill_signal_validation(zun, running):
    uuid = running["uuid"]
    r = zun.http("POST", f"/v1/containers/{uuid}/kill", version=V, params={"signal": "SIGNOPE"})
    assert_error(r, 400, "schema-validation-error")


# ============================================================== §2 pagination


@pytest.fixture(scope="module")
def page_set(zun):
    prefix = unique("pg")
    views = [zun.create({"name": f"{prefix}-{i}"}) for i in range(5)]
    return prefix, views


def test_list_shape(zun, page_set):
    r = zun.http("GET", "/v1/containers", version=V)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"containers", "next"}
    assert body["next"] is None
    for item in body["containers"]:
        assert "links" not in item


def test_pagination_next_links(zun, page_set):
    everything = [c["uuid"] for c in zun.list_all()]
    walked = []
    url = "/v1/containers?limit=2"
    pages = 0
    while url:
        r = zun.http("GET", url, version=V)
        assert r.status_code == 200, r.text
        body = r.json()
        items = body["containers"]
        assert len(items) <= 2
        walked += [c["uuid"] for c in items]
        if len(items) == 2:
            assert body["next"] == (f"{zun.base_url}/v1/containers?sort_key=id&sort_dir=asc"
                                    f"&limit=2&marker={items[-1]['uuid']}"), body["next"]
        else:
            assert body["next"] is None, body["next"]
        url = body["next"]
        pages += 1
        assert pages < 200
    assert walked == everything
    # Creation order is id order.
    ours = [v["uuid"] for v in page_set[1]]
    assert [u for u in walked if u in ours] == ours


def test_sort_and_filters(zun, page_set):
    prefix, views = page_set
    names = sorted((v["name"] for v in views), reverse=True)
    listed = [c["name"] for c in zun.list_all(sort_key="name", sort_dir="desc")
              if c["name"].startswith(prefix)]
    assert listed == names
    one = zun.list_all(name=f"{prefix}-3")
    assert [c["uuid"] for c in one] == [views[3]["uuid"]]
    by_image = zun.list_all(image=IMAGE)
    assert {v["uuid"] for v in views} <= {c["uuid"] for c in by_image}
    assert zun.list_all(image="no-such-image") == []
    mine = zun.list_all(project_id=zun.project_id)
    assert {v["uuid"] for v in views} <= {c["uuid"] for c in mine}
    assert zun.list_all(name=f"{prefix}-nope") == []


@pytest.mark.parametrize("params,code,detail", [
    ({"foo": "1"}, "invalid-value", "Unknown parameters: foo"),
    ({"limit": "0"}, "invalid-value", "Limit must be positive integer"),
    ({"limit": "-3"}, "invalid-value", "Limit must be positive integer"),
    ({"limit": "abc"}, "invalid-value", "Limit must be positive integer"),
    ({"sort_dir": "up"}, "invalid-value",
     "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'"),
    ({"sort_key": "nonexistent"}, "invalid-parameter-value",
     'The sort_key value "nonexistent" is an invalid field for sorting'),
])
def test_bad_list_params_are_400(zun, params, code, detail):
    r = zun.http("GET", "/v1/containers", version=V, params=params)
    assert_error(r, 400, code, detail=detail)


def test_unknown_marker_is_404(zun):
    missing = str(uuidlib.uuid4())
    r = zun.http("GET", "/v1/containers", version=V, params={"marker": missing})
    assert_error(r, 404, "container-not-found")


# ============================================================== §4.8 actions


def test_container_actions(zun):
    r = zun.http("POST", "/v1/containers", version=V, params={"run": "true"},
                 json={"image": IMAGE, "name": unique("act"), "command": LOOP})
    assert r.status_code == 202, r.text
    create_request_id = r.headers.get("x-openstack-request-id")
    assert create_request_id and create_request_id.startswith("req-"), r.headers
    uuid = r.json()["uuid"]
    zun.wait_status(uuid, "Running")
    r = zun.http("POST", f"/v1/containers/{uuid}/stop", version=V, params={"timeout": "5"})
    assert r.status_code == 202, r.text
    stop_request_id = r.headers.get("x-openstack-request-id")
    zun.wait_status(uuid, "Stopped")

    r = zun.http("GET", f"/v1/containers/{uuid}/container_actions", version=V)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"containerActions"}, body
    actions = body["containerActions"]
    by_name = {a["action"]: a for a in actions}
    assert {"create", "stop"} <= set(by_name), actions
    for a in actions:
        assert set(a) == {"action", "container_uuid", "request_id", "user_id", "project_id",
                          "start_time", "finish_time", "message"}, a
        assert a["container_uuid"] == uuid
        assert a["project_id"] == zun.project_id and a["user_id"] == zun.user_id
        assert ACTION_TIME_RE.match(a["start_time"]), a
    assert by_name["create"]["request_id"] == create_request_id
    assert by_name["stop"]["request_id"] == stop_request_id

    r = zun.http("GET", f"/v1/containers/{uuid}/container_actions/{create_request_id}", version=V)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["action"] == "create" and detail["request_id"] == create_request_id
    assert detail["message"] is None
    events = detail["events"]
    assert events, detail
    for e in events:
        assert set(e) == {"event", "start_time", "finish_time", "result", "traceback"}, e
    create_events = [e for e in events if e["event"] == "compute__do_container_create"]
    assert create_events, events
    assert create_events[0]["result"] == "Success"
    assert ACTION_TIME_RE.match(create_events[0]["finish_time"] or ""), create_events[0]

    r = zun.http("GET", f"/v1/containers/{uuid}/container_actions/{stop_request_id}", version=V)
    assert r.status_code == 200, r.text
    assert any(e["event"] == "compute__do_container_stop" and e["result"] == "Success"
               for e in r.json()["events"]), r.json()

    r = zun.http("GET", f"/v1/containers/{uuid}/container_actions/req-{uuidlib.uuid4()}",
                 version=V)
    assert_error(r, 404, "resource-not-found")


# ============================================================== logs


def test_logs(zun, running):
    uuid = running["uuid"]
    r = zun.http("GET", f"/v1/containers/{uuid}/logs", version=V)
    assert r.status_code == 200, r.text
    text = r.json()
    assert isinstance(text, str) and "tick" in text, text
    r = zun.http("GET", f"/v1/containers/{uuid}/logs", version=V, params={"tail": "1"})
    assert r.status_code == 200, r.text
    assert r.json().strip() == "tick", r.json()

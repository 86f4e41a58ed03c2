"""A real Keystone for the acceptance tests, through scripts/keystone.sh.

Not a test file: import it from a conftest or a test module (pytest puts this
directory on sys.path), for example

    from keystone import KeystoneServer

    @pytest.fixture(scope="session")
    def keystone():
        with KeystoneServer(zun_endpoint=f"http://127.0.0.1:{ZUN_PORT}/v1") as ks:
            yield ks

    def test_something(keystone):
        demo = keystone.issue_token("demo")          # a Token, project-scoped on demo
        env = keystone.cli_env("demo")               # os.environ + OS_* for the openstack CLI
        keystone.revoke_token(demo.id)
        assert keystone.validate_token(demo.id).status_code == 404

`KeystoneServer(...).start()` runs `scripts/keystone.sh start` with the chosen port,
Zun endpoint and token lifetime: the first run on a machine installs Keystone and
gunicorn into .venv-keystone (about a minute); later runs start in a few seconds.
The server keeps its state (SQLite db, fernet keys, logs) under `data_dir`
(default `.data/keystone-test`); one server per data dir. `stop()` stops it.

Users (domain Default, region RegionOne), as seeded by the script:

    admin     admin-secret     project admin     role admin (+ member, reader, manager implied)
    demo      demo-secret      project demo      role member (+ reader)
    alt_demo  alt-demo-secret  project alt_demo  role member (+ reader)
    zun       zun-secret       project service   roles admin, service (Zun's service user)

The `container` service `zun` has public/internal/admin endpoints at `zun_endpoint`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "keystone.sh"

REGION = "RegionOne"
DOMAIN = "Default"
DEFAULT_ZUN_ENDPOINT = "http://127.0.0.1:9517/v1"

# user -> (password, project). Keep in sync with scripts/keystone.sh.
USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin-secret", "admin"),
    "demo": ("demo-secret", "demo"),
    "alt_demo": ("alt-demo-secret", "alt_demo"),
    "zun": ("zun-secret", "service"),
}

HTTP_TIMEOUT_S = 30
# The first start on a machine installs Keystone.
SCRIPT_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Credentials:
    """Password credentials of one seeded user."""

    auth_url: str  # http://127.0.0.1:PORT/v3
    username: str
    password: str
    project_name: str
    user_domain_name: str = DOMAIN
    project_domain_name: str = DOMAIN
    region_name: str = REGION

    def os_env(self) -> dict[str, str]:
        """The OS_* variables the openstack CLI reads (what `keystone.sh env USER` prints)."""
        return {
            "OS_AUTH_TYPE": "password",
            "OS_AUTH_URL": self.auth_url,
            "OS_USERNAME": self.username,
            "OS_PASSWORD": self.password,
            "OS_PROJECT_NAME": self.project_name,
            "OS_USER_DOMAIN_NAME": self.user_domain_name,
            "OS_PROJECT_DOMAIN_NAME": self.project_domain_name,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_REGION_NAME": self.region_name,
            "OS_INTERFACE": "public",
        }


@dataclass
class Token:
    """A token as Keystone issued it: the id (X-Subject-Token) and the `token` body."""

    id: str
    body: dict[str, Any] = field(repr=False)

    @property
    def user_id(self) -> str:
        return self.body["user"]["id"]

    @property
    def project_id(self) -> str | None:
        return (self.body.get("project") or {}).get("id")

    @property
    def roles(self) -> list[str]:
        return [r["name"] for r in self.body.get("roles") or []]

    @property
    def expires_at(self) -> str:
        return self.body["expires_at"]


class KeystoneError(AssertionError):
    pass


def _scope_body(scope: str, project: str | None, domain: str) -> dict[str, Any] | str | None:
    if scope == "project":
        return {"project": {"name": project, "domain": {"name": domain}}}
    if scope == "system":
        return {"system": {"all": True}}
    if scope == "domain":
        return {"domain": {"name": domain}}
    if scope == "unscoped":
        # Without a scope Keystone scopes to the user's default project (every
        # seeded user has one); the string "unscoped" really asks for none.
        return "unscoped"
    if scope == "default":
        return None
    raise ValueError(f"unknown scope {scope!r} (project, system, domain, unscoped, default)")


def issue_token(
    auth_url: str,
    username: str,
    password: str,
    project: str | None = None,
    *,
    scope: str = "project",
    domain: str = DOMAIN,
    nocatalog: bool = True,
) -> Token:
    """POST /v3/auth/tokens with a password; raises KeystoneError unless 201."""
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": username, "password": password, "domain": {"name": domain}}},
        }
    }
    scope_body = _scope_body(scope, project, domain)
    if scope_body is not None:
        auth["scope"] = scope_body
    url = f"{auth_url}/auth/tokens" + ("?nocatalog" if nocatalog else "")
    resp = requests.post(url, json={"auth": auth}, timeout=HTTP_TIMEOUT_S)
    if resp.status_code != 201:
        raise KeystoneError(f"token for {username} ({scope} {project or ''}): {resp.status_code} {resp.text[:300]}")
    return Token(id=resp.headers["X-Subject-Token"], body=resp.json()["token"])


def revoke_token(auth_url: str, subject_token: str, auth_token: str | None = None) -> requests.Response:
    """DELETE /v3/auth/tokens: revoke `subject_token`, authenticated by `auth_token`
    (default: the token itself, which Keystone's policy allows). Returns the
    response (204 when revoked, 404 when the token was already invalid)."""
    return requests.delete(
        f"{auth_url}/auth/tokens",
        headers={"X-Auth-Token": auth_token or subject_token, "X-Subject-Token": subject_token},
        timeout=HTTP_TIMEOUT_S,
    )


def validate_token(
    auth_url: str, subject_token: str, auth_token: str, *, nocatalog: bool = False, allow_expired: bool = False
) -> requests.Response:
    """GET /v3/auth/tokens as a service would (X-Auth-Token: its own token,
    X-Subject-Token: the user's). 200 with {"token": ...}, 404 for an invalid,
    expired or revoked subject, 401 for a bad auth token."""
    params = {}
    if nocatalog:
        params["nocatalog"] = "1"
    if allow_expired:
        params["allow_expired"] = "1"
    return requests.get(
        f"{auth_url}/auth/tokens",
        headers={"X-Auth-Token": auth_token, "X-Subject-Token": subject_token},
        params=params,
        timeout=HTTP_TIMEOUT_S,
    )


def preferred_port(data_dir: Path) -> int:
    """The port the data dir's Keystone was bootstrapped on, when free: a new
    port costs a `keystone-manage bootstrap` (about 5 s) on every start."""
    try:
        stamp = (data_dir / ".bootstrap-stamp").read_text()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v3", stamp)
        if m:
            port = int(m.group(1))
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
            return port
    except (OSError, ValueError):
        pass
    return free_port()


class KeystoneServer:
    """One Keystone server on 127.0.0.1, driven by scripts/keystone.sh.

    port              None: a free port is picked at construction
    zun_endpoint      URL of the `container` endpoints (public/internal/admin)
    token_expiration  token lifetime in seconds (a restart applies a change)
    data_dir          state dir (default ROOT/.data/keystone-test)
    admin_project     when set (e.g. "admin"), Keystone's [resource]
                      admin_project_name: validations then carry is_admin_project
    """

    @classmethod
    def reusing(cls, data_dir: Path, **settings: Any) -> "KeystoneServer":
        """A server of its own data dir (a test module's), on the port that
        dir was bootstrapped on when that port is free."""
        return cls(port=preferred_port(data_dir), data_dir=data_dir, **settings)

    def __init__(
        self,
        port: int | None = None,
        zun_endpoint: str = DEFAULT_ZUN_ENDPOINT,
        token_expiration: int = 3600,
        data_dir: str | os.PathLike | None = None,
        admin_project: str | None = None,
        script: str | os.PathLike = SCRIPT,
        log_file: str | os.PathLike | None = None,
    ):
        self.port = port or free_port()
        self.zun_endpoint = zun_endpoint
        self.token_expiration = int(token_expiration)
        self.data_dir = Path(data_dir) if data_dir else ROOT / ".data" / "keystone-test"
        self.admin_project = admin_project
        self.script = Path(script)
        self.log_file = Path(log_file) if log_file else None
        self.started = False

    # ------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        """The identity v3 URL (OS_AUTH_URL)."""
        return f"{self.base_url}/v3"

    @property
    def server_log(self) -> Path:
        """gunicorn's and Keystone's log."""
        return self.data_dir / "keystone.log"

    # ------------------------------------------------------------ process

    def _script_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KEYSTONE_PORT=str(self.port),
            ZUN_ENDPOINT=self.zun_endpoint,
            KEYSTONE_TOKEN_EXPIRATION=str(self.token_expiration),
            KEYSTONE_DATA_DIR=str(self.data_dir),
            KEYSTONE_ADMIN_PROJECT_NAME=self.admin_project or "",
        )
        return env

    def _run(self, command: str) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        r = subprocess.run(
            ["bash", str(self.script), command],
            env=self._script_env(),
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if self.log_file is not None:
            with open(self.log_file, "a") as f:
                f.write(f"$ keystone.sh {command} ({time.monotonic() - t0:.1f}s, rc={r.returncode})\n")
                f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise KeystoneError(
                f"scripts/keystone.sh {command} failed ({r.returncode}):\n{r.stderr[-3000:]}\n"
                f"(server log: {self.server_log})"
            )
        return r

    def start(self) -> "KeystoneServer":
        """Install if needed, start (or keep) the server with these settings, seed it.
        Idempotent; a running server with other settings (port, token lifetime) is
        restarted. A failed start stops what it may have left running."""
        try:
            self._run("start")
        except BaseException:
            try:
                self._run("stop")
            except Exception:
                pass
            raise
        self.started = True
        return self

    def stop(self) -> None:
        """Stop the server of this data dir (a no-op when it is not running)."""
        self._run("stop")
        self.started = False

    def restart(self, **changes: Any) -> "KeystoneServer":
        """Apply changed settings (token_expiration, admin_project, zun_endpoint)
        and start again. Tokens stay valid across a restart (same fernet keys)
        unless they expired."""
        for key, value in changes.items():
            if not hasattr(self, key) or key in ("port", "data_dir", "script"):
                raise ValueError(f"cannot change {key!r}")
            setattr(self, key, value)
        return self.start()

    def set_zun_endpoint(self, url: str) -> None:
        """Point the container endpoints at `url` (no restart, only a re-seed)."""
        self.zun_endpoint = url
        self._run("start")

    def running(self) -> bool:
        try:
            return requests.get(self.auth_url, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def __enter__(self) -> "KeystoneServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ credentials

    def credentials(self, user: str) -> Credentials:
        """Password credentials of a seeded user (admin, demo, alt_demo, zun)."""
        try:
            password, project = USERS[user]
        except KeyError:
            raise ValueError(f"unknown user {user!r}; seeded: {', '.join(USERS)}") from None
        return Credentials(auth_url=self.auth_url, username=user, password=password, project_name=project)

    def service_credentials(self) -> Credentials:
        """Zun's service user (zun / project service, roles admin and service)."""
        return self.credentials("zun")

    def os_env(self, user: str) -> dict[str, str]:
        """Just the OS_* variables for `user`."""
        return self.credentials(user).os_env()

    def cli_env(self, user: str, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for the openstack CLI acting as `user`: `base` (default
        os.environ) without any OS_* variable, plus this user's OS_* variables."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("OS_")}
        env.update(self.os_env(user))
        return env

    # ------------------------------------------------------------ tokens

    def issue_token(self, user: str, *, scope: str = "project", project: str | None = None) -> Token:
        """A new token for a seeded user: scoped to its own project by default;
        scope="system" (admin only), "domain", "unscoped" (really none), or
        "default" (no scope in the request: Keystone uses the default project)."""
        creds = self.credentials(user)
        return issue_token(
            self.auth_url, creds.username, creds.password, project or creds.project_name, scope=scope
        )

    def revoke_token(self, token: str | Token, by: str | Token | None = None) -> None:
        """Revoke a token (as itself, or as `by`: a user name or a token); asserts 204."""
        subject = token.id if isinstance(token, Token) else token
        if isinstance(by, Token):
            auth = by.id
        elif isinstance(by, str) and by in USERS:
            auth = self.issue_token(by).id
        else:
            auth = by
        resp = revoke_token(self.auth_url, subject, auth)
        if resp.status_code != 204:
            raise KeystoneError(f"revoke: {resp.status_code} {resp.text[:300]}")

    def validate_token(self, token: str | Token, by: str | Token = "zun", **kw: Any) -> requests.Response:
        """GET /v3/auth/tokens for `token` as `by` (default: a fresh zun service token)."""
        subject = token.id if isinstance(token, Token) else token
        auth = by.id if isinstance(by, Token) else self.issue_token(by).id
        return validate_token(self.auth_url, subject, auth, **kw)

    def admin_session(self) -> requests.Session:
        """A requests session carrying a fresh admin token (for identity admin calls)."""
        s = requests.Session()
        s.headers["X-Auth-Token"] = self.issue_token("admin").id
        return s

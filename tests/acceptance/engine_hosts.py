"""Several simulated compute hosts, each a network namespace with its own dockerd,
through scripts/hosts.sh.

Not a test file: import it from a conftest or a test module (pytest puts this
directory on sys.path), for example

    from engine_hosts import EngineHosts

    @pytest.fixture(scope="module")
    def hosts():
        with EngineHosts(3) as h:
            yield h

    def test_something(hosts):
        hosts.sockets[0]                    # "/run/zun-hosts/1/docker.sock"
        hosts.namespaces[0]                 # "zun-host-1" (/var/run/netns/zun-host-1)
        hosts.docker(0, "ps", "-a")         # the docker CLI against host 1's engine

`start()` runs `scripts/hosts.sh start N` (a cold start of 3 takes about 2 s,
reusing running daemons about 0.2 s); every engine has busybox:latest. Leaving
the `with` block stops the hosts only if this object started them (hosts already
up, e.g. from `bash scripts/hosts.sh start 3`, are reused and left running);
`stop()` always runs `scripts/hosts.sh stop`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "hosts.sh"
PREFIX = os.environ.get("ZUN_HOSTS_PREFIX") or "zun-host"
SCRIPT_TIMEOUT_S = 180


class EngineHostsError(AssertionError):
    pass


class EngineHosts:
    def __init__(self, count: int, script: str | os.PathLike = SCRIPT):
        self.count = int(count)
        self.script = Path(script)
        self.sockets: list[str] = []
        self.namespaces = [f"{PREFIX}-{i}" for i in range(1, self.count + 1)]
        self.started = False  # True when start() had to start something

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(["bash", str(self.script), *args], capture_output=True, text=True,
                           timeout=SCRIPT_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise EngineHostsError(f"scripts/hosts.sh {' '.join(args)} failed ({r.returncode}):\n"
                                   f"{r.stderr[-3000:]}")
        return r

    def start(self) -> "EngineHosts":
        self.started = self._run("status", str(self.count), check=False).returncode != 0
        try:
            sockets = self._run("start", str(self.count)).stdout.split()
        except BaseException:
            if self.started:
                self._run("stop", check=False)
            raise
        if len(sockets) != self.count:
            raise EngineHostsError(f"hosts.sh start {self.count} printed {sockets}")
        self.sockets = sockets
        return self

    def stop(self) -> None:
        self._run("stop")
        self.started = False

    def __enter__(self) -> "EngineHosts":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.stop()

    def docker(self, host: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """The docker CLI against the engine of host index `host` (0-based)."""
        return subprocess.run(["docker", "-H", f"unix://{self.sockets[host]}", *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def dockerd_pid(self, host: int) -> int:
        """The pid of the host's dockerd (its pidfile sits beside the socket)."""
        return int((Path(self.sockets[host]).parent / "dockerd.pid").read_text())

    def underlay_address(self, host: int) -> str:
        """The host's address on the underlay between hosts (0-based index)."""
        return self._run("underlay-address", str(host + 1)).stdout.strip()

    def netns_link(self, host: int) -> str:
        """The namespace link ("net:[INODE]") of the host's /var/run/netns entry."""
        return f"net:[{os.stat(f'/var/run/netns/{self.namespaces[host]}').st_ino}]"

"""A real private registry for the acceptance tests: Debian's `docker-registry`
(the CNCF distribution registry, installed by scripts/setup.sh) on 127.0.0.1,
with htpasswd authentication, and images pushed to it from the project's own
dockerd with the real docker CLI.

Not a test file: import it from a test module.

    with RegistryServer(tmp_dir, users={"alice": "s3cret"}) as reg:
        reg.push("busybox:latest", "private/box:1.0")   # -> 127.0.0.1:PORT/private/box:1.0
        reg.domain                                      # "127.0.0.1:PORT"
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import requests

from conftest import DOCKER_SOCKET, docker_cmd, free_port


class RegistryServer:
    def __init__(self, root: Path, users: dict[str, str], log_dir: Path | None = None):
        self.root = root
        self.users = users
        self.port = free_port()
        self.domain = f"127.0.0.1:{self.port}"
        self.log_path = (log_dir or root) / f"registry-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        # The docker CLI's login state, kept out of the user's ~/.docker.
        self.docker_config = root / "docker-config"

    def __enter__(self) -> "RegistryServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        assert binary, "docker-registry missing (bash scripts/setup.sh installs it)"
        assert shutil.which("htpasswd"), "htpasswd missing (bash scripts/setup.sh installs apache2-utils)"
        self.root.mkdir(parents=True, exist_ok=True)
        htpasswd = self.root / "htpasswd"
        lines = []
        for user, password in self.users.items():
            r = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True,
                               text=True, check=True)
            lines.append(r.stdout.strip())
        htpasswd.write_text("\n".join(lines) + "\n")
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            f"auth:\n  htpasswd:\n    realm: zun-test\n    path: {htpasswd}\n"
        )
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"http://{self.domain}/v2/", timeout=2).status_code == 401:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"registry did not answer on {self.domain}")
        self.docker_config.mkdir(exist_ok=True)
        user, password = next(iter(self.users.items()))
        r = subprocess.run(
            ["docker", "-H", f"unix://{DOCKER_SOCKET}", "--config", str(self.docker_config),
             "login", "-u", user, "--password-stdin", self.domain],
            input=password, capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == 0, f"docker login: {r.stderr}"

    def push(self, local: str, repo_tag: str) -> str:
        """Pushes `local` as `<domain>/<repo_tag>`, then removes that local tag
        so that running it needs a real pull. Returns the full reference."""
        ref = f"{self.domain}/{repo_tag}"
        for args in (["tag", local, ref], ["--config", str(self.docker_config), "push", ref],
                     ["rmi", ref]):
            r = docker_cmd(*args, timeout=180)
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
        return ref

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

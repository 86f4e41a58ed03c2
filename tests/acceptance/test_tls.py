"""TLS (issue 15). The API reaches agents over TLS and accepts only their
certificates: a relay in the middle that passes the bytes through changes
nothing, one that presents its own certificate is refused by the API (the
relay sits where the agent says it is, `[compute] advertise_url`, as an
attacker who can redirect the API's traffic would). The API serves HTTPS
itself with an operator's certificate, and the real CLI uses it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from conftest import IMAGE, MAX_VERSION, OPENSTACK, ZunAllInOne, _make, free_port

V = MAX_VERSION
LOOP = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Relay:
    """Accepts on `port` and relays to the agent at `target`: byte for byte
    (`mitm` False), or terminating TLS with its own certificate and
    opening its own TLS towards the agent (`mitm` True)."""

    def __init__(self, port: int, target: int, cert: Path, key: Path):
        self.target = target
        self.mitm = False
        self.open: list[socket.socket] = []
        self.handshake_errors: list[str] = []
        self.relayed_in_clear = 0
        self.server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_tls.load_cert_chain(cert, key)
        self.client_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_tls.check_hostname = False
        self.client_tls.verify_mode = ssl.CERT_NONE
        self.listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self.accept_forever, daemon=True).start()

    def accept_forever(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.relay, args=(conn,), daemon=True).start()

    def switch(self, mitm: bool) -> None:
        """Changes the mode and drops the connections relayed so far (the
        API would otherwise keep using one it opened before)."""
        self.mitm = mitm
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open.clear()

    def relay(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        upstream.settimeout(None)
        self.open += [conn, upstream]
        if self.mitm:
            try:
                conn = self.server_tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.handshake_errors.append(str(e))
                conn.close()
                upstream.close()
                return
            upstream = self.client_tls.wrap_socket(upstream)
            self.relayed_in_clear += 1
        threading.Thread(target=pump, args=(conn, upstream), daemon=True).start()
        pump(upstream, conn)

    def close(self) -> None:
        self.listener.close()


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def relayed(make_split, tmp_path):
    """A split deployment whose agent is advertised behind a relay."""
    cert, key = tmp_path / "mitm.pem", tmp_path / "mitm.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "extendedKeyUsage=serverAuth", "-keyout", str(key), "-out", str(cert))
    agent_port, relay_port = free_port(), free_port()
    relay = Relay(relay_port, agent_port, cert, key)
    z = make_split()
    z.config_file = tmp_path / "zund.toml"
    z.config_file.write_text(
        "[compute]\n"
        f'listen = "127.0.0.1:{agent_port}"\n'
        f'advertise_url = "https://127.0.0.1:{relay_port}"\n')
    try:
        z.start()
        yield z, relay
    finally:
        relay.close()


def test_a_certificate_not_of_the_agents_ca_is_refused(relayed):
    zun, relay = relayed
    view = zun.create({"command": LOOP, "image": IMAGE}, run=True)
    uuid = zun.wait_status(view["uuid"], "Running")["uuid"]
    # Through a relay that passes TLS through, the API reaches the agent.
    r = zun.http("GET", f"/v1/containers/{uuid}/stats", version=V)
    assert r.status_code == 200, r.text
    assert relay.handshake_errors == []

    # A relay that answers with its own certificate (valid for the address,
    # from a CA the API does not know) gets no request: the API refuses it.
    relay.switch(mitm=True)
    r = zun.http("GET", f"/v1/containers/{uuid}/stats", version=V)
    assert r.status_code == 503, r.text
    assert "cannot be reached" in r.json()["errors"][0]["detail"], r.text
    r = zun.http("POST", f"/v1/containers/{uuid}/execute", version=V,
                 params={"command": "echo hi", "run": "true"})
    assert r.status_code == 503, r.text
    assert relay.handshake_errors, "the API never tried the relay"
    assert relay.relayed_in_clear == 0, "the API sent a request through the relay"

    relay.switch(mitm=False)
    r = zun.http("GET", f"/v1/containers/{uuid}/stats", version=V)
    assert r.status_code == 200, r.text


def operator_pki(d: Path) -> tuple[Path, Path, Path]:
    """An operator's CA and a certificate for 127.0.0.1 it signed:
    (ca, cert, key)."""
    ca, ca_key = d / "ca.pem", d / "ca.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", "/CN=operator CA", "-keyout", str(ca_key), "-out", str(ca))
    key, csr, cert = d / "api.key", d / "api.csr", d / "api.pem"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key


@pytest.fixture
def https_api(engine_cleanup, tmp_path_factory, log_dir, tmp_path):
    ca, cert, key = operator_pki(tmp_path)
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "https")
    z.config_file = tmp_path / "zund.toml"
    z.config_file.write_text(f'[api]\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    z.base_url = f"https://127.0.0.1:{z.port}"
    z.session.verify = str(ca)
    # Else REQUESTS_CA_BUNDLE, when set, overrides the session's CA.
    z.session.trust_env = False
    try:
        z.start()
        yield z, ca
    finally:
        z.stop()


def test_the_api_serves_https_with_the_operators_certificate(https_api):
    zun, ca = https_api
    view = zun.create({"command": LOOP, "image": IMAGE}, run=True)
    zun.wait_status(view["uuid"], "Running")
    # The real CLI, trusting the operator's CA.
    r = subprocess.run([OPENSTACK, "--os-auth-type", "none", "--os-endpoint",
                        f"{zun.base_url}/v1", "--os-cacert", str(ca),
                        "appcontainer", "list", "-f", "json"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert view["uuid"] in r.stdout
    # Without the CA, or in plain HTTP, nothing is served.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(zun.base_url + "/v1/containers", timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(zun.base_url.replace("https", "http") + "/v1/containers", timeout=10)

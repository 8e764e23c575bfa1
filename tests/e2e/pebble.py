"""Let's Encrypt's ACME test server (Debian's `pebble`) and its DNS (`pebble-challtestsrv`) for
end-to-end tests: started on free loopback ports, waited for, stopped.

Pebble's own HTTPS is signed by a CA made here (the package ships none), which the daemon
trusts through --acme-ca-bundle; the certificates pebble issues chain to a root made at each
start, fetched from its management port (/roots/0).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.ports import free_ports

READY_TIMEOUT = 20.0


def have_pebble() -> bool:
    return shutil.which("pebble") is not None and shutil.which("pebble-challtestsrv") is not None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(folder: Path, name: str = "localhost") -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for `name` (and 127.0.0.1) signed by it: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roost test pebble CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / f"{name}-ca.pem", folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_key_pem(key))
    return paths


@dataclass
class Pebble:
    """A running pebble with its DNS server; `directory` for --acme-directory, `ca` for --acme-ca-bundle."""

    folder: Path
    ca: Path
    acme_port: int
    management_port: int
    dns_port: int
    dns_management_port: int
    procs: list[subprocess.Popen[bytes]]

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    def root_pem(self) -> bytes:
        """The root pebble signs issued certificates under (made anew at each start)."""
        trust = ssl.create_default_context(cafile=str(self.ca))
        response = httpx.get(f"https://127.0.0.1:{self.management_port}/roots/0", verify=trust, timeout=10)
        response.raise_for_status()
        return response.content

    def point(self, host: str, address: str) -> None:
        """Make the DNS answer `address` for `host` (127.0.0.2, where nothing listens: the challenge fails)."""
        url = f"http://127.0.0.1:{self.dns_management_port}/add-a"
        httpx.post(url, json={"host": host, "addresses": [address]}, timeout=10).raise_for_status()

    def unpoint(self, host: str) -> None:
        url = f"http://127.0.0.1:{self.dns_management_port}/clear-a"
        httpx.post(url, json={"host": host}, timeout=10).raise_for_status()

    def output(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.folder.glob("*.log")))


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, folder: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n" + (folder / f"{what}.log").read_text())
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {port} within {READY_TIMEOUT}s")


def _start(argv: list[str], folder: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (folder / f"{name}.log").open("wb")
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        log.close()


@contextlib.contextmanager
def running_pebble(folder: Path, http_port: int, tls_port: int) -> Iterator[Pebble]:
    """Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of whatever its DNS
    answers (127.0.0.1 for every name by default). Real validation: no PEBBLE_VA_ALWAYS_VALID;
    PEBBLE_VA_SLEEPTIME=1 only shortens pebble's random pause before validating."""
    ca, cert, key = make_ca(folder)
    names = ("acme", "management", "dns", "dns_management")
    ports = dict(zip(names, free_ports(len(names), avoid=(http_port, tls_port)), strict=True))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{ports['acme']}",
            "managementListenAddress": f"127.0.0.1:{ports['management']}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (folder / "pebble.json").write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0", "PEBBLE_VA_SLEEPTIME": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dns = _start(
            [
                "pebble-challtestsrv",
                "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                "-dns01", f"127.0.0.1:{ports['dns']}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                "-management", f"127.0.0.1:{ports['dns_management']}",
            ],
            folder, "challtestsrv", env,
        )  # fmt: skip
        procs.append(dns)
        _wait_listening(ports["dns_management"], dns, "challtestsrv", folder)
        argv = ["pebble", "-config", str(folder / "pebble.json"), "-dnsserver", f"127.0.0.1:{ports['dns']}"]
        pebble = _start(argv, folder, "pebble", env)
        procs.append(pebble)
        _wait_listening(ports["acme"], pebble, "pebble", folder)
        _wait_listening(ports["management"], pebble, "pebble", folder)
        yield Pebble(folder, ca, ports["acme"], ports["management"], ports["dns"], ports["dns_management"], procs)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

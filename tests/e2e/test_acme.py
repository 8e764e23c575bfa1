"""Automatic HTTPS against a real ACME server: Debian's pebble validates each domain through a
real HTTP-01 challenge answered by the edge, the site is fetched over HTTPS verifying pebble's
root, plain HTTP redirects, certificates renew, and a refusing CA leaves the old one serving. The
admin API gets its own name's certificate the same way (--api-domain) and serves HTTPS with it.

One pebble (with its DNS, which answers 127.0.0.1 for every name) and one daemon for the file.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.e2e.apps import EXAMPLES, pushed, wait_until
from tests.e2e.harness import Daemon, base_env, run_cli, running
from tests.e2e.pebble import Pebble, have_pebble, make_ca, running_pebble
from tests.e2e.ports import free_ports

APP = "handler-hello"
SITE = "shop.roost.test"
PLAIN = "plain.roost.test"  # added with --no-redirect
MANUAL = "manual.roost.test"  # a supplied certificate
API = "api.roost.test"  # the admin API's own name (--api-domain)
RENEW_AFTER = "4s"  # pebble's certificates last five years: renew at this age instead (a hidden serve setting)

pytestmark = pytest.mark.skipif(not have_pebble(), reason="Debian's pebble is not installed (make install does it)")


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pebble, Daemon, Path, int]]:
    """(pebble, the daemon, pebble's root as a file, the HTTPS port), with the handler app pushed."""
    root = tmp_path_factory.mktemp("acme")
    (root / "pebble").mkdir()
    (root / "home").mkdir()
    http_port, https_port = free_ports(2)
    with running_pebble(root / "pebble", http_port, https_port) as pebble:
        flags = (
            "--port", str(http_port), "--https-port", str(https_port), "--acme-directory", pebble.directory,
            "--acme-ca-bundle", str(pebble.ca), "--acme-email", "ops@roost.test", "--acme-renew-after", RENEW_AFTER,
            "--api-domain", API,
        )  # fmt: skip
        with running(root / "home", *flags) as daemon:
            pushed(daemon, EXAMPLES / APP)
            trust = root / "pebble-root.pem"
            trust.write_bytes(pebble.root_pem())
            yield pebble, daemon, trust, https_port


class ServerName(HTTPAdapter):
    """requests to 127.0.0.1 that send `name` as SNI and verify the certificate against it."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self.name
        super().init_poolmanager(*args, **kwargs)


def https_get(name: str, port: int, trust: Path, path: str = "/") -> requests.Response:
    with requests.Session() as session:
        session.mount("https://", ServerName(name))
        return session.get(f"https://127.0.0.1:{port}{path}", headers={"Host": name}, verify=str(trust), timeout=30)


def served_certificate(name: str, port: int, trust: Path) -> bytes:
    """The DER certificate the edge presents for `name`, verified against pebble's root."""
    context = ssl.create_default_context(cafile=str(trust))
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def domains(daemon: Daemon) -> dict[str, dict[str, Any]]:
    result = daemon.cli("domains", APP, "list", "--json")
    assert result.returncode == 0, result.stderr
    return {d["host"]: d for d in json.loads(result.stdout)}


def events(daemon: Daemon, kind: str) -> list[dict[str, Any]]:
    with daemon.api() as api:
        found = api.get("/v1/events", params={"app": APP, "limit": 500}).json()
    return [e for e in found if e["kind"] == kind]


def test_a_domain_gets_a_certificate_through_http01_and_serves_https(acme: tuple[Pebble, Daemon, Path, int]) -> None:
    pebble, daemon, trust, https_port = acme
    added = daemon.cli("domains", APP, "add", SITE, timeout=180)
    assert added.returncode == 0, added.stdout + added.stderr + daemon.output() + pebble.output()
    assert "over HTTPS: valid until" in added.stdout
    response = https_get(SITE, https_port, trust)
    assert response.status_code == 200
    assert response.text == "Hello, world!\n"
    state = domains(daemon)[SITE]
    assert (state["source"], state["state"], state["failures"]) == ("acme", "valid", 0)
    certs = daemon.home / "certs"
    assert stat.S_IMODE(certs.stat().st_mode) == 0o700
    for file in (certs / f"{SITE}.key", certs / f"{SITE}.pem"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert any(SITE in e["message"] for e in events(daemon, "certificate.issued"))


def test_plain_http_redirects_to_https_unless_opted_out(acme: tuple[Pebble, Daemon, Path, int]) -> None:
    _, daemon, trust, https_port = acme
    edge = daemon.edge_url
    moved = httpx.get(f"{edge}/path?q=1", headers={"Host": SITE}, timeout=30)
    assert moved.status_code == 301
    assert moved.headers["location"] == f"https://{SITE}:{https_port}/path?q=1"
    added = daemon.cli("domains", APP, "add", PLAIN, "--no-redirect", "--hsts", timeout=180)
    assert added.returncode == 0, added.stdout + added.stderr
    assert httpx.get(edge, headers={"Host": PLAIN}, timeout=30).text == "Hello, world!\n"
    secure = https_get(PLAIN, https_port, trust)
    assert secure.headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in https_get(SITE, https_port, trust).headers


def test_certificates_renew_and_a_refusing_ca_keeps_the_old_one(acme: tuple[Pebble, Daemon, Path, int]) -> None:
    pebble, daemon, trust, https_port = acme
    first = served_certificate(SITE, https_port, trust)
    wait_until("a renewal", lambda: served_certificate(SITE, https_port, trust) != first, timeout=60, every=0.5)
    assert any(SITE in e["message"] for e in events(daemon, "certificate.renewed"))
    pebble.point(SITE, "127.0.0.2")  # the CA now looks for the challenge where nothing answers
    try:
        failing = wait_until(
            "a failed renewal", lambda: (d := domains(daemon)[SITE])["state"] == "failing" and d, timeout=60, every=0.5
        )
        kept = served_certificate(SITE, https_port, trust)
    finally:
        pebble.unpoint(SITE)
    assert "127.0.0.2" in failing["last_error"], failing  # the CA's own words
    assert failing["next_attempt"] > failing["not_after"] - 10**9  # a retry is scheduled
    assert https_get(SITE, https_port, trust).status_code == 200  # still served, with the old certificate
    assert kept
    listed = daemon.cli("domains", APP, "list")
    assert "failing" in listed.stdout and "next try in" in listed.stdout, listed.stdout
    assert any(e["data"].get("host") == SITE for e in events(daemon, "certificate.failed"))
    overview = daemon.cli("list").stdout
    assert f"{SITE}: certificate renewal failing" in overview, overview
    with daemon.api() as api:
        metrics = api.get("/metrics").text
    assert f'roost_certificate_attempts_total{{app="{APP}",host="{SITE}",outcome="failed"}}' in metrics


def test_a_supplied_certificate_is_served_and_a_wrong_one_refused(
    acme: tuple[Pebble, Daemon, Path, int], tmp_path: Path
) -> None:
    _, daemon, _, https_port = acme
    ca, cert, key = make_ca(tmp_path, MANUAL)
    wrong = daemon.cli("domains", APP, "add", "other.roost.test", "--cert", str(cert), "--key", str(key))
    assert wrong.returncode != 0 and f"the certificate is for {MANUAL}" in wrong.stderr, wrong.stderr
    added = daemon.cli("domains", APP, "add", MANUAL, "--cert", str(cert), "--key", str(key))
    assert added.returncode == 0, added.stderr
    assert https_get(MANUAL, https_port, ca).text == "Hello, world!\n"
    state = domains(daemon)[MANUAL]
    assert (state["source"], state["state"]) == ("manual", "valid")
    assert "other.roost.test" not in domains(daemon)


def test_bad_names_and_taken_names_are_refused_with_nothing_left(acme: tuple[Pebble, Daemon, Path, int]) -> None:
    pebble, daemon, _, _ = acme
    bad = daemon.cli("domains", APP, "add", "not_a_name!")
    assert bad.returncode != 0 and "not a valid host name" in bad.stderr
    daemon.cli("create", "other-app")
    taken = daemon.cli("domains", "other-app", "add", SITE)
    assert taken.returncode != 0 and f"belongs to app '{APP}'" in taken.stderr
    unreachable = "nowhere.roost.test"
    pebble.point(unreachable, "127.0.0.2")
    refused = daemon.cli("domains", APP, "add", unreachable, timeout=180)
    assert refused.returncode != 0
    assert "could not validate" in refused.stderr and "127.0.0.2" in refused.stderr, refused.stderr
    assert unreachable not in domains(daemon)


def test_tls_alpn_01_issues_where_port_80_is_closed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pebble validates on the HTTPS port only (its HTTP-01 port has nothing listening): the edge
    answers the acme-tls/1 handshake with the challenge certificate, then serves the issued one."""
    root = tmp_path_factory.mktemp("alpn")
    (root / "pebble").mkdir()
    (root / "home").mkdir()
    closed, https_port, edge_port = free_ports(3)
    with running_pebble(root / "pebble", closed, https_port) as pebble:
        flags = (
            "--port", str(edge_port), "--https-port", str(https_port), "--acme-directory", pebble.directory,
            "--acme-ca-bundle", str(pebble.ca), "--acme-challenge", "tls-alpn-01",
        )  # fmt: skip
        with running(root / "home", *flags) as daemon:
            pushed(daemon, EXAMPLES / APP)
            trust = root / "pebble-root.pem"
            trust.write_bytes(pebble.root_pem())
            added = daemon.cli("domains", APP, "add", SITE, timeout=180)
            assert added.returncode == 0, added.stdout + added.stderr + daemon.output() + pebble.output()
            assert https_get(SITE, https_port, trust).text == "Hello, world!\n"
            assert domains(daemon)[SITE]["state"] == "valid"


def api_certificate(port: int, trust: Path) -> bytes | None:
    """The admin API's certificate for its name, or None while it is not one pebble's root verifies."""
    try:
        return served_certificate(API, port, trust)
    except ssl.SSLCertVerificationError:
        return None


def cli_resolving(home: Path, hosts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`roost ARGS` in a mount namespace of its own where `hosts` is /etc/hosts (so the API's name
    resolves to this machine for this process alone; the namespace goes with it)."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    argv = ["unshare", "--mount", "sh", "-c", script, str(hosts), sys.executable, "-m", "roost", *args]
    return subprocess.run(argv, env=base_env(home), capture_output=True, text=True, timeout=60, cwd=str(home.parent))


@pytest.mark.skipif(os.geteuid() != 0, reason="a private /etc/hosts needs a mount namespace (root)")
def test_the_admin_api_serves_https_on_its_own_name_with_a_certificate_that_renews(
    acme: tuple[Pebble, Daemon, Path, int], tmp_path: Path
) -> None:
    pebble, daemon, trust, _ = acme
    port = int(daemon.api_url.rsplit(":", 1)[1])
    assert daemon.api_url == f"https://{API}:{port}", daemon.output()
    assert "temporary self-signed certificate until the CA's arrives" in daemon.output()  # a fresh home
    first = wait_until("the API's certificate from pebble", lambda: api_certificate(port, trust), timeout=60, every=0.3)
    context = ssl.create_default_context(cafile=str(trust))
    with httpx.Client(verify=context, timeout=30) as client:
        health = client.get(
            f"https://127.0.0.1:{port}/healthz", headers={"Host": API}, extensions={"sni_hostname": API}
        )
    assert health.json() == {"ok": True}
    with pytest.raises(httpx.TransportError):  # never plain HTTP on the listener asked to be HTTPS
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    created = daemon.cli("token", "create", "acme-api")
    assert created.returncode == 0, created.stderr
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {API}\n")
    flags = ("--url", daemon.api_url, "--cacert", str(trust), "--token", created.stdout.strip())
    listed = cli_resolving(daemon.home, hosts, *flags, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert APP in [app["name"] for app in json.loads(listed.stdout)]
    untrusted = cli_resolving(daemon.home, hosts, "--url", daemon.api_url, "--token", created.stdout.strip(), "list")
    assert untrusted.returncode != 0  # pebble's root is no system root: the name is really verified
    renewed = wait_until(
        "the API's renewed certificate", lambda: (c := api_certificate(port, trust)) != first and c, timeout=60
    )
    assert renewed != first  # the same listener now serves the renewed certificate
    with daemon.api() as api:
        issued = api.get("/v1/events", params={"limit": 500}).json()
    assert any(e["kind"] == "certificate.issued" and e["data"].get("host") == API for e in issued)
    taken = daemon.cli("domains", APP, "add", API)
    assert taken.returncode != 0 and "admin API" in taken.stderr, taken.stderr
    assert API not in domains(daemon)
    pebble.point(API, "127.0.0.2")  # the next renewal fails: said loudly, the old certificate kept
    try:
        failing = wait_until("a failed API renewal", lambda: (c := api_domain(daemon))["state"] == "failing" and c)
        kept = api_certificate(port, trust)
    finally:
        pebble.unpoint(API)
    assert "127.0.0.2" in failing["last_error"] and failing["app"] is None, failing
    assert kept is not None
    overview = daemon.cli("list").stdout
    assert f"admin API: {API}: certificate renewal failing" in overview, overview


def api_domain(daemon: Daemon) -> dict[str, Any]:
    with daemon.api() as api:
        found: dict[str, Any] = api.get("/v1/api-domain").json()
    return found


def test_an_api_domain_without_acme_is_refused_before_anything_listens(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    refused = run_cli(home, "serve", "--port", "0", "--api-port", "0", "--api-domain", API)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "--api-domain needs automatic HTTPS" in refused.stderr and "hint: add --https-port" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (home / "roost.sock").exists()

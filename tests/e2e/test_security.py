"""Admin security end to end: who gets in over TCP and the Unix socket, and who does not."""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from roost.api.throttle import ThrottlePolicy
from roost.cli.client import Client, Target
from roost.errors import DaemonUnreachable
from tests.another_user import NOBODY, as_user
from tests.e2e.harness import Daemon, launch, run_cli, running, spawn

PASSWORD = "correct horse battery"
LOCKOUT_AFTER = ThrottlePolicy().lockout_after


def set_password(home: Path, user: str = "admin", password: str = PASSWORD) -> None:
    result = run_cli(home, "password", user, "--stdin", stdin=password + "\n")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def secured(home: Path) -> Iterator[Daemon]:
    set_password(home)
    with running(home) as daemon:
        yield daemon


def test_tcp_refuses_without_credentials(secured: Daemon) -> None:
    response = httpx.get(f"{secured.api_url}/v1/apps", timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.json()["error"] == "unauthorized"
    result = secured.cli("list", url=True)
    assert result.returncode == 1
    assert "needs credentials" in result.stderr
    assert httpx.get(f"{secured.api_url}/healthz", timeout=10).status_code == 200


def test_tcp_accepts_password_and_token(secured: Daemon) -> None:
    ok = httpx.get(f"{secured.api_url}/v1/apps", auth=("admin", PASSWORD), timeout=30)
    assert ok.status_code == 200
    wrong = httpx.get(f"{secured.api_url}/v1/apps", auth=("admin", "wrong password"), timeout=30)
    assert wrong.status_code == 401
    created = secured.cli("token", "create", "ci", url=False)  # over the Unix socket
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("roost_")
    with_token = secured.cli("--token", token, "list", url=True)
    assert with_token.returncode == 0, with_token.stderr
    listed = secured.cli("token", "list", "--json", url=False)
    assert [t["name"] for t in json.loads(listed.stdout)] == ["ci"]
    assert secured.cli("token", "revoke", "ci", "--yes", url=False).returncode == 0
    assert secured.cli("--token", token, "list", url=True).returncode == 1


def test_basic_auth_prompt_and_login(secured: Daemon) -> None:
    prompted = secured.cli("-B", "list", url=True, stdin=f"admin\n{PASSWORD}\n")
    assert prompted.returncode == 0, prompted.stderr
    login = secured.cli("login", secured.api_url, "--user", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    saved = secured.home.parent / "config" / "roost" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert PASSWORD not in saved.read_text()
    assert secured.cli("list", url=True).returncode == 0


def test_password_file_is_private_and_hashed(secured: Daemon) -> None:
    path = secured.home / "passwords"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    assert text.startswith("admin:$2")
    too_long = run_cli(secured.home, "password", "bob", "--stdin", stdin="x" * 80 + "\n")
    assert too_long.returncode == 2
    assert "72" in too_long.stderr


def test_the_home_and_the_store_are_owner_only(secured: Daemon) -> None:
    home = secured.home
    assert stat.S_IMODE(home.stat().st_mode) & 0o066 == 0  # at most traversable (o+x) for app uids
    for name in ("roost.db", "roost.db-wal", "roost.db-shm"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


def test_unix_socket_is_owner_only(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="roost-sock-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - the point: a directory others may enter
        home = base / "home"
        home.mkdir(mode=0o755)
        with running(home) as daemon:
            assert stat.S_IMODE((home / "roost.sock").stat().st_mode) == 0o600
            os.chmod(home, 0o711)  # noqa: S103 - as the sandbox leaves it for app uids: the socket alone guards
            assert daemon.cli("list", url=False).returncode == 0
            # the CLI's client, built here (it reads CA files) and used once as us, so every import is done:
            # uid 65534 acts in a forked child and needs nothing of the checkout (which may sit in a 0700 folder)
            warm, fresh = (Client(Target("http://roost", home / "roost.sock")) for _ in range(2))
            assert warm.request("GET", "/v1/apps") == []
            warm.close()

            def list_apps() -> str:  # on a client with no connection yet: it must connect as 65534
                try:
                    return f"answered {fresh.request('GET', '/v1/apps')}"
                except DaemonUnreachable as exc:
                    return str(exc)

            assert "not allowed to use the daemon's socket" in refused_to_another_user(home / "roost.sock", list_apps)
            fresh.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def refused_to_another_user(sock: Path, act: Callable[[], str]) -> str:
    """`act()` as uid 65534 when we are root; as another user, ourselves with the socket made
    mode 0 (there is no other uid to be, and the owner is refused the same way then)."""
    if os.geteuid() == 0:
        return as_user(NOBODY, act)
    sock.chmod(0)
    try:
        with warnings.catch_warnings():
            # httpcore leaves the socket of a refused Unix connect to the garbage collector
            warnings.simplefilter("ignore", ResourceWarning)
            said = act()
            gc.collect()
        return said
    finally:
        sock.chmod(0o600)


def test_require_password_closes_the_socket(home: Path) -> None:
    set_password(home)
    with running(home, "--require-password") as daemon:
        refused = daemon.cli("list", url=False)
        assert refused.returncode == 1
        assert "needs credentials" in refused.stderr
        assert daemon.cli("-B", "list", url=False, stdin=f"admin\n{PASSWORD}\n").returncode == 0


def raw_get(host: str, port: int, source: str, path: str, extra: str = "") -> int:
    with socket.create_connection((host, port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
        head = sock.recv(65536).decode("latin-1")
    return int(head.split(" ", 2)[1])


def test_trust_loopback_is_not_talked_into_by_a_header(home: Path) -> None:
    with running(home, "--api-host", "127.0.0.2", "--trust-loopback") as daemon:
        port = int(daemon.api_url.rsplit(":", 1)[1])
        assert raw_get("127.0.0.2", port, "127.0.0.1", "/v1/apps") == 200
        assert raw_get("127.0.0.2", port, "127.0.0.3", "/v1/apps") == 401
        forged = "X-Forwarded-For: 127.0.0.1\r\n"
        assert raw_get("127.0.0.2", port, "127.0.0.3", "/v1/apps", forged) == 401
        assert "--trust-loopback" in daemon.output()


def test_trusted_proxy_header_counts_only_from_the_proxy(home: Path) -> None:
    with running(home, "--trust-loopback", "--trust-proxy", "127.0.0.5/32") as daemon:
        port = int(daemon.api_url.rsplit(":", 1)[1])
        via_proxy = "X-Forwarded-For: 127.0.0.1\r\n"
        assert raw_get("127.0.0.1", port, "127.0.0.5", "/v1/apps", via_proxy) == 200
        outside = "X-Forwarded-For: 127.0.0.1, 10.1.2.3\r\n"
        assert raw_get("127.0.0.1", port, "127.0.0.5", "/v1/apps", outside) == 401


def test_failed_logins_are_throttled_per_address(secured: Daemon) -> None:
    port = int(secured.api_url.rsplit(":", 1)[1])
    statuses = []
    with httpx.Client(timeout=30) as http:
        for _ in range(9):
            statuses.append(http.get(f"{secured.api_url}/v1/apps", auth=("admin", "nope-nope-nope")).status_code)
    assert statuses[:8] == [401] * 8
    assert statuses[8] == 429
    assert int(httpx.get(f"{secured.api_url}/v1/apps", auth=("admin", "nope"), timeout=30).headers["retry-after"]) > 0
    # the right password is still checked and gets in: only failures are throttled
    assert httpx.get(f"{secured.api_url}/v1/apps", auth=("admin", PASSWORD), timeout=30).status_code == 200
    # another address is not locked out
    assert raw_get("127.0.0.1", port, "127.0.0.9", "/v1/apps") == 401


def test_parallel_guesses_share_one_budget(secured: Daemon) -> None:
    """30 wrong passwords at once from one address: bcrypt judges at most LOCKOUT_AFTER of them
    (each 401 is one evaluated guess); the others wait for the lockout and get 429. The right
    password is still checked (one attempt at a time while locked) and gets in."""
    url = f"{secured.api_url}/v1/apps"
    start = threading.Barrier(30)

    def guess(index: int) -> int:
        with httpx.Client(timeout=60) as http:
            start.wait()
            return http.get(url, auth=("admin", f"wrong-guess-{index}")).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(guess, range(30)))
    assert statuses.count(401) == LOCKOUT_AFTER
    assert statuses.count(429) == 30 - LOCKOUT_AFTER
    assert httpx.get(url, auth=("admin", PASSWORD), timeout=30).status_code == 200


def test_parallel_logins_with_the_right_password_all_succeed(secured: Daemon) -> None:
    """The shared budget must not lock out a busy client that knows the password."""
    url = f"{secured.api_url}/v1/apps"
    start = threading.Barrier(20)

    def login(_: int) -> int:
        with httpx.Client(timeout=60) as http:
            start.wait()
            return http.get(url, auth=("admin", PASSWORD)).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(login, range(20))) == [200] * 20


def test_a_changed_or_deleted_password_stops_working_at_once(secured: Daemon) -> None:
    url = f"{secured.api_url}/v1/apps"
    assert httpx.get(url, auth=("admin", PASSWORD), timeout=30).status_code == 200  # now cached
    set_password(secured.home, "admin", "a brand new password")
    assert httpx.get(url, auth=("admin", PASSWORD), timeout=30).status_code == 401
    assert httpx.get(url, auth=("admin", "a brand new password"), timeout=30).status_code == 200
    deleted = run_cli(secured.home, "password", "admin", "--delete", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert httpx.get(url, auth=("admin", "a brand new password"), timeout=30).status_code == 401


def spawn_in_netns(home: Path, *extra: str) -> Daemon:
    """`roost serve` in a private network namespace (loopback only), so it may bind 0.0.0.0
    without being reachable from any real network."""
    argv = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    argv += [sys.executable, "-m", "roost", "serve", "--home", str(home), "--host", "127.0.0.1"]
    argv += ["--port", "0", "--api-port", "0", "--api-host", "0.0.0.0", *extra]  # inside the netns: reachable by nobody
    return launch(argv, home)


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare(1)")
def test_insecure_exposes_the_api_with_a_warning(home: Path) -> None:
    daemon = spawn_in_netns(home, "--insecure")
    try:
        daemon.wait_ready()
        assert "no user and no token (--insecure)" in daemon.output()
    finally:
        daemon.stop()


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare(1)")
@pytest.mark.parametrize("who", ["user", "token"])
def test_exposing_the_api_is_allowed_once_someone_can_log_in(home: Path, who: str) -> None:
    if who == "user":
        set_password(home)
    else:
        with running(home) as local:
            assert local.cli("token", "create", "ci").returncode == 0
    daemon = spawn_in_netns(home)
    try:
        daemon.wait_ready()
        assert "refusing to expose" not in daemon.output()
        assert "--insecure" not in daemon.output()
        assert daemon.api_url.startswith("http://0.0.0.0:")
    finally:
        daemon.stop()


def test_exposing_the_api_without_users_is_refused(home: Path) -> None:
    daemon = spawn(home, "--api-host", "0.0.0.0")
    try:
        assert daemon.wait_exit() == 1
        assert "refusing to expose the admin API" in daemon.output()
        assert "roost password" in daemon.output()
    finally:
        daemon.kill_group()


def test_mutating_calls_are_audited(secured: Daemon) -> None:
    created = httpx.post(f"{secured.api_url}/v1/apps", json={"name": "audited"}, auth=("admin", PASSWORD), timeout=30)
    assert created.status_code == 201
    entries = json.loads(secured.cli("audit", "--json", "-n", "50").stdout)
    audit = [e for e in entries if e["path"] == "/v1/apps"]
    assert audit
    assert (audit[-1]["user"], audit[-1]["kind"]) == ("admin", "password")
    assert audit[-1]["address"] == "127.0.0.1"
    assert audit[-1]["status"] == 201


def test_tls_serves_the_api_over_https(home: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    set_password(home)
    with running(home, "--tls-cert", str(cert), "--tls-key", str(key)) as daemon:
        assert daemon.api_url.startswith("https://")
        ok = daemon.cli("--cacert", str(cert), "-B", "list", url=True, stdin=f"admin\n{PASSWORD}\n")
        assert ok.returncode == 0, ok.stderr
        untrusted = daemon.cli("-B", "list", url=True, stdin=f"admin\n{PASSWORD}\n")
        assert untrusted.returncode == 1
        assert daemon.edge_url.startswith("https://")
        edge = httpx.get(
            daemon.edge_url,
            headers={"Host": "nothing.localhost"},
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=10,
        )
        assert edge.status_code == 404
        trusted = ssl.create_default_context(cafile=str(cert))
        login = httpx.post(f"{daemon.api_url}/ui/login", json={"user": "admin", "password": PASSWORD}, verify=trusted)
        assert login.status_code == 200, login.text
        flags = login.headers["set-cookie"].split("; ")
        assert {"HttpOnly", "Secure", "SameSite=strict"} <= set(flags), flags  # the dashboard's cookie over TLS
        plain = daemon.api_url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/v1/apps", timeout=5).raise_for_status()

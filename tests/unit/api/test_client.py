"""The CLI's client to this API: which door `resolve_target` picks when no --url is given."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.cli.client import Client, resolve_target
from roost.errors import DaemonUnreachable
from roost.serve_settings import SOCKET_NAME
from tests.another_user import NOBODY, as_user


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home others may enter (as a daemon's home under /tmp may be), with no ROOST_URL set."""
    base = Path(tempfile.mkdtemp(prefix="roost-client-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - the point: a directory another uid may enter
        monkeypatch.setenv("ROOST_HOME", str(base))
        monkeypatch.delenv("ROOST_URL", raising=False)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def listening(home: Path) -> Iterator[Path]:
    """A listening owner-only Unix socket where the daemon's would be."""
    path = home / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(8)
        yield path


def resolve_as_another_user(home: Path) -> tuple[str, str, str]:
    """resolve_target(None) as a user who may not use the socket: uid 65534 when we are root
    (root passes any permission check), in a forked child so it needs nothing of the checkout;
    else ourselves with the socket made mode 0."""
    if os.geteuid() != 0:
        os.chmod(home / SOCKET_NAME, 0)
        target = resolve_target(None)
        return target.url, str(target.socket), str(target.passed_over)

    def resolve() -> str:
        target = resolve_target(None)
        return json.dumps([target.url, str(target.socket), str(target.passed_over)])

    url, sock, passed_over = json.loads(as_user(NOBODY, resolve))
    return url, sock, passed_over


def test_the_socket_is_chosen_when_this_user_can_connect(listening: Path) -> None:
    target = resolve_target(None)
    assert target.socket == listening
    assert target.passed_over is None


def test_a_socket_this_user_may_not_use_falls_back_to_tcp(listening: Path, home: Path) -> None:
    url, sock, passed_over = resolve_as_another_user(home)
    assert url.startswith("http://127.0.0.1:")
    assert sock == "None"
    assert passed_over == str(listening)


def test_a_stale_socket_is_kept_so_the_error_says_start_the_daemon(home: Path) -> None:
    path = home / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))  # bound, never listening: like a daemon that died
    target = resolve_target(None)
    assert target.socket == path


def test_the_tcp_fallback_error_names_the_socket_it_passed_over(home: Path, listening: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # a loopback port nobody listens on
        port = holder.getsockname()[1]
        target = resolve_target(f"http://127.0.0.1:{port}")
        fallback = type(target)(target.url, passed_over=listening)
        client = Client(fallback)
        try:
            with pytest.raises(DaemonUnreachable) as caught:
                client.request("GET", "/v1/apps")
        finally:
            client.close()
    assert str(listening) in caught.value.message
    assert "another user" in caught.value.message
    assert "--url" in (caught.value.hint or "")

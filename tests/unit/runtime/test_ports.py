"""The instance port allocator: every port it gives comes from the range, none twice while it
may be taken, and a range used up is a clear LimitExceeded. Real sockets on real ports; each
test takes its own small range, kept off the ranges of concurrent runs by a random offset."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.errors import ConfigError, LimitExceeded
from roost.runtime.ports import PortBook, PortRange, check_outside, parse_range
from roost.runtime.sandbox import SandboxSettings
from roost.serve_settings import DEFAULT_INSTANCE_PORT_FIRST, DEFAULT_INSTANCE_PORT_LAST, ServeSettings


@pytest.fixture
def small_range() -> PortRange:
    """Eight ports somewhere in 30000-32767: above the daemon's default range, below the kernel's
    ephemeral one (an outgoing connection holding a port would make it look taken)."""
    first = random.randrange(30000, 32768 - 8)  # noqa: S311 - spreading, not secrecy
    return PortRange(first, first + 7)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


def test_listeners_come_from_the_range_and_never_repeat(small_range: PortRange, sockets: list[socket.socket]) -> None:
    book = PortBook(small_range)
    for _ in range(4):
        sockets.append(book.listener())
    ports = [s.getsockname()[1] for s in sockets]
    assert all(p in small_range for p in ports)
    assert len(set(ports)) == len(ports)
    assert all(s.getsockname()[0] == "127.0.0.1" for s in sockets)


def test_a_port_taken_by_anyone_is_skipped(small_range: PortRange, sockets: list[socket.socket]) -> None:
    """A command app (or another daemon) listening on 0.0.0.0 or :: holds its port: never handed out."""
    wildcard = socket.socket(socket.AF_INET6)
    wildcard.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    wildcard.bind(("::", small_range.first))
    wildcard.listen()
    sockets.append(wildcard)
    book = PortBook(small_range)
    given = [book.free_port() for _ in range(len(small_range) - 1)]
    assert small_range.first not in given
    listener_book = PortBook(small_range)
    for _ in range(len(small_range) - 1):
        sockets.append(listener_book.listener())
    assert small_range.first not in [s.getsockname()[1] for s in sockets[1:]]


def test_a_port_handed_to_a_command_app_is_held_until_it_binds(small_range: PortRange) -> None:
    """Between handing out $PORT and the app's bind, neither a second app nor a listener gets it."""
    book = PortBook(small_range)
    given = [book.free_port() for _ in range(len(small_range))]
    assert sorted(given) == list(range(small_range.first, small_range.last + 1))
    with pytest.raises(LimitExceeded) as caught:
        book.free_port()
    assert "--instance-ports" in (caught.value.hint or "")
    with pytest.raises(LimitExceeded):
        book.listener()


def test_a_listener_never_shares_a_port_with_an_ipv6_only_server(
    small_range: PortRange, sockets: list[socket.socket]
) -> None:
    """asyncio binds :: with IPV6_V6ONLY: a 127.0.0.1 listener could then share its port, and the
    edge, connecting to 127.0.0.1, would reach the wrong instance."""
    v6only = socket.socket(socket.AF_INET6)
    v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6only.bind(("::", small_range.first))
    v6only.listen()
    sockets.append(v6only)
    book = PortBook(small_range)
    for _ in range(len(small_range) - 1):
        sockets.append(book.listener())
    assert small_range.first not in [s.getsockname()[1] for s in sockets[1:]]
    with pytest.raises(LimitExceeded):
        book.listener()


def test_a_hold_expires(small_range: PortRange) -> None:
    book = PortBook(small_range, hold=0.0)
    given = {book.free_port() for _ in range(3 * len(small_range))}
    assert given <= set(range(small_range.first, small_range.last + 1))


def test_a_full_range_says_how_to_widen_it(small_range: PortRange, sockets: list[socket.socket]) -> None:
    book = PortBook(small_range)
    with pytest.raises(LimitExceeded) as caught:
        while True:
            sockets.append(book.listener())
    assert small_range.describe() in caught.value.message
    assert len(sockets) <= len(small_range)


def test_parse_range() -> None:
    assert parse_range(" 20000-29999 ") == PortRange(20000, 29999)
    for bad in ("20000", "a-b", "29999-20000", "80-90", "60000-70000"):
        with pytest.raises(ValueError, match=r"range|FIRST-LAST"):
            parse_range(bad)


def test_the_defaults_agree() -> None:
    """The daemon's default range (settings) and the runtime's (when used alone) are one range."""
    settings = ServeSettings(home=Path("/nonexistent"))
    assert (settings.instance_port_first, settings.instance_port_last) == (
        DEFAULT_INSTANCE_PORT_FIRST,
        DEFAULT_INSTANCE_PORT_LAST,
    )
    assert SandboxSettings().ports == PortRange(DEFAULT_INSTANCE_PORT_FIRST, DEFAULT_INSTANCE_PORT_LAST)


def test_a_listener_on_an_instance_port_is_refused_with_its_flag() -> None:
    ports = PortRange(20000, 20010)
    check_outside(ports, edge=8080, api=20011)
    with pytest.raises(ConfigError, match="the api port 20005 lies in the instance port range") as caught:
        check_outside(ports, edge=8080, api=20005)
    assert "--api-port" in caught.value.hint
    with pytest.raises(ConfigError) as caught:
        check_outside(ports, edge=20000)
    assert "--port" in caught.value.hint

import pytest

from roost.api.clientaddr import client_address, is_localhost, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.5/32"])


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "127.0.0.1", "203.0.113.7"),  # untrusted peer: the header is ignored
        ("10.1.1.1", "198.51.100.2", "198.51.100.2"),
        ("10.1.1.1", "127.0.0.1, 198.51.100.2", "198.51.100.2"),  # right-most untrusted hop wins
        ("10.1.1.1", "198.51.100.2, 10.2.2.2", "198.51.100.2"),  # trusted hops are skipped
        ("10.1.1.1", "10.3.3.3, 10.2.2.2", "10.3.3.3"),  # all trusted: the left-most
        ("10.1.1.1", "garbage", "garbage"),
    ],
)
def test_client_address(peer: str, header: str | None, expected: str) -> None:
    assert client_address(peer, header, PROXIES) == expected


def test_localhost_is_exact() -> None:
    assert is_localhost("127.0.0.1")
    assert is_localhost("::1")
    assert not is_localhost("127.0.0.3")
    assert not is_localhost("10.0.0.1")
    assert not is_localhost("not-an-ip")


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks(["nope"])

"""Which hosts a build may reach: read from uv's settings as the daemon passes them to builds,
from `--build-allow`, and resolved through the real resolver (this host's /etc/hosts names
pypi.org)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from roost.errors import ConfigError
from roost.runtime.sandbox.buildnet import (
    Destination,
    Endpoint,
    index_endpoints,
    parse_allow,
    parse_allow_flags,
    read_resolvers,
    resolve,
)

PYPI = (Endpoint("pypi.org", 443), Endpoint("files.pythonhosted.org", 443))


def test_without_settings_builds_reach_pypi_and_its_file_host() -> None:
    assert index_endpoints({"PATH": "/usr/bin"}) == PYPI


def test_an_index_url_replaces_pypi_and_extra_indexes_add_to_it() -> None:
    env = {
        "UV_DEFAULT_INDEX": "https://mirror.example/simple",
        "UV_EXTRA_INDEX_URL": "http://extra.example:8080/simple https://mirror.example/simple",
        "UV_INDEX": "internal=https://pkgs.example:8443/simple",
        "UV_FIND_LINKS": "file:///opt/wheels,https://wheels.example/",
        "HTTPS_PROXY": "http://proxy.example:3128",
    }
    assert index_endpoints(env) == (
        Endpoint("mirror.example", 443),
        Endpoint("extra.example", 8080),
        Endpoint("pkgs.example", 8443),
        Endpoint("wheels.example", 443),
        Endpoint("proxy.example", 3128),
    )


def test_a_file_index_needs_no_network() -> None:
    assert index_endpoints({"UV_INDEX_URL": "file:///srv/simple"}) == ()


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("Mirror.Example", Endpoint("mirror.example", None)),
        ("mirror.example:8443", Endpoint("mirror.example", 8443)),
        ("10.0.0.0/8", Endpoint("10.0.0.0/8", None)),
        ("192.0.2.7:443", Endpoint("192.0.2.7", 443)),
        ("2001:db8::/32", Endpoint("2001:db8::/32", None)),
        ("[2001:db8::1]:443", Endpoint("2001:db8::1", 443)),
    ],
)
def test_build_allow_takes_host_and_port(text: str, endpoint: Endpoint) -> None:
    assert parse_allow(text) == endpoint


@pytest.mark.parametrize("text", ["", "host:0", "host:99999", "host:https", "bad host", "a..b"])
def test_build_allow_refuses_what_is_not_a_host(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST|port"):
        parse_allow(text)


def test_the_build_allow_flags_are_read_together_and_a_bad_one_is_a_config_error() -> None:
    assert parse_allow_flags(["a.example", "10.0.0.0/8"]) == (Endpoint("a.example", None), Endpoint("10.0.0.0/8", None))
    with pytest.raises(ConfigError) as caught:
        parse_allow_flags(["a.example", "host:0"])
    assert "--build-allow takes HOST[:PORT]" in caught.value.hint


def test_resolving_uses_the_hosts_file_and_keeps_networks() -> None:
    expected = {info[4][0] for info in socket.getaddrinfo("pypi.org", None, type=socket.SOCK_STREAM)}
    net = resolve([Endpoint("pypi.org", 443), Endpoint("10.1.0.0/16", None)], ("192.0.2.53",))
    assert {d.network.split("/")[0] for d in net.destinations if d.port == 443} == expected
    assert Destination("10.1.0.0/16", None) in net.destinations
    assert net.resolvers == ("192.0.2.53",)
    assert net.unresolved == ()


def test_a_name_that_does_not_resolve_is_named() -> None:
    net = resolve([Endpoint("no-such-host.invalid", 443)], ())
    assert net.destinations == ()
    assert net.unresolved == ("no-such-host.invalid:443",)


def test_resolvers_come_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nsearch example\nnameserver 10.0.0.53\n")
    assert read_resolvers(conf) == ("10.0.0.53", "fe80::1")
    assert read_resolvers(tmp_path / "missing") == ()

"""Where a build may connect: the package index hosts uv is configured with (and their mirrors,
proxies and the operator's `--build-allow` entries), resolved to addresses once at start, and
the DNS resolvers. Pure except `resolve` and `read_resolvers` (blocking: call them in a thread).
Never writes rules: sandbox/firewall.py turns a `BuildNet` into nftables text.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from roost.errors import ConfigError

DEFAULT_INDEX_HOSTS = ("pypi.org", "files.pythonhosted.org")  # uv's default index and where it keeps the files
DEFAULT_PORTS = {"https": 443, "http": 80}
RESOLV_CONF = Path("/etc/resolv.conf")
INDEX_URL_VARS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX")  # each replaces pypi.org
EXTRA_URL_VARS = ("UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_FIND_LINKS")  # each adds to it; lists split on spaces
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")

Lookup = Callable[[str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host (name, address or CIDR) and a TCP port; `port=None` is every port.

    Example: `Endpoint("pypi.org", 443)`, `Endpoint("10.0.0.0/8", None)`."""

    host: str
    port: int | None

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and "/" not in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Destination:
    """A resolved endpoint: an IPv4 or IPv6 network (a single address is a /32 or /128)."""

    network: str
    port: int | None

    @property
    def is_ipv6(self) -> bool:
        return ipaddress.ip_network(self.network).version == 6


@dataclass(frozen=True, slots=True)
class BuildNet:
    """Everything a build's sockets may reach; `unresolved` names what could not be looked up."""

    resolvers: tuple[str, ...]
    destinations: tuple[Destination, ...]
    unresolved: tuple[str, ...] = ()


def parse_allow(text: str) -> Endpoint:
    """`--build-allow HOST[:PORT]`: a hostname, an address or a CIDR, IPv6 in brackets when a port
    follows. Raises ValueError with a message for people.

    >>> parse_allow("mirror.example:8443"), parse_allow("10.1.0.0/16"), parse_allow("[2001:db8::1]:443")
    (Endpoint(host='mirror.example', port=8443), Endpoint(host='10.1.0.0/16', port=None), \
Endpoint(host='2001:db8::1', port=443))
    """
    value = text.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif value.count(":") > 1:
        host, port_text = value, ""
    else:
        host, _, port_text = value.partition(":")
    port = _port(port_text, text) if port_text else None
    if not host or not (_is_network(host) or _is_hostname(host)):
        raise ValueError(f"{text!r} is not HOST[:PORT] (a hostname, an address or a CIDR like 10.0.0.0/8)")
    return Endpoint(host.lower(), port)


def parse_allow_flags(entries: Iterable[str]) -> tuple[Endpoint, ...]:
    """Every `--build-allow` entry, read before anything starts. Raises ConfigError for a malformed one."""
    try:
        return tuple(parse_allow(entry) for entry in entries)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="--build-allow takes HOST[:PORT]: pypi.example:443, 10.0.0.0/8") from exc


def index_endpoints(env: Mapping[str, str]) -> tuple[Endpoint, ...]:
    """The hosts of the indexes uv is given in `env` (the daemon's environment, which builds
    inherit), their find-links and the proxies; pypi.org and files.pythonhosted.org unless an
    index URL replaces them. `file://` URLs need no network and add nothing."""
    replacing = [url for name in INDEX_URL_VARS for url in env.get(name, "").split()]
    extra = [url for name in EXTRA_URL_VARS for url in env.get(name, "").replace(",", " ").split()]
    proxies = [env[name] for name in PROXY_VARS if env.get(name)]
    found: list[Endpoint] = [] if replacing else [Endpoint(host, 443) for host in DEFAULT_INDEX_HOSTS]
    for url in [*replacing, *extra, *proxies]:
        endpoint = _url_endpoint(url.partition("=")[2] if _is_named_index(url) else url)
        if endpoint is not None and endpoint not in found:
            found.append(endpoint)
    return tuple(found)


def read_resolvers(path: Path = RESOLV_CONF) -> tuple[str, ...]:
    """The `nameserver` addresses of resolv.conf (zone ids dropped); blocking."""
    try:
        text = path.read_text()
    except OSError:
        return ()
    found: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and _is_network(parts[1].partition("%")[0]):
            found.append(parts[1].partition("%")[0])
    return tuple(dict.fromkeys(found))


def resolve(endpoints: Iterable[Endpoint], resolvers: Sequence[str], lookup: Lookup | None = None) -> BuildNet:
    """Look every hostname up now (blocking); addresses and CIDRs pass as they are."""
    find = lookup or _addresses
    destinations: list[Destination] = []
    unresolved: list[str] = []
    for endpoint in endpoints:
        if _is_network(endpoint.host):
            networks = [str(ipaddress.ip_network(endpoint.host, strict=False))]
        else:
            networks = [str(ipaddress.ip_network(address)) for address in find(endpoint.host)]
            if not networks:
                unresolved.append(endpoint.describe())
        destinations.extend(Destination(network, endpoint.port) for network in networks)
    return BuildNet(tuple(resolvers), tuple(dict.fromkeys(destinations)), tuple(unresolved))


def _addresses(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


def _url_endpoint(url: str) -> Endpoint | None:
    parts = urlsplit(url.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None  # file://, a bare path: nothing to reach
    try:
        port = parts.port
    except ValueError:
        return None
    return Endpoint(parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme])


def _is_named_index(value: str) -> bool:
    """UV_INDEX entries may be `name=url`."""
    name, sep, rest = value.partition("=")
    return bool(sep) and "://" in rest and "://" not in name


def _port(text: str, original: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{original!r}: the port must be a number from 1 to 65535")
    return int(text)


def _is_network(host: str) -> bool:
    try:
        ipaddress.ip_network(host, strict=False)
    except ValueError:
        return False
    return True


def _is_hostname(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return all(0 < len(label) < 64 and label.replace("-", "").isalnum() for label in labels)


__all__ = ["BuildNet", "Destination", "Endpoint", "index_endpoints", "parse_allow", "read_resolvers", "resolve"]

"""The edge's TLS: the one policy every HTTPS context follows, the per-domain snapshot chosen by
SNI, and the HTTP-01 answers put up for an ACME CA.

Never obtains a certificate and never reads the store: the daemon hands over `TlsTable`
snapshots (built from control's certificates), the ACME issuer publishes on the `Challenges`.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# TLS 1.2 with forward secrecy and AEAD only (Mozilla's "intermediate" list); TLS 1.3's suites are all modern.
CIPHERS_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
ALPN_HTTP11 = "http/1.1"
ALPN_ACME = "acme-tls/1"  # RFC 8737: the TLS-ALPN-01 challenge's handshake
CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"
HSTS_MAX_AGE = 31_536_000  # one year, what browsers' preload lists ask for


def server_context(chain: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """An HTTPS server context under the edge's policy: TLS 1.2 and 1.3 only, modern ciphers,
    ALPN http/1.1, no compression, no renegotiation; with `chain` and `key` loaded when given.
    Raises ssl.SSLError / OSError when the files cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(CIPHERS_TLS12)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols([ALPN_HTTP11])
    if chain is not None and key is not None:
        context.load_cert_chain(chain, key)
    return context


@dataclass(frozen=True, slots=True)
class TlsSite:
    """One custom domain that has a certificate."""

    context: ssl.SSLContext
    redirect: bool = True  # plain HTTP requests for it are sent to HTTPS
    hsts: bool = False  # HTTPS answers carry Strict-Transport-Security


@dataclass(frozen=True, slots=True)
class TlsTable:
    """What the HTTPS door serves: a context per domain (by SNI) and the default one (the
    --tls-cert pair, or None: an unknown name fails its handshake)."""

    sites: Mapping[str, TlsSite] = field(default_factory=dict)
    default: ssl.SSLContext | None = None
    https_port: int | None = None  # where redirects point; None: no HTTPS door, no redirects

    def redirect_location(self, host: str, target: bytes) -> bytes | None:
        """Where a plain HTTP request for `host` goes instead, or None when it is served as is."""
        site = self.sites.get(host)
        if site is None or not site.redirect or self.https_port is None:
            return None
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{host}{port}".encode() + target

    def hsts_line(self, host: str) -> bytes:
        """The Strict-Transport-Security header line for an HTTPS answer for `host`, or b""."""
        site = self.sites.get(host)
        if site is None or not site.hsts:
            return b""
        return b"Strict-Transport-Security: max-age=%d\r\n" % HSTS_MAX_AGE


def host_name(host: bytes) -> str:
    """The name of a Host header value: lower case, without port or trailing dot.

    >>> host_name(b"Shop.Example.com.:8443")
    'shop.example.com'
    """
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        return text.partition("]")[0] + "]"
    return text.partition(":")[0].rstrip(".")


def sni_callback(
    tables: Callable[[], TlsTable], challenges: Challenges
) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], int | None]:
    """The listening context's SNI hook: a TLS-ALPN-01 challenge's context while one is open for
    the name, else the named domain's context, the default, or a refused handshake
    (unrecognized_name) when there is neither."""

    def choose(conn: ssl.SSLObject, name: str | None, _outer: ssl.SSLContext) -> int | None:
        table = tables()
        host = name.lower().rstrip(".") if name else None
        alpn = challenges.alpn_context(host) if host else None
        if alpn is not None:
            conn.context = alpn
            return None
        site = table.sites.get(host) if host else None
        if site is not None:
            conn.context = site.context
            return None
        if table.default is not None:
            conn.context = table.default
            return None
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    return choose


class Challenges:
    """HTTP-01 answers by token. The issuer publishes from its thread; one dict operation each,
    so the loop's reads never see a half-made entry."""

    def __init__(self) -> None:
        self._answers: dict[bytes, bytes] = {}
        self._alpn: dict[str, ssl.SSLContext] = {}  # host -> the TLS-ALPN-01 certificate's context

    def publish(self, token: str, key_authorization: str) -> None:
        self._answers[token.encode()] = key_authorization.encode()

    def withdraw(self, token: str) -> None:
        self._answers.pop(token.encode(), None)

    def publish_alpn(self, host: str, chain_pem: bytes, key_pem: bytes) -> None:
        """Serve this certificate to `host`'s handshakes (ALPN acme-tls/1, else http/1.1) until withdrawn."""
        with tempfile.TemporaryDirectory(prefix="roost-alpn-") as folder:
            chain, key = Path(folder) / "chain.pem", Path(folder) / "key.pem"
            chain.write_bytes(chain_pem)
            key.write_bytes(key_pem)
            context = server_context(chain, key)
        context.set_alpn_protocols([ALPN_ACME, ALPN_HTTP11])
        self._alpn[host] = context

    def withdraw_alpn(self, host: str) -> None:
        self._alpn.pop(host, None)

    def alpn_context(self, host: str) -> ssl.SSLContext | None:
        return self._alpn.get(host) if self._alpn else None

    @property
    def answering(self) -> bool:
        """Whether any challenge is up (plain HTTP requests are looked at only then)."""
        return bool(self._answers)

    def answer(self, target: bytes) -> bytes | None:
        """The key authorization for a request target under /.well-known/acme-challenge/, or None."""
        if not target.startswith(CHALLENGE_PREFIX) or not self._answers:
            return None
        return self._answers.get(target[len(CHALLENGE_PREFIX) :].partition(b"?")[0])

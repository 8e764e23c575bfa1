"""The edge's HTTPS door with real TLS clients: the certificate by SNI, TLS 1.2/1.3 and ALPN
http/1.1 only, HSTS, the HTTP-01 answer and the redirect on plain HTTP, and handshakes that
count in the connection caps and time out."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from roost.edge import Edge, EdgeSettings
from roost.edge.tls import TlsSite, TlsTable, server_context
from tests.unit.edge.harness import LoopbackRuntime, Plan, listening_socket, route, table, until, uvicorn_app

SITE = "shop.test"
TIMEOUT_HANDSHAKE = 0.5


@dataclass
class Door:
    edge: Edge
    http_port: int
    https_port: int
    ca: Path


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for SITE signed by it: (ca, chain, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge test CA")])

    def build(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca = build(ca_name, ca_key.public_key()).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    site = build(x509.Name([]), key.public_key()).add_extension(
        x509.SubjectAlternativeName([x509.DNSName(SITE)]), False
    )
    paths = folder / "ca.pem", folder / "site.pem", folder / "site.key"
    paths[0].write_bytes(ca.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(site.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    ca, chain, key = make_pki(tmp_path)
    async with uvicorn_app("a") as address:
        runtime = LoopbackRuntime()
        dep = runtime.add("dep00001", Plan([address]))
        settings = EdgeSettings(timeout_handshake=TIMEOUT_HANDSHAKE, limit_connections_per_client=2)
        edge = Edge(runtime, settings)
        edge.update_routes(table(route("hello", [(dep, 100)]), hosts={SITE: "hello"}))
        plain, secure = listening_socket(), listening_socket()
        edge.update_tls(
            TlsTable({SITE: TlsSite(server_context(chain, key), hsts=True)}, https_port=secure.getsockname()[1])
        )
        await edge.start(plain)
        await edge.start_https(secure)
        try:
            yield Door(edge, plain.getsockname()[1], secure.getsockname()[1], ca)
        finally:
            await edge.close(2.0)
            await runtime.close()
            plain.close()
            secure.close()


def fetch(port: int, context: ssl.SSLContext, name: str, request: bytes) -> tuple[bytes, str]:
    """One request over TLS (blocking: run in a thread): the answer, and the version and ALPN agreed."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer, f"{tls.version()} {tls.selected_alpn_protocol()}"


def client_context(ca: Path, maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.maximum_version = maximum
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


GET = b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"


async def test_the_site_is_served_by_its_name_over_tls13_and_tls12_with_http11(door: Door) -> None:
    for version, expected in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        answer, agreed = await asyncio.to_thread(fetch, door.https_port, client_context(door.ca, version), SITE, GET)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b"x-instance: a" in answer.lower()
        assert b"strict-transport-security: max-age=31536000" in answer.lower()
        assert agreed == f"{expected} http/1.1"  # h2 offered, http/1.1 chosen


def test_the_policy_refuses_old_protocols_and_weak_ciphers() -> None:
    context = server_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name) for name in names)


async def test_an_unknown_name_fails_its_handshake_without_a_default(door: Door) -> None:
    with pytest.raises(ssl.SSLError):
        await asyncio.to_thread(fetch, door.https_port, client_context(door.ca), "other.test", GET)


async def test_plain_http_is_redirected_and_the_acme_challenge_answered(door: Door) -> None:
    door.edge.challenges.publish("tok123", "tok123.thumb")
    reader, writer = await asyncio.open_connection("127.0.0.1", door.http_port)
    writer.write(b"GET /.well-known/acme-challenge/tok123 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    writer.write(b"POST /form?x=1 HTTP/1.1\r\nHost: Shop.Test:80\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    challenge, redirect = answer.split(b"HTTP/1.1 308")
    assert challenge.startswith(b"HTTP/1.1 200") and challenge.endswith(b"\r\n\r\ntok123.thumb")
    assert f"Location: https://{SITE}:{door.https_port}/form?x=1\r\n".encode() in redirect


async def test_handshakes_count_in_the_caps_and_time_out(door: Door) -> None:
    silent = [await asyncio.open_connection("127.0.0.1", door.https_port) for _ in range(2)]
    await until(lambda: door.edge.connections == 2)  # counted before any handshake byte
    reader, writer = await asyncio.open_connection("127.0.0.1", door.https_port)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # over the per-client cap: closed at once
    writer.close()
    for silent_reader, _ in silent:  # the handshake timeout closes them
        assert await asyncio.wait_for(silent_reader.read(), TIMEOUT_HANDSHAKE + 5) == b""
    for _, silent_writer in silent:
        silent_writer.close()
    await until(lambda: door.edge.connections == 0)
    answer, _ = await asyncio.to_thread(fetch, door.https_port, client_context(door.ca), SITE, GET)
    assert answer.startswith(b"HTTP/1.1 200")  # the places came back

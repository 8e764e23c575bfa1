"""The admin API's TLS on its own name: a self-signed stand-in until the certificate is issued, then
the issued one, taken by the same listening context (with and without SNI) without a restart."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from cryptography import x509

from roost.control.tls_sites import AdminTls, TlsSites
from tests.unit.control.test_domains import START, use_cases

HOST = "api.example.com"


async def served_certificate(context: ssl.SSLContext, sni: str | None) -> x509.Certificate:
    """The certificate a real TLS server with `context` presents to a client sending `sni` (or none)."""

    async def close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE  # we read what is served, trust is not the point
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=sni or "")
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return x509.load_der_x509_certificate(der)


async def test_the_api_serves_a_temporary_certificate_then_the_issued_one(tmp_path: Path) -> None:
    domains, store, _, clock = await use_cases(tmp_path)
    await domains.claim_api_domain(HOST)
    admin = await asyncio.to_thread(AdminTls, store, domains.https.files, HOST)
    assert admin.is_temporary()
    temporary = await served_certificate(admin.context, HOST)
    (name,) = temporary.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert name.value == f"{HOST} (temporary, self-signed)"
    assert await domains.renew_due() == 1
    await admin.refresh()
    assert not admin.is_temporary()
    issued = await served_certificate(admin.context, HOST)
    assert issued.not_valid_before_utc.timestamp() == START
    assert await served_certificate(admin.context, None) == issued  # a client without SNI too
    assert not any(path.exists() for path in domains.https.files.temporary_path(HOST))
    clock[0] = START + 61 * 86400.0
    assert await domains.renew_due() == 1
    await admin.refresh()
    assert (await served_certificate(admin.context, HOST)).not_valid_before_utc.timestamp() == clock[0]
    sites = TlsSites(store, domains.https.files, 443)
    assert (await sites.table()).sites == {}  # the edge never serves the API's name
    await store.close()


async def test_a_kept_certificate_is_served_at_once_after_a_restart(tmp_path: Path) -> None:
    domains, store, _, _ = await use_cases(tmp_path)
    await domains.claim_api_domain(HOST)
    await domains.renew_due()
    admin = await asyncio.to_thread(AdminTls, store, domains.https.files, HOST)
    assert not admin.is_temporary()
    assert (await served_certificate(admin.context, HOST)).not_valid_before_utc.timestamp() == START
    await store.close()

"""The edge's TLS snapshot (`TlsTable`), built from the store's certificates and their files, and
the admin API's TLS on its own name (`AdminTls`), whose certificate follows renewals.

Contexts are loaded in a thread (file reads) and kept while a certificate's issue time is
unchanged, so a route change does not reload every certificate. Never talks to a CA.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from roost.certs import CertificateFiles, self_signed
from roost.edge.tls import TlsSite, TlsTable, server_context
from roost.model import CertSource, DomainCert
from roost.store import Store

log = logging.getLogger("roost.control")


class TlsSites:
    """Builds `TlsTable` snapshots; the default context (the --tls-cert pair) is loaded once."""

    def __init__(
        self,
        store: Store,
        files: CertificateFiles,
        https_port: int | None,
        default: tuple[Path, Path] | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self.https_port = https_port
        self.default = server_context(*default) if default is not None else None
        self._loaded: dict[str, tuple[float | None, ssl.SSLContext]] = {}

    async def table(self) -> TlsTable:
        certs = [c for c in await self.store.certificates.list() if c.source is not None and c.app is not None]
        sites = await asyncio.to_thread(self._load, certs)
        return TlsTable(sites=sites, default=self.default, https_port=self.https_port)

    def _load(self, certs: list[DomainCert]) -> dict[str, TlsSite]:
        sites: dict[str, TlsSite] = {}
        loaded: dict[str, tuple[float | None, ssl.SSLContext]] = {}
        for cert in certs:
            context = self._context(cert)
            if context is None:
                continue  # pending: no certificate yet, so no redirect either
            loaded[cert.host] = (cert.issued_at, context)
            sites[cert.host] = TlsSite(context, redirect=cert.redirect, hsts=cert.hsts)
        self._loaded = loaded
        return sites

    def _context(self, cert: DomainCert) -> ssl.SSLContext | None:
        kept = self._loaded.get(cert.host)
        if kept is not None and kept[0] == cert.issued_at:
            return kept[1]
        if cert.issued_at is None and cert.source is CertSource.ACME:
            return None
        if not self.files.has(cert.host):
            return None
        try:
            return server_context(self.files.chain_path(cert.host), self.files.key_path(cert.host))
        except (OSError, ssl.SSLError) as exc:
            log.error("cannot load the certificate of %s: %s", cert.host, exc)
            return None


class AdminTls:
    """The admin API's TLS context for its own name (`roost serve --api-domain`).

    uvicorn is handed `context` once; its SNI callback (called for every ClientHello, with or
    without a server name) switches each new connection to the newest certificate's context, so a
    renewal applies without restarting the listener. Until the CA's first certificate is on disk
    the API serves a temporary self-signed one: it never falls back to plain HTTP.
    """

    def __init__(self, store: Store, files: CertificateFiles, host: str) -> None:
        self.store = store
        self.files = files
        self.host = host
        self._issued_at: float | None = None
        self._temporary = False
        self._current = self._first()
        self.context = server_context()
        self.context.sni_callback = self._choose

    def is_temporary(self) -> bool:
        """Whether the API still serves the self-signed stand-in."""
        return self._temporary

    def _first(self) -> ssl.SSLContext:
        """The kept certificate of an earlier run if there is one, else a fresh self-signed pair."""
        if self.files.has(self.host):
            try:
                return server_context(self.files.chain_path(self.host), self.files.key_path(self.host))
            except (OSError, ssl.SSLError) as exc:
                log.error("cannot load the admin API's certificate for %s: %s", self.host, exc)
        chain, key = self.files.temporary_path(self.host)
        key_pem, chain_pem = self_signed(self.host, label=f"{self.host} (temporary, self-signed)")
        self._temporary = True
        self.files.write_private(key, key_pem)
        self.files.write_private(chain, chain_pem)
        return server_context(chain, key)

    async def refresh(self) -> None:
        """Load the certificate the store says is newest, if it changed (in a thread)."""
        cert = await self.store.certificates.get(self.host)
        if cert is None or cert.issued_at is None or cert.issued_at == self._issued_at:
            return
        try:
            context = await asyncio.to_thread(
                server_context, self.files.chain_path(self.host), self.files.key_path(self.host)
            )
        except (OSError, ssl.SSLError) as exc:
            log.error("cannot load the admin API's certificate for %s: %s", self.host, exc)
            return
        # temporary or older -> current: the next handshake gets the new certificate
        self._current, self._issued_at, self._temporary = context, cert.issued_at, False
        await asyncio.to_thread(self._forget_temporary)
        log.info("admin API: now serving the certificate for %s issued at %s", self.host, cert.issued_at)

    def _forget_temporary(self) -> None:
        for path in self.files.temporary_path(self.host):
            path.unlink(missing_ok=True)

    def _choose(self, conn: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        conn.context = self._current

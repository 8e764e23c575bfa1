"""The edge's TLS snapshot (`TlsTable`), built from the store's certificates and their files.

Contexts are loaded in a thread (file reads) and kept while a certificate's issue time is
unchanged, so a route change does not reload every certificate. Never talks to a CA.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from roost.certs import CertificateFiles
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
        certs = [c for c in await self.store.certificates.list() if c.source is not None]
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

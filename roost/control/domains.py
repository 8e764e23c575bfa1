"""Custom domains and their certificates: add (issuing through ACME, or from supplied files),
list with each certificate's state, remove, and the renewal loop.

ACME work is blocking I/O and runs in a thread; the store is written first and the change
announced after, as every use case does. A domain is never left half-configured: a first
issuance that fails removes it again, with the CA's own words in the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from roost.certs import (
    CertificateFiles,
    ChallengeBoard,
    Issuer,
    RenewalPolicy,
    after_failure,
    check_pair,
    due,
    next_wake,
    read_info,
    state_at,
)
from roost.control.core import Announcer, check_host
from roost.errors import CertificateRefused, ConfigError, NotFound, RoostError, Unavailable
from roost.model import AppName, CertSource, CertState, DomainCert
from roost.serve_settings import ServeSettings
from roost.store import Store
from roost.units import format_duration

log = logging.getLogger("roost.control")
LOOK_AGAIN = 300.0  # the renewal loop looks at the schedule at least this often
LOOK_AT_LEAST = 1.0  # ... and never more often than this
# What asking the CA can end in besides a certificate: refused, unreachable, or an answer we
# cannot read (ConfigError from read_info).
CA_FAILURES = (CertificateRefused, Unavailable, ConfigError)


@dataclass(frozen=True, slots=True)
class HttpsSetup:
    """What `roost serve` offers for custom domains' HTTPS. `issuer` None: no ACME (certificates
    only from files); `serving` False: there is no HTTPS door at all."""

    files: CertificateFiles
    issuer: Issuer | None = None
    board: ChallengeBoard | None = None
    policy: RenewalPolicy = field(default_factory=RenewalPolicy)
    serving: bool = False


@dataclass(frozen=True, slots=True)
class SuppliedCert:
    """A certificate chain and key given with `roost domains APP add NAME --cert --key`."""

    chain_pem: bytes
    key_pem: bytes


def check_api_domain(settings: ServeSettings) -> str | None:
    """`roost serve --api-domain NAME`'s name, checked like a custom domain's, or None. Raises
    UsageError (a bad name) or ConfigError (no ACME to get it from, or --tls-cert for it too)."""
    if settings.api_domain is None:
        return None
    host = check_host(settings.api_domain)
    if settings.https_port is None:
        raise ConfigError(
            "--api-domain needs automatic HTTPS to get the admin API its certificate",
            hint="add --https-port 443 (and --acme-email), or drop --api-domain",
        )
    if settings.tls_cert is not None:
        raise ConfigError(
            "--api-domain and --tls-cert would both give the admin API its certificate",
            hint="drop --tls-cert to have ACME certify the API's name, or drop --api-domain to keep the file",
        )
    return host


class DomainUseCases:
    """Add, list and remove custom domains; obtain and renew their certificates."""

    def __init__(
        self, store: Store, announcer: Announcer, https: HttpsSetup, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.announcer = announcer
        self.https = https
        self.clock = clock
        self._busy: set[str] = set()  # hosts with an issuance under way
        self._changed = asyncio.Event()  # a new certificate: the renewal loop looks at the schedule again

    async def add(
        self, app: str, host: str, supplied: SuppliedCert | None = None, redirect: bool = True, hsts: bool = False
    ) -> DomainCert:
        """Route `host` to `app`; with HTTPS on, give it a certificate (supplied, or issued now).
        Raises UsageError (bad name), Conflict (another app's), ConfigError (a bad pair, HTTPS off),
        CertificateRefused / Unavailable (the CA), each leaving nothing behind."""
        host = check_host(host)
        await self.store.get_app(app)
        if supplied is not None:
            return await self._add_supplied(AppName(app), host, supplied, redirect, hsts)
        if self.https.issuer is None:
            cert = DomainCert(host, AppName(app))
            await self.store.domains.add_domain(host, app)
            await self._added(cert, f"{host} now routes to {app}")
            return cert
        return await self._add_issued(AppName(app), host, redirect, hsts)

    async def _add_supplied(
        self, app: AppName, host: str, supplied: SuppliedCert, redirect: bool, hsts: bool
    ) -> DomainCert:
        if not self.https.serving:
            raise ConfigError(
                "this daemon has no HTTPS port to serve the certificate on",
                hint="start `roost serve` with --https-port 443 (or --tls-cert/--tls-key)",
            )
        info = check_pair(supplied.chain_pem, supplied.key_pem)
        if not info.covers(host):
            raise ConfigError(
                f"the certificate is for {', '.join(info.names) or 'no DNS name'}, not {host}",
                hint="pass a certificate whose names include the domain",
            )
        cert = DomainCert(
            host, app, CertSource.MANUAL, CertState.VALID, info.not_before, info.not_after, self.clock(),
            redirect=redirect, hsts=hsts,
        )  # fmt: skip
        await self.store.certificates.add(cert)
        try:
            await asyncio.to_thread(self.https.files.write, host, supplied.key_pem, supplied.chain_pem)
        except OSError:
            await self.store.domains.remove_domain(host, app)
            raise
        await self._added(cert, f"{host} now routes to {app} over HTTPS (certificate supplied, valid until "
                          f"{_date(info.not_after)})")  # fmt: skip
        return cert

    async def _add_issued(self, app: AppName, host: str, redirect: bool, hsts: bool) -> DomainCert:
        cert = DomainCert(host, app, CertSource.ACME, CertState.PENDING, redirect=redirect, hsts=hsts)
        self._busy.add(host)
        try:
            await self.store.certificates.add(cert)
            await self.announcer.announce(app)  # routed at once; the HTTP-01 answer is the edge's own
            try:
                issued = await self._obtain(cert)
            except CA_FAILURES as exc:
                await self.store.domains.remove_domain(host, app)  # nothing half-configured: try again once fixed
                await self.store.add_event(app, "certificate.failed", f"{host}: {exc.message}", {"host": host})
                await self.announcer.announce(app)
                raise type(exc)(exc.message, exc.hint + f"; then `roost domains {app} add {host}` again") from exc
        finally:
            self._busy.discard(host)
        return issued

    async def claim_api_domain(self, host: str | None) -> DomainCert | None:
        """Make `host` the admin API's own name, routed to no app, its certificate due at once
        (pending) unless one is kept from an earlier run; forget every other name the API had.
        Raises Conflict when an app already has `host`."""
        for gone in await self.store.certificates.remove_api_domains(keep=host):
            await asyncio.to_thread(self.https.files.remove, gone)
        if host is None:
            return None
        kept = await self.store.certificates.get(host)
        if kept is not None and kept.app is None:
            return kept
        cert = DomainCert(host, None, CertSource.ACME, CertState.PENDING, redirect=False)
        await self.store.certificates.add(cert)
        self._changed.set()  # the renewal loop issues it
        return cert

    async def _obtain(self, cert: DomainCert) -> DomainCert:
        """Ask the CA (in a thread), keep the pair on disk, record it, announce it."""
        issuer, board = self.https.issuer, self.https.board
        if issuer is None or board is None:
            raise ConfigError("ACME is off", hint="start `roost serve` with --https-port")
        issued = await asyncio.to_thread(issuer.issue, cert.host, board)
        info = read_info(issued.chain_pem)
        now = self.clock()
        await asyncio.to_thread(self.https.files.write, cert.host, issued.key_pem, issued.chain_pem)
        await self.store.certificates.issued(cert.host, info.not_before, info.not_after, now)
        renewed = cert.not_after is not None
        kind = "certificate.renewed" if renewed else "certificate.issued"
        verb = "renewed" if renewed else "issued"
        await self.store.add_event(
            cert.app,
            kind,
            f"{cert.host}: certificate {verb}, valid until {_date(info.not_after)}",
            {"host": cert.host, "not_after": info.not_after, "issuer": info.issuer},
        )
        await self.announcer.announce(cert.app)
        self._changed.set()
        return replace(
            cert, state=CertState.VALID, not_before=info.not_before, not_after=info.not_after, issued_at=now,
            failures=0, last_error="", next_attempt=None,
        )  # fmt: skip

    async def _added(self, cert: DomainCert, message: str) -> None:
        await self.store.add_event(cert.app, "domain.added", message, {"host": cert.host})
        await self.announcer.announce(cert.app)

    async def list_of(self, app: str) -> list[DomainCert]:
        """`app`'s domains with their certificates' state now (expired where the date has passed)."""
        await self.store.get_app(app)
        now = self.clock()
        return [replace(c, state=state_at(c, now)) for c in await self.store.certificates.list(app)]

    async def api_domain(self) -> DomainCert | None:
        """The admin API's own name with its certificate's state now, or None without --api-domain."""
        now = self.clock()
        return next(
            (replace(c, state=state_at(c, now)) for c in await self.store.certificates.list() if c.app is None), None
        )

    async def failing(self) -> list[DomainCert]:
        """Every domain whose last issuance or renewal failed, or whose certificate expired."""
        now = self.clock()
        certs = await self.store.certificates.list()
        return [c for c in certs if state_at(c, now) in (CertState.FAILING, CertState.EXPIRED)]

    async def remove(self, app: str, host: str) -> None:
        host = check_host(host)
        await self.store.domains.remove_domain(host, app)
        await asyncio.to_thread(self.https.files.remove, host)
        await self.store.add_event(app, "domain.removed", f"{host} no longer routes to {app}", {"host": host})
        await self.announcer.announce(AppName(app))

    # -- renewal ---------------------------------------------------------------------------

    async def run(self) -> None:
        """The renewal loop: issue what is due (pending after a restart, at 2/3 of the lifetime,
        or when a failure's back-off is over), then sleep until the next is due. A bug in one
        round is logged and the loop goes on (the next round is LOOK_AT_LEAST away at least)."""
        while True:
            self._changed.clear()
            try:
                await self.sweep()
                await self.renew_due()
            except Exception:
                log.exception("certificate renewal round failed")
            certs = await self.store.certificates.list()
            wait = next_wake(certs, self.clock(), self.https.policy, LOOK_AGAIN)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(LOOK_AT_LEAST, wait))

    async def sweep(self) -> int:
        """Remove the files of domains that are gone (their app was removed). Files are listed
        before the rows: a pair written meanwhile already has its row. Returns how many went."""
        on_disk = await asyncio.to_thread(self.https.files.hosts)
        kept = {c.host for c in await self.store.certificates.list() if c.source is not None}
        gone = on_disk - kept - self._busy
        for host in gone:
            await asyncio.to_thread(self.https.files.remove, host)
        return len(gone)

    async def renew_due(self) -> int:
        """Try every certificate due now, one at a time. Returns how many were tried."""
        if self.https.issuer is None:
            return 0
        certs = [c for c in await self.store.certificates.list() if c.host not in self._busy]
        todo = due(certs, self.clock(), self.https.policy)
        for cert in todo:
            await self._renew(cert)
        return len(todo)

    async def _renew(self, cert: DomainCert) -> None:
        self._busy.add(cert.host)
        try:
            await self._obtain(cert)
        except CA_FAILURES as exc:
            await self._renewal_failed(cert, exc)
        except NotFound:
            await asyncio.to_thread(self.https.files.remove, cert.host)  # removed while we asked
        finally:
            self._busy.discard(cert.host)

    async def _renewal_failed(self, cert: DomainCert, exc: RoostError) -> None:
        """-> failing: keep serving the old certificate (while it lasts) and say so loudly."""
        now = self.clock()
        failures, next_attempt = after_failure(cert, now, self.https.policy)
        await self.store.certificates.failed(cert.host, exc.message, failures, next_attempt)
        still = (
            f"; still serving the old certificate, valid until {_date(cert.not_after)}"
            if cert.not_after is not None and cert.not_after > now
            else ""
        )
        retry = f"next try in {format_duration(next_attempt - now)}"
        message = f"{cert.host}: certificate renewal failed ({failures}x): {exc.message}{still}; {retry}"
        log.warning("%s", message)
        await self.store.add_event(
            cert.app,
            "certificate.failed",
            message,
            {"host": cert.host, "error": exc.message, "failures": failures, "next_attempt": next_attempt},
        )


def _date(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))

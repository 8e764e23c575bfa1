"""Domains and their certificates in control, with a real store, real files, a scripted CA and a
made-up clock: issuance, a refused renewal that keeps the old certificate and backs off, a first
issuance that fails and leaves nothing, a name another app holds."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from roost.certs import CertificateFiles, Issued, RenewalPolicy, self_signed
from roost.control.core import Announcer
from roost.control.domains import DomainUseCases, HttpsSetup, check_api_domain
from roost.errors import CertificateRefused, ConfigError, Conflict, UsageError
from roost.model import AppConfig, AppName, CertState, Mode
from roost.serve_settings import ServeSettings
from roost.store import Store

START = 1_800_000_000.0  # the made-up clock's start
DAY = 86400.0
SHOP = AppName("shop")


def certificate(host: str, not_before: float, days: float) -> Issued:
    return Issued(*self_signed(host, days, not_before=not_before))


@dataclass
class ScriptedCA:
    """Issues 90-day certificates from the clock's now, or refuses with `refusal`."""

    clock: list[float]
    refusal: str | None = None
    asked: list[str] = field(default_factory=list)

    def issue(self, host: str, board: object) -> Issued:
        self.asked.append(host)
        if self.refusal is not None:
            raise CertificateRefused(self.refusal, hint="fix what the CA names")
        return certificate(host, self.clock[0], 90)


class Board:
    def publish(self, token: str, key_authorization: str) -> None: ...

    def withdraw(self, token: str) -> None: ...


async def use_cases(home: Path) -> tuple[DomainUseCases, Store, ScriptedCA, list[float]]:
    store = await Store.open(home / "roost.db")
    await store.create_app(SHOP, Mode.SERVICE, AppConfig())
    await store.create_app(AppName("blog"), Mode.SERVICE, AppConfig())
    clock = [START]
    ca = ScriptedCA(clock)
    https = HttpsSetup(CertificateFiles(home / "certs"), ca, Board(), RenewalPolicy(), serving=True)  # type: ignore[arg-type]
    return DomainUseCases(store, Announcer(), https, clock=lambda: clock[0]), store, ca, clock


async def test_a_domain_is_issued_a_certificate_kept_owner_only(tmp_path: Path) -> None:
    domains, store, ca, _ = await use_cases(tmp_path)
    added = await domains.add(SHOP, "Shop.Example.COM.")
    assert (added.host, added.state, ca.asked) == ("shop.example.com", CertState.VALID, ["shop.example.com"])
    assert added.not_after == pytest.approx(START + 90 * DAY)
    chain = tmp_path / "certs" / "shop.example.com.pem"
    assert stat.S_IMODE(chain.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "certs").stat().st_mode) == 0o700
    kinds = [e.kind for e in await store.list_events(SHOP)]
    assert "certificate.issued" in kinds
    await store.close()


async def test_a_refused_renewal_keeps_the_old_certificate_and_backs_off(tmp_path: Path) -> None:
    domains, store, ca, clock = await use_cases(tmp_path)
    await domains.add(SHOP, "shop.example.com")
    old = (tmp_path / "certs" / "shop.example.com.pem").read_bytes()
    clock[0] = START + 59 * DAY
    assert await domains.renew_due() == 0  # not two thirds yet
    clock[0] = START + 60 * DAY
    ca.refusal = "the CA refused shop.example.com: too many certificates already issued"
    assert await domains.renew_due() == 1
    [failing] = await domains.list_of(SHOP)
    assert (failing.state, failing.failures, failing.last_error) == (CertState.FAILING, 1, ca.refusal)
    assert failing.next_attempt == clock[0] + 60
    assert (tmp_path / "certs" / "shop.example.com.pem").read_bytes() == old  # still served
    [event] = [e for e in await store.list_events(SHOP) if e.kind == "certificate.failed"]
    assert "still serving the old certificate" in event.message and "next try in 1m" in event.message
    clock[0] += 59
    assert await domains.renew_due() == 0  # no tight loop: the back-off holds
    clock[0] += 1
    assert await domains.renew_due() == 1
    [again] = await domains.list_of(SHOP)
    assert (again.failures, again.next_attempt) == (2, clock[0] + 240)
    ca.refusal = None
    clock[0] += 240
    assert await domains.renew_due() == 1
    [renewed] = await domains.list_of(SHOP)
    assert (renewed.state, renewed.failures, renewed.last_error) == (CertState.VALID, 0, "")
    assert renewed.not_after == pytest.approx(clock[0] + 90 * DAY)
    assert "certificate.renewed" in [e.kind for e in await store.list_events(SHOP)]
    await store.close()


async def test_a_first_issuance_that_fails_leaves_no_domain(tmp_path: Path) -> None:
    domains, store, ca, _ = await use_cases(tmp_path)
    ca.refusal = "the CA could not validate shop.example.com: connection refused"
    with pytest.raises(CertificateRefused) as refused:
        await domains.add(SHOP, "shop.example.com")
    assert "connection refused" in refused.value.message
    assert "roost domains shop add shop.example.com" in refused.value.hint
    assert await domains.list_of(SHOP) == []
    assert await store.domains.list_domains() == {}
    await store.close()


async def test_a_name_of_another_app_is_refused_and_removal_forgets_the_certificate(tmp_path: Path) -> None:
    domains, store, _, _ = await use_cases(tmp_path)
    await domains.add(SHOP, "shop.example.com")
    with pytest.raises(Conflict, match="already belongs to app 'shop'"):
        await domains.add("blog", "shop.example.com")
    await domains.remove(SHOP, "shop.example.com")
    assert await store.certificates.get("shop.example.com") is None
    assert not (tmp_path / "certs" / "shop.example.com.pem").exists()
    await store.close()


async def test_the_files_of_a_removed_app_are_swept(tmp_path: Path) -> None:
    domains, store, _, _ = await use_cases(tmp_path)
    await domains.add(SHOP, "shop.example.com")
    await domains.add("blog", "blog.example.com")
    assert await domains.sweep() == 0
    await store.delete_app(SHOP)
    assert await domains.sweep() == 1
    assert not (tmp_path / "certs" / "shop.example.com.pem").exists()
    assert (tmp_path / "certs" / "blog.example.com.pem").exists()
    await store.close()


def settings(tmp_path: Path, **values: object) -> ServeSettings:
    return ServeSettings(home=tmp_path, **values)  # type: ignore[arg-type]


def test_the_api_domain_is_checked_like_a_custom_domain_and_needs_acme(tmp_path: Path) -> None:
    assert check_api_domain(settings(tmp_path)) is None
    assert check_api_domain(settings(tmp_path, api_domain="API.Example.COM.", https_port=443)) == "api.example.com"
    with pytest.raises(UsageError, match="not a valid host name"):
        check_api_domain(settings(tmp_path, api_domain="bad_name!", https_port=443))
    with pytest.raises(ConfigError, match="needs automatic HTTPS") as no_acme:
        check_api_domain(settings(tmp_path, api_domain="api.example.com"))
    assert "--https-port" in no_acme.value.hint
    with pytest.raises(ConfigError, match="--tls-cert") as both:
        check_api_domain(settings(tmp_path, api_domain="api.example.com", https_port=443, tls_cert=tmp_path / "c"))
    assert "drop" in both.value.hint


async def test_the_api_domain_is_issued_by_the_renewal_loop_and_is_no_apps(tmp_path: Path) -> None:
    domains, store, ca, clock = await use_cases(tmp_path)
    pending = await domains.claim_api_domain("api.example.com")
    assert pending is not None and (pending.app, pending.state) == (None, CertState.PENDING)
    assert await domains.renew_due() == 1
    assert ca.asked == ["api.example.com"]
    issued = await store.certificates.get("api.example.com")
    assert issued is not None and (issued.state, issued.app) == (CertState.VALID, None)
    assert (tmp_path / "certs" / "api.example.com.pem").is_file()
    assert [e.kind for e in await store.list_events() if e.app is None] == ["certificate.issued"]
    with pytest.raises(Conflict, match="admin API"):
        await domains.add(SHOP, "api.example.com")
    assert await store.domains.list_domains() == {}
    clock[0] = START + 60 * DAY
    assert await domains.renew_due() == 1  # renewed on the same schedule as an app's
    await store.close()


async def test_another_api_domain_forgets_the_old_one_and_an_apps_name_is_refused(tmp_path: Path) -> None:
    domains, store, _, _ = await use_cases(tmp_path)
    await domains.claim_api_domain("api.example.com")
    await domains.renew_due()
    await domains.claim_api_domain("admin.example.com")
    assert [c.host for c in await store.certificates.list()] == ["admin.example.com"]
    assert not (tmp_path / "certs" / "api.example.com.pem").exists()
    await domains.add(SHOP, "shop.example.com")
    with pytest.raises(Conflict, match="app 'shop'"):
        await domains.claim_api_domain("shop.example.com")
    await domains.claim_api_domain(None)
    assert [c.host for c in await store.certificates.list()] == ["shop.example.com"]
    await store.close()

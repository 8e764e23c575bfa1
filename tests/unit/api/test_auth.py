"""The Authenticator with real bcrypt: the bound on parallel checks and the success cache."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from roost.api import auth as auth_module
from roost.api.auth import BCRYPT_PARALLEL, Authenticator, Identity, Refusal
from roost.api.throttle import Sources, ThrottlePolicy
from roost.control import TokenInfo
from roost.grants import ADMIN
from roost.passwords import PasswordFile


class CountingPasswords(PasswordFile):
    """Real bcrypt checks, counting how many run at once and in all."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls = 0

    def verify(self, user: str, password: str) -> bool:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            return super().verify(user, password)
        finally:
            with self._lock:
                self.running -= 1


async def no_tokens(token: str) -> TokenInfo | None:
    return None


def test_bcrypt_runs_off_the_loop_at_most_bcrypt_parallel_at_once(tmp_path: Path) -> None:
    passwords = CountingPasswords(tmp_path / "passwords")
    passwords.set("admin", "right-password")
    auth = Authenticator(passwords, no_tokens)

    async def main() -> list[bool]:
        ticks = 0

        async def tick() -> None:  # runs only if bcrypt leaves the loop free
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            checks = [auth.password_ok("admin", f"wrong-{i}") for i in range(3 * BCRYPT_PARALLEL)]
            return await asyncio.gather(*checks)
        finally:
            ticker.cancel()
            assert ticks > 0

    assert asyncio.run(main()) == [False] * (3 * BCRYPT_PARALLEL)
    assert passwords.calls == 3 * BCRYPT_PARALLEL
    assert passwords.peak == BCRYPT_PARALLEL


def test_a_good_check_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    passwords = CountingPasswords(tmp_path / "passwords")
    passwords.set("admin", "old-password")
    auth = Authenticator(passwords, no_tokens)

    async def main() -> None:
        assert await auth.password_ok("admin", "old-password")
        assert await auth.password_ok("admin", "old-password")
        assert passwords.calls == 1  # the second answer came from the cache
        await asyncio.to_thread(passwords.set, "admin", "new-password")
        assert not await auth.password_ok("admin", "old-password")
        assert await auth.password_ok("admin", "new-password")
        await asyncio.to_thread(passwords.delete, "admin")
        assert not await auth.password_ok("admin", "new-password")

    asyncio.run(main())


def test_parallel_checks_of_the_same_good_password_run_bcrypt_once_per_slot(tmp_path: Path) -> None:
    passwords = CountingPasswords(tmp_path / "passwords")
    passwords.set("admin", "right-password")
    auth = Authenticator(passwords, no_tokens)

    async def main() -> list[bool]:
        return await asyncio.gather(*(auth.password_ok("admin", "right-password") for _ in range(10)))

    assert asyncio.run(main()) == [True] * 10
    assert passwords.calls <= BCRYPT_PARALLEL


async def one_token(token: str) -> TokenInfo | None:
    return TokenInfo("ci", ADMIN, None, 0.0, None) if token == "roost_the-good-one" else None


def lock(auth: Authenticator, sources: Sources) -> None:
    """Put `sources` in the lockout, as LOCKOUT_AFTER failed passwords would."""
    for _ in range(auth.throttle.policy.lockout_after):
        auth.throttle.reserve(sources, time.monotonic())
        auth.throttle.settle(sources, False, time.monotonic())


def test_a_valid_token_gets_in_from_a_locked_address(tmp_path: Path) -> None:
    auth = Authenticator(PasswordFile(tmp_path / "passwords"), one_token)
    lock(auth, Sources("127.0.0.1", "admin"))

    async def main() -> None:
        assert await auth.identify("Bearer roost_the-good-one", "127.0.0.1") == Identity("ci", "token", "127.0.0.1")
        refused = await auth.identify("Bearer roost_a-guess", "127.0.0.1")
        assert isinstance(refused, Refusal)
        assert refused.status == 401

    asyncio.run(main())


def test_a_valid_password_gets_in_from_a_locked_source_and_a_wrong_one_gets_429(tmp_path: Path) -> None:
    passwords = CountingPasswords(tmp_path / "passwords")
    passwords.set("admin", "right-password")
    auth = Authenticator(passwords, no_tokens, ThrottlePolicy(delay_locked=0.3))
    lock(auth, Sources("127.0.0.1", "admin"))

    async def timed(password: str) -> tuple[Identity | Refusal, float]:
        started = time.monotonic()
        outcome = await auth.login("admin", password, "127.0.0.1")
        return outcome, time.monotonic() - started

    async def main() -> None:
        wrong, wrong_seconds = await timed("wrong-password")
        assert isinstance(wrong, Refusal)
        assert (wrong.status, wrong.retry_after > 0) == (429, True)
        right, right_seconds = await timed("right-password")
        assert right == Identity("admin", "password", "127.0.0.1")
        # both waited the delay before bcrypt: how soon an answer comes says nothing of the password
        assert min(wrong_seconds, right_seconds) >= 0.3

    asyncio.run(main())
    assert passwords.calls == 2  # both were checked


def test_a_login_waiting_for_its_source_refuses_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is in flight and nothing settles in time: the waiter answers 429 by itself."""
    monkeypatch.setattr(auth_module, "LIMIT_WAIT_SECONDS", 0.2)
    auth = Authenticator(PasswordFile(tmp_path / "passwords"), no_tokens)
    sources = Sources("127.0.0.1", "admin")
    for _ in range(auth.throttle.policy.lockout_after):  # admitted, never settled
        auth.throttle.reserve(sources, time.monotonic())

    async def main() -> Identity | Refusal:
        async with asyncio.timeout(30):
            return await auth.login("admin", "some-password", "127.0.0.1")

    refused = asyncio.run(main())
    assert isinstance(refused, Refusal)
    assert refused.status == 429

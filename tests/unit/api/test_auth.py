"""The Authenticator with real bcrypt: the bound on parallel checks and the success cache."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from roost.api.auth import BCRYPT_PARALLEL, Authenticator
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


async def no_tokens(token: str) -> str | None:
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

"""The password file: `$ROOST_HOME/passwords`, one `user:bcrypt-hash:grants` per line.

`grants` is `Grants.encode()` (roost/grants.py): `admin`, `deployer=shop-*;viewer=blog`, or empty
for no rights. A line without it (`user:bcrypt-hash`, the format before roles) is an admin, so
every user made before roles keeps the rights it had. Written atomically with mode 0600;
plain-text passwords are never written or logged. Every call here blocks (bcrypt is slow on
purpose): call from a thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from roost.errors import NotFound, UsageError
from roost.grants import ADMIN, NOTHING, Grants

BCRYPT_ROUNDS = 12
LIMIT_PASSWORD_BYTES = 72  # bcrypt ignores what follows; refuse rather than truncate silently
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

FileVersion = tuple[int, int, int, int]  # (device, inode, size, mtime in ns): changes with every write


@functools.cache
def _dummy_hash() -> bytes:
    """A hash of the real cost for unknown users, made on first use (0.3 s: not at import)."""
    return bcrypt.hashpw(b"roost-dummy-password", bcrypt.gensalt(BCRYPT_ROUNDS))


def check_user_name(user: str) -> str:
    if not USER_RE.match(user):
        raise UsageError(
            f"'{user}' is not a valid user name",
            hint="use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        )
    return user


def check_new_password(password: str) -> bytes:
    encoded = password.encode()
    if len(encoded) < 8:
        raise UsageError("the password is too short", hint="use at least 8 characters")
    if len(encoded) > LIMIT_PASSWORD_BYTES:
        raise UsageError(
            f"the password is {len(encoded)} bytes; bcrypt uses only the first {LIMIT_PASSWORD_BYTES}",
            hint=f"choose a password of at most {LIMIT_PASSWORD_BYTES} bytes",
        )
    return encoded


@dataclass(frozen=True, slots=True)
class Account:
    hashed: bytes
    grants: Grants


def _grants(text: str) -> Grants:
    """A line's grants; a field this version cannot read gives no rights (fail closed)."""
    try:
        return Grants.decode(text)
    except UsageError:
        return NOTHING


class PasswordFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def accounts(self) -> dict[str, Account]:
        """user -> its hash and grants; an absent file means no users."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        users: dict[str, Account] = {}
        for line in text.splitlines():
            user, sep, rest = line.strip().partition(":")
            hashed, has_grants, grants = rest.partition(":")  # a bcrypt hash has no ':'
            if sep and user and hashed.startswith("$2"):
                users[user] = Account(hashed.encode(), _grants(grants) if has_grants else ADMIN)
        return users

    def load(self) -> dict[str, bytes]:
        """user -> bcrypt hash."""
        return {user: account.hashed for user, account in self.accounts().items()}

    def grants(self, user: str) -> Grants | None:
        """What `user` may do, or None when there is no such user."""
        account = self.accounts().get(user)
        return None if account is None else account.grants

    def version(self) -> FileVersion | None:
        """What identifies this state of the file (None: no file). Every write replaces the file,
        so a new inode marks it even within one mtime tick; caches of checks key on this."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def has_users(self) -> bool:
        return bool(self.load())

    def set(self, user: str, password: str, grants: Grants | None = None) -> None:
        """Add or replace a user's password (bcrypt, cost 12). A new user gets `grants` (default
        admin, as before roles); an existing one keeps its own unless `grants` is given."""
        check_user_name(user)
        hashed = bcrypt.hashpw(check_new_password(password), bcrypt.gensalt(BCRYPT_ROUNDS))
        users = self.accounts()
        kept = users[user].grants if user in users else ADMIN
        users[user] = Account(hashed, grants if grants is not None else kept)
        self._write(users)

    def set_grants(self, user: str, grants: Grants) -> None:
        users = self.accounts()
        if user not in users:
            raise self._no_user(user)
        users[user] = Account(users[user].hashed, grants)
        self._write(users)

    def delete(self, user: str) -> None:
        users = self.accounts()
        if user not in users:
            raise self._no_user(user)
        del users[user]
        self._write(users)

    def _no_user(self, user: str) -> NotFound:
        return NotFound(
            f"no user named '{user}'", hint=f"`roost user list` shows them; `roost password {user}` adds it"
        )

    def verify(self, user: str, password: str) -> bool:
        """Constant-cost check: an unknown user is checked against a dummy hash of the same cost."""
        hashed = self.load().get(user)
        candidate = password.encode()[: LIMIT_PASSWORD_BYTES + 1]
        if hashed is None:
            bcrypt.checkpw(candidate[:LIMIT_PASSWORD_BYTES], _dummy_hash())
            return False
        if len(candidate) > LIMIT_PASSWORD_BYTES:
            bcrypt.checkpw(candidate[:LIMIT_PASSWORD_BYTES], _dummy_hash())
            return False
        return bcrypt.checkpw(candidate, hashed)

    def _write(self, users: dict[str, Account]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{user}:{a.hashed.decode()}:{a.grants.encode()}\n" for user, a in sorted(users.items()))
        fd, temp = tempfile.mkstemp(prefix=".passwords-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

"""Secrets at rest: values encrypted with a key kept in `$ROOST_HOME/secret.key` (0600).

Fernet (AES-128-CBC with HMAC-SHA256) from the `cryptography` package. Plain
values exist only in memory and in the instances' environments.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from roost.errors import StoreError


class Vault:
    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._fernet = Fernet(self._load_or_create())

    def _load_or_create(self) -> bytes:
        try:
            return self.key_path.read_bytes().strip()
        except FileNotFoundError:
            pass
        key = Fernet.generate_key()
        self.key_path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.key_path.with_name(f".{self.key_path.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, self.key_path)  # never replaces a key another process wrote first
        except FileExistsError:
            key = self.key_path.read_bytes().strip()
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return key

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise StoreError(
                "a secret cannot be decrypted with the key in " + str(self.key_path),
                hint="the key file was replaced; restore it from a backup or set the secret again",
            ) from exc

"""API tokens: only a hash of each token is kept, with what it may do."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from roost.errors import Conflict, NotFound
from roost.store.db import Database


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    grants: str  # Grants.encode(); 'admin' for every token made before roles
    user: str | None  # a password user's token acts with that user's grants
    created_at: float
    last_used_at: float | None


class TokenTable:
    """`store.tokens`: API tokens by hash, on the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_token(self, name: str, token_hash: str, grants: str = "admin", user: str | None = None) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise Conflict(
                    f"a token named '{name}' already exists", hint=f"revoke it first: roost token revoke {name}"
                )
            conn.execute(
                "INSERT INTO tokens (name, hash, created_at, grants, user) VALUES (?, ?, ?, ?, ?)",
                (name, token_hash, time.time(), grants, user),
            )

        await self._db.write(insert)

    async def revoke_token(self, name: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no token named '{name}'", hint="`roost token list` shows them")

        await self._db.write(delete)

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, by name."""
        return await self._db.read(
            lambda conn: [_record(r) for r in conn.execute("SELECT * FROM tokens ORDER BY name")]
        )

    async def token_record(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, or None."""

        def select(conn: sqlite3.Connection) -> TokenRecord | None:
            row = conn.execute("SELECT * FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
            return None if row is None else _record(row)

        return await self._db.read(select)

    async def has_tokens(self) -> bool:
        return await self._db.read(lambda conn: conn.execute("SELECT 1 FROM tokens LIMIT 1").fetchone() is not None)


def _record(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(row["name"], row["grants"], row["user"], row["created_at"], row["last_used_at"])

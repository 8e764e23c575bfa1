"""The SQLite connection: WAL, migrations, and the one thread that touches it.

Every statement runs on a single worker thread, so the event loop never
blocks on disk and writes never interleave. Writes run inside `BEGIN
IMMEDIATE ... COMMIT`: a crash mid-write leaves the previous state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from roost.errors import StoreError, no_space
from roost.store.migrations import MIGRATIONS

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    """Open the database, switch on WAL and foreign keys, apply migrations."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(path)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open the store at {path}: {exc}",
            hint="check that the directory is writable and the file is a Roost database",
        ) from exc
    return conn


def _make_private(path: Path) -> None:
    """The database, its WAL and its shared memory are the owner's alone (0600), whatever the umask.

    Creating the file first is enough for new stores: SQLite gives -wal and -shm the mode of the
    database file. Files of older stores (0644 by SQLite's default) are narrowed here.
    """
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for member in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(member.stat().st_mode) & 0o077:
                member.chmod(0o600)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema forward to the newest version; return that version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the store is at schema version {version}, newer than this Roost knows ({len(MIGRATIONS)})",
            hint="upgrade Roost, or point --home at another directory",
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration script at semicolons that end a complete statement."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class Database:
    """Owns the connection and its thread; `read` and `write` run callables there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roost-store")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await self._submit(lambda: connect(self.path))

    async def close(self) -> None:
        if self._conn is not None:
            conn = self._conn
            self._conn = None
            await self._submit(conn.close)
        self._executor.shutdown(wait=True)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._require()
        return await self._submit(lambda: fn(conn))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one immediate transaction: all of it lands, or none."""
        conn = self._require()

        def transaction() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")  # may fail too (a full disk): then undone like the rest
            except BaseException:
                if conn.in_transaction:  # SQLite ends it itself on some errors (SQLITE_FULL): nothing to undo then
                    conn.execute("ROLLBACK")
                raise
            return result

        return await self._submit(transaction)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is not open", hint="this is a bug in Roost; please report it")
        return self._conn

    async def _submit(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:  # "database or disk is full"
                raise no_space(self.path.parent) from exc
            raise StoreError(f"store error: {exc}", hint=f"check the database at {self.path}") from exc

"""The audit trail: one row per admin API call that changed something (or revealed a secret).

Queried with its filters in SQL, newest last, so a long trail costs an indexed scan, not a
read of every row into Python.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from roost.store.db import Database


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who (`user`, how they logged in: `kind`, from `address`) did what (`action`: the HTTP
    method unless named, e.g. `secret.reveal`) to which app, and how it ended (`status`)."""

    id: int
    at: float
    app: str | None
    user: str
    kind: str
    address: str
    method: str
    path: str
    action: str
    status: int


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of `roost audit`; None matches everything. `action` matches the action or the method."""

    app: str | None = None
    user: str | None = None
    action: str | None = None
    since: float | None = None
    limit: int = 50


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        app=row["app"],
        user=row["user"],
        kind=row["kind"],
        address=row["address"],
        method=row["method"],
        path=row["path"],
        action=row["action"],
        status=row["status"],
    )


def _where(query: AuditQuery) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if query.app is not None:
        clauses.append("app = ?")
        params.append(query.app)
    if query.user is not None:
        clauses.append("user = ?")
        params.append(query.user)
    if query.action is not None:
        clauses.append("(action = ? OR method = upper(?))")
        params += [query.action, query.action]
    if query.since is not None:
        clauses.append("at >= ?")
        params.append(query.since)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


class AuditTable:
    """`store.audit`: the audit trail, on the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_audit(
        self, app: str | None, user: str, kind: str, address: str, method: str, path: str, action: str, status: int
    ) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO audit (at, app, user, kind, address, method, path, action, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), app, user, kind, address, method, path, action, status),
            ).close()
        )

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """The newest `query.limit` entries that match, oldest first."""
        where, params = _where(query)

        def select(conn: sqlite3.Connection) -> list[AuditEntry]:
            sql = f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?"  # noqa: S608 - clauses are fixed text
            return [_entry(r) for r in reversed(conn.execute(sql, [*params, query.limit]).fetchall())]

        return await self._db.read(select)

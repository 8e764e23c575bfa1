"""Custom domains' certificates: source, state and renewal schedule, one row per domain.

A row belongs to its `domains` row (removed with it); a domain of no app (app NULL) is the admin
API's own name. `add` writes both in one transaction, so a domain never exists half-configured.
Keys and chains are files (roost/certs/files.py), never rows.
"""

from __future__ import annotations

import sqlite3

from roost.errors import Conflict, NotFound
from roost.model import AppName, CertSource, CertState, DomainCert
from roost.store.db import Database

_COLUMNS = "d.host, d.app, c.source, c.state, c.not_before, c.not_after, c.issued_at, c.failures, c.last_error, "
_COLUMNS += "c.next_attempt, c.redirect, c.hsts"
_SELECT = f"SELECT {_COLUMNS} FROM domains d LEFT JOIN certificates c ON c.host = d.host"  # noqa: S608


def _owner(row: sqlite3.Row) -> AppName | None:
    return None if row["app"] is None else AppName(row["app"])


def _owned_by(app: str | None) -> str:
    """Who holds `host`, for an error message."""
    return "the admin API's own name (roost serve --api-domain)" if app is None else f"app '{app}'"


def _cert(row: sqlite3.Row) -> DomainCert:
    if row["source"] is None:
        return DomainCert(host=row["host"], app=_owner(row))
    return DomainCert(
        host=row["host"],
        app=_owner(row),
        source=CertSource(row["source"]),
        state=CertState(row["state"]),
        not_before=row["not_before"],
        not_after=row["not_after"],
        issued_at=row["issued_at"],
        failures=row["failures"],
        last_error=row["last_error"],
        next_attempt=row["next_attempt"],
        redirect=bool(row["redirect"]),
        hsts=bool(row["hsts"]),
    )


class CertificateTable:
    """`store.certificates`: holds the Database, as every table of the store does."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, cert: DomainCert) -> None:
        """Route `cert.host` to `cert.app` and record its certificate, together. Raises Conflict when
        the host belongs to an app already, NotFound when the app does not exist."""

        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT app FROM domains WHERE host = ?", (cert.host,)).fetchone()
            if row is not None:
                raise Conflict(
                    f"{cert.host} already belongs to {_owned_by(row['app'])}",
                    hint=f"remove it there first: roost domains {row['app']} remove {cert.host}"
                    if row["app"] is not None
                    else "use another name, or start `roost serve` without --api-domain",
                )
            if (
                cert.app is not None
                and conn.execute("SELECT 1 FROM apps WHERE name = ?", (cert.app,)).fetchone() is None
            ):
                raise NotFound(f"no app named '{cert.app}'", hint="`roost list` shows the apps there are")
            conn.execute("INSERT INTO domains (host, app) VALUES (?, ?)", (cert.host, cert.app))
            conn.execute(
                "INSERT INTO certificates (host, source, state, not_before, not_after, issued_at, redirect, hsts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cert.host,
                    cert.source,
                    cert.state.value,
                    cert.not_before,
                    cert.not_after,
                    cert.issued_at,
                    int(cert.redirect),
                    int(cert.hsts),
                ),
            )

        await self._db.write(insert)

    async def list(self, app: str | None = None) -> list[DomainCert]:
        """Every custom domain (of `app`), with or without a certificate, by host."""

        def select(conn: sqlite3.Connection) -> list[DomainCert]:
            if app is None:
                return [_cert(r) for r in conn.execute(f"{_SELECT} ORDER BY d.host")]
            return [_cert(r) for r in conn.execute(f"{_SELECT} WHERE d.app = ? ORDER BY d.host", (app,))]

        return await self._db.read(select)

    async def remove_api_domains(self, keep: str | None) -> set[str]:
        """Forget the admin API's names other than `keep` (a restart with another --api-domain, or
        none). Returns the hosts removed, whose files the caller removes."""

        def delete(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute("SELECT host FROM domains WHERE app IS NULL").fetchall()
            gone = {r["host"] for r in rows if r["host"] != keep}
            conn.executemany("DELETE FROM domains WHERE host = ?", [(host,) for host in gone])
            return gone

        return await self._db.write(delete)

    async def get(self, host: str) -> DomainCert | None:
        row = await self._db.read(lambda conn: conn.execute(f"{_SELECT} WHERE d.host = ?", (host,)).fetchone())
        return None if row is None else _cert(row)

    async def issued(self, host: str, not_before: float, not_after: float, at: float) -> None:
        """-> valid: a new certificate is on disk; failures are forgotten."""
        await self._update(
            host,
            "state = ?, not_before = ?, not_after = ?, issued_at = ?, failures = 0, last_error = '',"
            " next_attempt = NULL",
            (CertState.VALID.value, not_before, not_after, at),
        )

    async def failed(self, host: str, error: str, failures: int, next_attempt: float) -> None:
        """-> failing: the CA refused or could not be reached; the old certificate (if any) stays."""
        await self._update(
            host,
            "state = ?, failures = ?, last_error = ?, next_attempt = ?",
            (CertState.FAILING.value, failures, error, next_attempt),
        )

    async def _update(self, host: str, assignments: str, values: tuple[object, ...]) -> None:
        def update(conn: sqlite3.Connection) -> None:
            sql = f"UPDATE certificates SET {assignments} WHERE host = ?"  # noqa: S608 - our own column list
            if conn.execute(sql, (*values, host)).rowcount == 0:
                raise NotFound(f"{host} has no certificate", hint="it was removed meanwhile")

        await self._db.write(update)

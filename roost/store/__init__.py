"""The store: Roost's desired state in SQLite. The only module that speaks SQL.

`Store` is async; every call runs on the store's own thread. Calls that
change several rows do so in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from roost.errors import Conflict, NotFound
from roost.model import (
    App,
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    DeploymentStatus,
    DesiredState,
    Event,
    Mode,
    Traffic,
    TrafficEntry,
)
from roost.store.aliases import AliasTable
from roost.store.audit import AuditEntry, AuditQuery, AuditTable
from roost.store.certificates import CertificateTable
from roost.store.db import Database
from roost.store.domains import DomainTable
from roost.store.instance_tables import InstanceTable
from roost.store.quotas import QuotaTable
from roost.store.records import app_from_row, deployment_from_row, event_from_row
from roost.store.secrets import SecretTable
from roost.store.tokens import TokenTable

__all__ = ["AuditEntry", "AuditQuery", "Store"]


def _no_app(name: str) -> NotFound:
    return NotFound(f"no app named '{name}'", hint="`roost list` shows the apps there are")


class Store:
    """Apps, deployments, traffic and events itself; every other table is an object it owns,
    one attribute each, all on the one database.

    Example::

        store = await Store.open(home / "roost.db")
        app = await store.create_app(AppName("hello"), Mode.FUNCTION, AppConfig())
        await store.tokens.create_token("ci", token_hash)
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.aliases = AliasTable(db)  # branch aliases: stable preview hosts
        self.certificates = CertificateTable(db)  # custom domains' certificates
        self.on_event: Callable[[Event], None] | None = None  # told of each event stored, once committed
        self.instances = InstanceTable(db)
        self.domains = DomainTable(db)
        self.tokens = TokenTable(db)
        self.secrets = SecretTable(db)
        self.quotas = QuotaTable(db)
        self.audit = AuditTable(db)

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating and migrating as needed). Raises StoreError."""
        db = Database(path)
        await db.open()
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    # -- apps ---------------------------------------------------------------

    async def create_app(self, name: AppName, mode: Mode, config: AppConfig) -> App:
        """Insert a new app. Raises Conflict when the name is taken."""
        now = time.time()
        stored: list[int] = []

        def insert(conn: sqlite3.Connection) -> App:
            if conn.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"an app named '{name}' already exists", hint="choose another name")
            conn.execute(
                "INSERT INTO apps (name, mode, desired, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, mode.value, DesiredState.RUNNING.value, json.dumps(config.to_dict()), now, now),
            )
            stored.append(_insert_event(conn, name, "app.created", f"app {name} created ({mode.value})", {}))
            return app_from_row(conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone())

        app = await self._db.write(insert)
        await self._announce(stored)
        return app

    async def get_app(self, name: str) -> App:
        """The app; raises NotFound."""

        def select(conn: sqlite3.Connection) -> App:
            row = conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise _no_app(name)
            return app_from_row(row)

        return await self._db.read(select)

    async def list_apps(self) -> list[App]:
        return await self._db.read(
            lambda conn: [app_from_row(r) for r in conn.execute("SELECT * FROM apps ORDER BY name")]
        )

    async def update_app(
        self,
        name: str,
        *,
        mode: Mode | None = None,
        desired: DesiredState | None = None,
        config: AppConfig | None = None,
    ) -> App:
        """Change the given fields; raises NotFound."""

        def update(conn: sqlite3.Connection) -> App:
            row = conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise _no_app(name)
            app = app_from_row(row)
            conn.execute(
                "UPDATE apps SET mode = ?, desired = ?, config = ?, updated_at = ? WHERE name = ?",
                (
                    (mode or app.mode).value,
                    (desired or app.desired).value,
                    json.dumps((config or app.config).to_dict()),
                    time.time(),
                    name,
                ),
            )
            return app_from_row(conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone())

        return await self._db.write(update)

    async def set_overrides(self, name: str, overrides: Mapping[str, Any]) -> App:
        """Replace the app's `roost scale` settings; raises NotFound."""

        def update(conn: sqlite3.Connection) -> App:
            changed = conn.execute(
                "UPDATE apps SET overrides = ?, updated_at = ? WHERE name = ?",
                (json.dumps(overrides), time.time(), name),
            )
            if changed.rowcount == 0:
                raise _no_app(name)
            return app_from_row(conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone())

        return await self._db.write(update)

    async def delete_app(self, name: str) -> None:
        """Remove the app with its deployments, traffic and domains; raises NotFound."""

        stored: list[int] = []

        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM apps WHERE name = ?", (name,)).rowcount == 0:
                raise _no_app(name)
            conn.execute("DELETE FROM instances WHERE app = ? AND state IN ('stopped', 'crashed')", (name,))
            stored.append(_insert_event(conn, name, "app.removed", f"app {name} removed", {}))

        await self._db.write(delete)
        await self._announce(stored)

    # -- deployments --------------------------------------------------------

    async def create_deployment(
        self,
        app: AppName,
        deployment: DeploymentId,
        digest: str,
        message: str,
        config: AppConfig,
        sources: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Record a new deployment in `building`, with where its settings came from; raises NotFound for the app."""
        now = time.time()

        def insert(conn: sqlite3.Connection) -> Deployment:
            if conn.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone() is None:
                raise _no_app(app)
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments WHERE app = ?", (app,)).fetchone()[0]
            conn.execute(
                "INSERT INTO deployments (id, app, seq, status, digest, message, config, created_at, sources)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    deployment,
                    app,
                    seq,
                    DeploymentStatus.BUILDING.value,
                    digest,
                    message,
                    json.dumps(config.to_dict()),
                    now,
                    json.dumps(dict(sources or {})),
                ),
            )
            return deployment_from_row(conn.execute("SELECT * FROM deployments WHERE id = ?", (deployment,)).fetchone())

        return await self._db.write(insert)

    async def finish_deployment(
        self,
        deployment: DeploymentId,
        status: DeploymentStatus,
        build_seconds: float,
        error: str = "",
        code_dir: str = "",
        venv_dir: str = "",
    ) -> Deployment:
        """Record the end of a build: ready (with where it lives) or failed (with why)."""

        def update(conn: sqlite3.Connection) -> Deployment:
            conn.execute(
                "UPDATE deployments SET status = ?, build_seconds = ?, error = ?, code_dir = ?, venv_dir = ?"
                " WHERE id = ?",
                (status.value, build_seconds, error, code_dir, venv_dir, deployment),
            )
            row = conn.execute("SELECT * FROM deployments WHERE id = ?", (deployment,)).fetchone()
            if row is None:
                raise NotFound(f"no deployment '{deployment}'", hint="`roost deployments APP` lists them")
            return deployment_from_row(row)

        return await self._db.write(update)

    async def mark_pruned(self, deployment: DeploymentId) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                "UPDATE deployments SET status = 'pruned', code_dir = '', venv_dir = '' WHERE id = ?", (deployment,)
            ).close()
        )

    async def fail_building_deployments(self, reason: str) -> list[Deployment]:
        """Mark every `building` deployment failed (after a daemon restart)."""

        stored: list[int] = []

        def update(conn: sqlite3.Connection) -> list[Deployment]:
            rows = conn.execute("SELECT * FROM deployments WHERE status = 'building'").fetchall()
            conn.execute("UPDATE deployments SET status = 'failed', error = ? WHERE status = 'building'", (reason,))
            for row in rows:
                event = _insert_event(
                    conn,
                    row["app"],
                    "deploy.failed",
                    f"deployment {row['id']} failed: {reason}",
                    {"deployment": row["id"]},
                )
                stored.append(event)
            return [deployment_from_row(r) for r in rows]

        failed = await self._db.write(update)
        await self._announce(stored)
        return failed

    async def get_deployment(self, app: str, deployment: str) -> Deployment:
        def select(conn: sqlite3.Connection) -> Deployment:
            row = conn.execute("SELECT * FROM deployments WHERE id = ? AND app = ?", (deployment, app)).fetchone()
            if row is None:
                raise NotFound(
                    f"app '{app}' has no deployment '{deployment}'",
                    hint=f"`roost deployments {app}` lists them",
                )
            return deployment_from_row(row)

        return await self._db.read(select)

    async def list_deployments(self, app: str | None = None) -> list[Deployment]:
        def select(conn: sqlite3.Connection) -> list[Deployment]:
            if app is None:
                rows = conn.execute("SELECT * FROM deployments ORDER BY app, seq DESC")
            else:
                rows = conn.execute("SELECT * FROM deployments WHERE app = ? ORDER BY seq DESC", (app,))
            return [deployment_from_row(r) for r in rows]

        return await self._db.read(select)

    # -- traffic ------------------------------------------------------------

    async def set_traffic(self, app: AppName, entries: list[TrafficEntry], kind: str, message: str) -> None:
        """Replace the app's traffic in one transaction and record the release."""
        now = time.time()
        stored: list[int] = []

        def replace(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM traffic WHERE app = ?", (app,))
            conn.executemany(
                "INSERT INTO traffic (app, deployment, weight) VALUES (?, ?, ?)",
                [(app, e.deployment, e.weight) for e in entries],
            )
            production = Traffic.of(entries).production
            if production is not None:
                conn.execute("INSERT INTO releases (app, deployment, at) VALUES (?, ?, ?)", (app, production, now))
            traffic = {e.deployment: e.weight for e in entries}
            stored.append(_insert_event(conn, app, kind, message, {"traffic": traffic}))

        await self._db.write(replace)
        await self._announce(stored)

    async def get_traffic(self, app: str) -> list[TrafficEntry]:
        return await self._db.read(
            lambda conn: [
                TrafficEntry(DeploymentId(r["deployment"]), r["weight"])
                for r in conn.execute("SELECT * FROM traffic WHERE app = ? ORDER BY weight DESC, deployment", (app,))
            ]
        )

    async def all_traffic(self) -> dict[AppName, list[TrafficEntry]]:
        def select(conn: sqlite3.Connection) -> dict[AppName, list[TrafficEntry]]:
            result: dict[AppName, list[TrafficEntry]] = {}
            for row in conn.execute("SELECT * FROM traffic ORDER BY app, weight DESC, deployment"):
                result.setdefault(AppName(row["app"]), []).append(
                    TrafficEntry(DeploymentId(row["deployment"]), row["weight"])
                )
            return result

        return await self._db.read(select)

    async def release_history(self, app: str) -> list[DeploymentId]:
        """Deployments that held the most traffic, newest first (for rollback)."""
        return await self._db.read(
            lambda conn: [
                DeploymentId(r["deployment"])
                for r in conn.execute("SELECT deployment FROM releases WHERE app = ? ORDER BY id DESC", (app,))
            ]
        )

    # -- events -------------------------------------------------------------

    async def add_event(self, app: str | None, kind: str, message: str, data: dict[str, Any] | None = None) -> Event:
        def insert(conn: sqlite3.Connection) -> Event:
            event_id = _insert_event(conn, app, kind, message, data or {})
            return event_from_row(conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone())

        event = await self._db.write(insert)
        if self.on_event is not None:
            self.on_event(event)
        return event

    async def _announce(self, ids: list[int]) -> None:
        """Tell `on_event` of events a transaction stored beside its own change (add_event tells it itself)."""
        if self.on_event is None or not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = await self._db.read(
            lambda conn: conn.execute(f"SELECT * FROM events WHERE id IN ({marks}) ORDER BY id", ids).fetchall()  # noqa: S608 - only placeholders
        )
        for row in rows:
            self.on_event(event_from_row(row))

    async def list_events(self, app: str | None = None, after: int = 0, limit: int = 50) -> list[Event]:
        """Events after id `after`, oldest first; the newest `limit` when `after` is 0."""

        def select(conn: sqlite3.Connection) -> list[Event]:
            where, params = ("WHERE id > ?", [after]) if app is None else ("WHERE app = ? AND id > ?", [app, after])
            order = "ASC" if after else "DESC"
            rows = conn.execute(f"SELECT * FROM events {where} ORDER BY id {order} LIMIT ?", [*params, limit])  # noqa: S608
            events = [event_from_row(r) for r in rows]
            return events if after else list(reversed(events))

        return await self._db.read(select)

    async def list_events_of_kind(self, app: str, kind: str, limit: int = 50) -> list[Event]:
        """The newest `limit` events of one `kind` for `app`, oldest first (`build.isolation` for `roost info`)."""

        def select(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT * FROM events WHERE app = ? AND kind = ? ORDER BY id DESC LIMIT ?", (app, kind, limit)
            )
            return list(reversed([event_from_row(r) for r in rows]))

        return await self._db.read(select)


def _insert_event(conn: sqlite3.Connection, app: str | None, kind: str, message: str, data: dict[str, Any]) -> int:
    cursor = conn.execute(
        "INSERT INTO events (at, app, kind, message, data) VALUES (?, ?, ?, ?, ?)",
        (time.time(), app, kind, message, json.dumps(data)),
    )
    return int(cursor.lastrowid or 0)

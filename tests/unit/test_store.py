import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from roost.errors import Conflict, NoSpace, NotFound, StoreError
from roost.model import (
    Alias,
    AppConfig,
    AppName,
    CertSource,
    CertState,
    DeploymentId,
    DeploymentStatus,
    DesiredState,
    DomainCert,
    Mode,
    Quota,
    TrafficEntry,
)
from roost.store import AuditQuery, Store
from roost.store.migrations import MIGRATIONS


@pytest.fixture
async def store(tmp_path: Path):
    opened = await Store.open(tmp_path / "roost.db")
    try:
        yield opened
    finally:
        await opened.close()


async def test_wal_and_schema_version(tmp_path: Path, store: Store) -> None:
    conn = sqlite3.connect(tmp_path / "roost.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"apps", "deployments", "traffic", "instances", "events", "users", "tokens"} <= tables
    conn.close()


async def test_create_get_list_delete(store: Store) -> None:
    await store.create_app(AppName("beta"), Mode.SERVICE, AppConfig(mode=Mode.SERVICE))
    await store.create_app(AppName("alpha"), Mode.FUNCTION, AppConfig())
    assert [a.name for a in await store.list_apps()] == ["alpha", "beta"]
    beta = await store.get_app("beta")
    assert beta.mode is Mode.SERVICE
    assert beta.config.mode is Mode.SERVICE
    await store.delete_app("alpha")
    with pytest.raises(NotFound, match="alpha"):
        await store.get_app("alpha")
    with pytest.raises(NotFound):
        await store.delete_app("alpha")


async def test_duplicate_name_conflicts_and_changes_nothing(store: Store) -> None:
    await store.create_app(AppName("hello"), Mode.FUNCTION, AppConfig())
    events_before = await store.list_events("hello")
    with pytest.raises(Conflict, match="already exists"):
        await store.create_app(AppName("hello"), Mode.SERVICE, AppConfig())
    assert (await store.get_app("hello")).mode is Mode.FUNCTION
    assert await store.list_events("hello") == events_before


async def test_update_app(store: Store) -> None:
    await store.create_app(AppName("hello"), Mode.FUNCTION, AppConfig())
    updated = await store.update_app("hello", desired=DesiredState.STOPPED)
    assert updated.desired is DesiredState.STOPPED
    assert updated.mode is Mode.FUNCTION


async def test_failed_write_leaves_previous_state(store: Store) -> None:
    await store.create_app(AppName("hello"), Mode.FUNCTION, AppConfig())

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM apps WHERE name = 'hello'")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        await store._db.write(half_then_fail)
    assert (await store.get_app("hello")).name == "hello"


async def test_deployments_traffic_and_cascade(store: Store) -> None:
    app = AppName("hello")
    await store.create_app(app, Mode.FUNCTION, AppConfig())
    first = await store.create_deployment(app, DeploymentId("aaaaaaaa"), "sha256:1", "first", AppConfig())
    second = await store.create_deployment(app, DeploymentId("bbbbbbbb"), "sha256:2", "second", AppConfig())
    assert first.status is DeploymentStatus.BUILDING
    await store.finish_deployment(first.id, DeploymentStatus.READY, 1.5)
    await store.set_traffic(app, [TrafficEntry(first.id, 100)], "promote", "promoted")
    await store.set_traffic(app, [TrafficEntry(first.id, 90), TrafficEntry(second.id, 10)], "traffic", "split")
    assert await store.get_traffic(app) == [TrafficEntry(first.id, 90), TrafficEntry(second.id, 10)]
    assert [d.id for d in await store.list_deployments(app)] == [second.id, first.id]
    failed = await store.fail_building_deployments("the daemon stopped during the build")
    assert [d.id for d in failed] == [second.id]
    assert (await store.get_deployment(app, second.id)).status is DeploymentStatus.FAILED
    await store.delete_app(app)
    assert await store.list_deployments(app) == []
    assert await store.get_traffic(app) == []


async def test_events_order_and_paging(store: Store) -> None:
    for index in range(5):
        await store.add_event("x", "test", f"event {index}")
    latest = await store.list_events("x", limit=3)
    assert [e.message for e in latest] == ["event 2", "event 3", "event 4"]
    after = await store.list_events("x", after=latest[0].id)
    assert [e.message for e in after] == ["event 3", "event 4"]


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    first = await Store.open(tmp_path / "roost.db")
    await first.create_app(AppName("kept"), Mode.FUNCTION, AppConfig(entrypoint="main:app"))
    await first.close()
    second = await Store.open(tmp_path / "roost.db")
    try:
        assert (await second.get_app("kept")).config.entrypoint == "main:app"
    finally:
        await second.close()


async def test_deployments_keep_their_setting_sources(store: Store) -> None:
    app = AppName("hello")
    await store.create_app(app, Mode.SERVICE, AppConfig(mode=Mode.SERVICE))
    recorded = {"mode": "roost push --mode", "entrypoint": "roost.toml", "scale.max": "roost.toml"}
    created = await store.create_deployment(app, DeploymentId("aaaaaaaa"), "sha256:1", "", AppConfig(), recorded)
    plain = await store.create_deployment(app, DeploymentId("bbbbbbbb"), "sha256:2", "", AppConfig())
    assert created.sources == recorded
    assert (await store.get_deployment(app, created.id)).sources == recorded
    assert (await store.get_deployment(app, plain.id)).sources == {}


def database_before(path: Path, marker: str) -> sqlite3.Connection:
    """A database at the schema just before the migration that contains `marker`, holding the
    app "old" (entrypoint main:app), for upgrade tests."""
    added = next(i for i, script in enumerate(MIGRATIONS) if marker in script)
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:added]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {added}")
    conn.execute(
        "INSERT INTO apps (name, mode, desired, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("old", "function", "running", OLD_CONFIG, 1.0, 1.0),
    )
    return conn


OLD_CONFIG = json.dumps(AppConfig(entrypoint="main:app").to_dict())


async def test_deployments_from_before_sources_upgrade_with_none(tmp_path: Path) -> None:
    conn = database_before(tmp_path / "roost.db", "ADD COLUMN sources")
    conn.execute(
        "INSERT INTO deployments (id, app, seq, status, digest, config, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("aaaaaaaa", "old", 1, "ready", "sha256:1", OLD_CONFIG, 1.0),
    )
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path / "roost.db")
    try:
        (old,) = await store.list_deployments("old")
        assert (old.id, old.config.entrypoint, old.sources) == ("aaaaaaaa", "main:app", {})
        new = await store.create_deployment(
            AppName("old"), DeploymentId("bbbbbbbb"), "sha256:2", "", AppConfig(), {"mode": "roost.toml"}
        )
        assert (await store.get_deployment("old", new.id)).sources == {"mode": "roost.toml"}
    finally:
        await store.close()
    upgraded = sqlite3.connect(tmp_path / "roost.db")
    assert upgraded.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    upgraded.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "roost.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this Roost"):
        await Store.open(tmp_path / "roost.db")


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from roost.model import Alias, AppConfig, AppName, Mode
    from roost.store import Store

    async def main():
        store = await Store.open(Path(sys.argv[1]))
        index = 0
        while True:
            await store.create_app(AppName(f"app{index}"), Mode.FUNCTION, AppConfig())
            print(index, flush=True)
            index += 1

    asyncio.run(main())
    """
)


async def test_sigkill_mid_writes_keeps_every_acknowledged_app(tmp_path: Path) -> None:
    db = tmp_path / "roost.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 30:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert acknowledged >= 30
    store = await Store.open(db)
    try:
        names = {a.name for a in await store.list_apps()}
        assert {f"app{i}" for i in range(acknowledged + 1)} <= names
        events = await store.list_events(limit=1000)
        assert len(events) == len(names)  # each app and its event landed together
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


async def test_a_full_database_is_no_space_not_a_store_error(store: Store) -> None:
    pages = await store._db.read(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    await store._db.read(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 2}"))
    with pytest.raises(NoSpace, match="no space left on the device holding ROOST_HOME"):
        for n in range(100):
            await store.add_event(None, "filler", "x" * 4096 + str(n), {})
    await store._db.read(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 1000}"))
    await store.add_event(None, "after", "room again: no transaction was left open", {})
    assert (await store.list_events(limit=1))[0].kind == "after"


async def test_quotas_are_kept_replaced_and_removed(store: Store) -> None:
    await store.quotas.set_quota(Quota("shop-*", instances=4, memory=2 << 30))
    await store.quotas.set_quota(Quota("blog", instances=1))
    await store.quotas.set_quota(Quota("shop-*", instances=6))
    assert await store.quotas.list_quotas() == [Quota("blog", 1, None), Quota("shop-*", 6, None)]
    await store.quotas.remove_quota("blog")
    assert await store.quotas.list_quotas() == [Quota("shop-*", 6, None)]
    with pytest.raises(NotFound):
        await store.quotas.remove_quota("blog")


async def test_the_audit_trail_is_filtered_in_the_query(store: Store) -> None:
    calls = [
        ("shop", "ci", "token", "10.0.0.1", "POST", "/v1/apps/shop/deployments", "POST", 201),
        ("shop", "alice", "password", "10.0.0.2", "DELETE", "/v1/apps/shop/env/KEY", "DELETE", 204),
        ("blog", "ci", "token", "10.0.0.1", "PATCH", "/v1/apps/blog/scale", "PATCH", 200),
        (None, "local", "socket", "unix-socket", "POST", "/v1/tokens", "POST", 201),
        ("shop", "alice", "password", "10.0.0.2", "GET", "/v1/apps/shop/secrets", "secret.reveal", 200),
    ]
    for call in calls:
        await store.audit.add_audit(*call)
    shop = await store.audit.list_audit(AuditQuery(app="shop"))
    assert [(e.user, e.method, e.address) for e in shop] == [
        ("ci", "POST", "10.0.0.1"),
        ("alice", "DELETE", "10.0.0.2"),
        ("alice", "GET", "10.0.0.2"),
    ]
    assert [e.app for e in await store.audit.list_audit(AuditQuery(user="ci"))] == ["shop", "blog"]
    assert [e.path for e in await store.audit.list_audit(AuditQuery(action="delete"))] == ["/v1/apps/shop/env/KEY"]
    assert [e.app for e in await store.audit.list_audit(AuditQuery(action="secret.reveal"))] == ["shop"]
    assert [e.user for e in await store.audit.list_audit(AuditQuery(limit=2))] == [
        "local",
        "alice",
    ]  # newest, oldest first
    assert await store.audit.list_audit(AuditQuery(since=shop[-1].at + 3600)) == []
    assert len(await store.audit.list_audit(AuditQuery(since=shop[0].at))) == 5


async def test_aliases_move_list_remove_and_go_with_their_app(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "roost.db")
    app = AppName("shop")
    await store.create_app(app, Mode.FUNCTION, AppConfig())
    first = await store.create_deployment(app, DeploymentId("aaaaaaaa"), "sha256:1", "first", AppConfig())
    second = await store.create_deployment(app, DeploymentId("bbbbbbbb"), "sha256:2", "second", AppConfig())
    await store.aliases.point(app, "feature-x", first.id)
    await store.aliases.point(app, "main", first.id)
    moved = await store.aliases.point(app, "feature-x", second.id)
    assert moved == Alias(app, "feature-x", second.id, moved.updated_at)
    assert [(a.name, a.deployment) for a in await store.aliases.of_app(app)] == [
        ("feature-x", second.id),
        ("main", first.id),
    ]
    assert await store.aliases.every() == {app: {"feature-x": second.id, "main": first.id}}
    late = await store.aliases.point(app, "feature-x", first.id)  # an older push whose build ended last
    assert late.deployment == second.id
    await store.aliases.remove(app, "main")
    with pytest.raises(NotFound, match="no alias 'main'"):
        await store.aliases.remove(app, "main")
    await store.close()
    reopened = await Store.open(tmp_path / "roost.db")
    try:
        assert (await reopened.aliases.get(app, "feature-x")).deployment == second.id  # kept across a restart
        await reopened.delete_app(app)
        assert await reopened.aliases.every() == {}
    finally:
        await reopened.close()


async def test_domains_survive_the_upgrade_that_adds_certificates_and_lets_a_domain_have_no_app(
    tmp_path: Path,
) -> None:
    conn = database_before(tmp_path / "roost.db", "CREATE TABLE certificates")
    conn.execute("INSERT INTO domains (host, app) VALUES ('shop.example.com', 'old')")
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path / "roost.db")
    try:
        cert = await store.certificates.get("shop.example.com")
        assert cert is not None
        assert (cert.app, cert.source) == ("old", None)  # a domain from before: no certificate yet
        await store.certificates.add(DomainCert("api.example.com", None, CertSource.ACME, CertState.PENDING))
        await store.certificates.add(DomainCert("www.example.com", AppName("old"), CertSource.ACME, CertState.PENDING))
        routed = {"shop.example.com": "old", "www.example.com": "old"}
        assert await store.domains.list_domains() == routed  # the API's name routes nowhere
        with pytest.raises(Conflict, match="admin API"):
            await store.domains.add_domain("api.example.com", "old")
        await store.delete_app("old")
        assert [c.host for c in await store.certificates.list()] == ["api.example.com"]  # cascade still holds
    finally:
        await store.close()

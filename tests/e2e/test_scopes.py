"""Scoped credentials end to end: deployers and viewers reach only their apps, over real HTTP and
the real CLI; refusals say which role they needed; secrets and reveals; credentials made before
roles keep working as admins across restarts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from roost.control.access import hash_token
from roost.store.migrations import MIGRATIONS
from tests.e2e.apps import pushed, write_app
from tests.e2e.harness import Daemon, run_cli, running

SECRET = "s3cret-value-of-blog"
PASSWORD = "alice's long password"
HANDLER = 'def handler(request):\n    return "ok"\n'


def make_app(root: Path, name: str) -> Path:
    toml = f'name = "{name}"\nentrypoint = "handler:handler"\n'
    return write_app(root, name, {"roost.toml": toml, "handler.py": HANDLER})


def token(daemon: Daemon, name: str, *args: str) -> str:
    """A token made over the Unix socket (its owner is admin)."""
    created = daemon.cli("token", "create", name, *args)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def as_token(daemon: Daemon, secret: str) -> httpx.Client:
    return httpx.Client(base_url=daemon.api_url, headers={"Authorization": f"Bearer {secret}"}, timeout=60)


def audit(daemon: Daemon, path: str, *args: str) -> list[dict[str, Any]]:
    entries = json.loads(daemon.cli("audit", "--json", "-n", "200", *args).stdout)
    return [e for e in entries if e["path"].startswith(path)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon with two apps, shop-a and blog, pushed by the socket's owner; blog has a secret."""
    root = tmp_path_factory.mktemp("scopes")
    home = root / "home"
    home.mkdir()
    with running(home) as started:
        pushed(started, make_app(root, "blog"))
        assert started.cli("env", "blog", "set", f"API_KEY={SECRET}").returncode == 0
        yield started


def test_a_deployer_pushes_its_apps_and_is_refused_the_others(daemon: Daemon, tmp_path: Path) -> None:
    ci = token(daemon, "ci-shop", "--role", "deployer", "--app", "shop-*")
    push = daemon.cli("--token", ci, "push", str(make_app(tmp_path, "shop-a")), url=True, timeout=600)
    assert push.returncode == 0, push.stderr
    refused = daemon.cli("--token", ci, "push", str(make_app(tmp_path, "blog")), url=True, timeout=600)
    assert refused.returncode == 1
    assert 'needs role deployer on app "blog"; token "ci-shop" has deployer on shop-*' in refused.stderr
    assert "roost token create NAME --role deployer --app blog" in refused.stderr  # the hint
    with as_token(daemon, ci) as http:
        answer = http.post("/v1/apps/blog/rollback", json={})
        assert answer.status_code == 403
        assert answer.json()["error"] == "forbidden"
        assert [a["name"] for a in http.get("/v1/apps").json()] == ["shop-a"]  # blog is not listed
        assert http.post("/v1/apps/shop-a/restart").status_code == 204
        assert http.post("/v1/apps", json={"name": "shop-b"}).status_code == 201  # its pattern: it may create
        created = http.post("/v1/apps", json={"name": "blog-2"})
        assert created.status_code == 403
        assert created.json()["message"].startswith('needs role deployer on app "blog-2"')
        assert http.get("/v1/tokens").status_code == 403  # admin-only, even with a deployer grant
        assert http.delete("/v1/apps/shop-a").status_code == 403
        events = http.get("/v1/events", params={"limit": 1000}).json()
        assert events and {e["app"] for e in events} == {"shop-a", "shop-b"}  # not blog


def test_a_viewer_reads_logs_and_info_and_can_neither_reveal_nor_push(daemon: Daemon, tmp_path: Path) -> None:
    viewer = token(daemon, "watcher", "--role", "viewer", "--app", "blog")
    logs = daemon.cli("--token", viewer, "logs", "blog", "-n", "5", url=True)
    assert logs.returncode == 0, logs.stderr
    info = daemon.cli("--token", viewer, "info", "blog", "--json", url=True)
    assert info.returncode == 0, info.stderr
    shown = json.loads(info.stdout)
    assert shown["app"]["name"] == "blog"
    assert shown["events"]
    refused = daemon.cli("--token", viewer, "audit", url=True)  # the audit trail is for admins
    assert refused.returncode == 1
    assert "needs role admin" in refused.stderr
    masked = daemon.cli("--token", viewer, "env", "blog", "--json", url=True)
    assert masked.returncode == 0, masked.stderr
    assert "API_KEY" in masked.stdout and SECRET not in masked.stdout
    reveal = daemon.cli("--token", viewer, "env", "blog", "--reveal", url=True)
    assert reveal.returncode == 1
    assert 'needs role deployer on app "blog"; token "watcher" has viewer on blog' in reveal.stderr
    assert SECRET not in reveal.stdout + reveal.stderr
    push = daemon.cli("--token", viewer, "push", str(make_app(tmp_path, "blog")), url=True, timeout=600)
    assert push.returncode == 1
    assert 'needs role deployer on app "blog"; token "watcher" has viewer on blog' in push.stderr
    with as_token(daemon, viewer) as http:
        assert http.post("/v1/apps/blog/env", json={"values": {"X": "1"}}).status_code == 403
        assert http.get("/v1/apps/shop-a").status_code == 403
        assert http.get("/metrics").status_code == 403


def test_every_reveal_is_audited_and_only_deployers_and_admins_see_secrets(daemon: Daemon) -> None:
    deployer = token(daemon, "blog-deployer", "--role", "deployer", "--app", "blog")
    viewer = token(daemon, "blog-viewer", "--role", "viewer", "--app", "blog")
    with as_token(daemon, deployer) as http:
        shown = http.get("/v1/apps/blog/env", params={"reveal": "true"})
        assert shown.status_code == 200
        assert {e["name"]: e["value"] for e in shown.json()}["API_KEY"] == SECRET
    with as_token(daemon, viewer) as http:
        assert http.get("/v1/apps/blog/env", params={"reveal": "1"}).status_code == 403
        assert http.get("/v1/apps/blog/env").status_code == 200  # masked: not a reveal, not audited
    reveals = audit(daemon, "/v1/apps/blog/env?")
    assert [(r["user"], r["status"]) for r in reveals[-2:]] == [("blog-deployer", 200), ("blog-viewer", 403)]
    assert all(r["method"] == "GET" and "reveal=" in r["path"] for r in reveals)
    assert any(
        "reveal=true" in e["path"] for e in audit(daemon, "/v1/apps/blog/env?", "--app", "blog")
    )  # under the app


def test_users_get_roles_from_the_cli_and_their_login_tokens_follow_them(daemon: Daemon) -> None:
    made = run_cli(daemon.home, "password", "alice", "--stdin", "--role", "viewer", "--app", "blog", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert daemon.cli("user", "grant", "alice", "deployer", "shop-a").returncode == 0
    listed = json.loads(daemon.cli("user", "list", "--json").stdout)
    assert {u["name"]: u["access"] for u in listed}["alice"] == "viewer on blog, deployer on shop-a"
    alice = httpx.Client(base_url=daemon.api_url, auth=("alice", PASSWORD), timeout=60)
    with alice:
        assert alice.get("/v1/apps/blog").status_code == 200
        refused = alice.post("/v1/apps/blog/restart")
        assert refused.status_code == 403
        assert refused.json()["message"] == (
            'needs role deployer on app "blog"; user "alice" has viewer on blog, deployer on shop-a'
        )
        assert refused.json()["hint"].endswith("roost user grant alice deployer blog")
        assert alice.post("/v1/tokens", json={"name": "alice-made"}).status_code == 403  # only admins choose
    login = daemon.cli("login", daemon.api_url, "--user", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    assert daemon.cli("list", url=True).returncode == 0  # the saved token
    assert "blog" in daemon.cli("list", url=True).stdout
    assert daemon.cli("user", "revoke", "alice", "blog").returncode == 0
    after = daemon.cli("info", "blog", url=True)
    assert after.returncode == 1
    assert 'has deployer on shop-a"' not in after.stderr and "has deployer on shop-a" in after.stderr  # follows alice
    tokens = json.loads(daemon.cli("token", "list", "--json").stdout)
    assert any(t["user"] == "alice" and t["access"] == "as user alice" for t in tokens)
    assert daemon.cli("logout", daemon.api_url).returncode == 0


def old_home(home: Path, secret: str) -> None:
    """A home as Roost left it before roles: the store at schema 5 with a token, a `user:hash` line."""
    conn = sqlite3.connect(home / "roost.db")
    try:
        for script in MIGRATIONS[:5]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 5")
        conn.execute(
            "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)", ("old-ci", hash_token(secret), 1.0)
        )
        conn.commit()
    finally:
        conn.close()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    (home / "passwords").write_text(f"root:{hashed}\n")
    (home / "passwords").chmod(0o600)


def test_credentials_made_before_roles_stay_admins_across_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    secret = "roost_" + "x" * 43
    old_home(home, secret)
    for _ in range(2):  # the upgrade, then a plain restart
        with running(home) as daemon, as_token(daemon, secret) as http:
            assert http.get("/v1/tokens").status_code == 200  # admin-only
            assert http.post("/v1/apps", json={"name": "anything"}).status_code in (201, 409)
            with httpx.Client(base_url=daemon.api_url, auth=("root", PASSWORD), timeout=60) as user:
                assert user.post("/v1/gc").status_code == 200
            tokens = json.loads(daemon.cli("token", "list", "--json").stdout)
            assert [(t["name"], t["admin"], t["access"]) for t in tokens] == [("old-ci", True, "admin")]
    assert "root:" in (home / "passwords").read_text()

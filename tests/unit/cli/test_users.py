"""`roost password --role` and `roost user`: the real CLI on a password file, no daemon needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from roost.grants import ADMIN, Grants, Role
from roost.passwords import PasswordFile


def roost(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    env |= {"ROOST_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "roost", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_grant_list_revoke_round_trip(tmp_path: Path) -> None:
    assert roost(tmp_path, "password", "ops", "--stdin", stdin="long enough password\n").returncode == 0
    made = roost(tmp_path, "password", "alice", "--stdin", "--role", "viewer", "--app", "blog", stdin="alice pw 123\n")
    assert made.returncode == 0, made.stderr
    assert "(viewer on blog)" in made.stdout
    granted = roost(tmp_path, "user", "grant", "alice", "deployer", "shop-*", "shop")
    assert granted.returncode == 0, granted.stderr
    assert "alice now has viewer on blog, deployer on shop-*, deployer on shop" in granted.stdout
    listed = {u["name"]: u for u in json.loads(roost(tmp_path, "user", "list", "--json").stdout)}
    assert listed["ops"]["admin"] is True
    assert listed["alice"]["grants"][0] == {"role": "viewer", "app": "blog"}
    assert roost(tmp_path, "user", "revoke", "alice", "blog", "shop").returncode == 0
    assert PasswordFile(tmp_path / "passwords").grants("alice") == Grants.of(Role.DEPLOYER, ["shop-*"])
    assert PasswordFile(tmp_path / "passwords").verify("alice", "alice pw 123")


def test_mistakes_are_refused_with_a_hint_and_change_nothing(tmp_path: Path) -> None:
    assert roost(tmp_path, "password", "ops", "--stdin", stdin="long enough password\n").returncode == 0
    before = (tmp_path / "passwords").read_text()
    cases = [
        (("user", "grant", "ops", "admin", "shop"), "admin is daemon-wide"),
        (("user", "grant", "ops", "viewer"), "viewer needs at least one app"),
        (("user", "grant", "ops", "viewer", "Shop/x"), "not an app name or pattern"),
        (("user", "grant", "nobody", "viewer", "blog"), "no user named 'nobody'"),
        (("user", "revoke", "ops", "blog"), "ops is an admin, of every app"),
        (("password", "bob", "--app", "blog", "--stdin"), "admin is daemon-wide"),
    ]
    for args, message in cases:
        result = roost(tmp_path, *args, stdin="long enough password\n")
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "hint:" in result.stderr, args
    assert (tmp_path / "passwords").read_text() == before
    assert PasswordFile(tmp_path / "passwords").grants("ops") == ADMIN

"""The cluster's token file: made owner-only on the head, refused on a node when others can read it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from roost.cluster.cluster_token import check_token_file, ensure_token, read_token
from roost.errors import ConfigError, UsageError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_head_makes_an_owner_only_token_once(tmp_path: Path) -> None:
    path = ensure_token(tmp_path / "cluster" / "token")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    token = read_token(path)
    assert len(token) == 64
    assert read_token(ensure_token(path)) == token  # kept: the nodes hold copies


def test_a_token_left_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("ab" * 32)
    path.chmod(0o644)  # as `ray get-auth-token --generate` leaves its own
    ensure_token(path)
    assert mode(path) == 0o600 and read_token(path) == "ab" * 32


def test_a_node_refuses_a_token_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("cd" * 32)
    path.chmod(0o640)
    with pytest.raises(UsageError) as caught:
        check_token_file(path)
    assert "0640" in caught.value.message and f"chmod 600 {path}" in caught.value.hint
    path.chmod(0o600)
    assert check_token_file(path) == path


def test_a_missing_or_damaged_token_says_what_to_copy(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as missing:
        check_token_file(tmp_path / "none")
    assert "HOME/cluster/token" in missing.value.hint
    damaged = tmp_path / "token"
    damaged.write_text("not a token")
    damaged.chmod(0o600)
    with pytest.raises(ConfigError):
        check_token_file(damaged)

import stat
from pathlib import Path

import pytest

from roost.errors import NotFound, UsageError
from roost.passwords import PasswordFile


def test_set_verify_delete(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    store.set("admin", "s3cret-password")
    assert store.verify("admin", "s3cret-password")
    assert not store.verify("admin", "wrong-password")
    assert not store.verify("ghost", "s3cret-password")
    assert stat.S_IMODE((tmp_path / "passwords").stat().st_mode) == 0o600
    assert "s3cret" not in (tmp_path / "passwords").read_text()
    store.delete("admin")
    assert not store.has_users()
    with pytest.raises(NotFound):
        store.delete("admin")


def test_refuses_what_bcrypt_would_truncate(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    with pytest.raises(UsageError, match="72"):
        store.set("admin", "x" * 73)
    with pytest.raises(UsageError, match="too short"):
        store.set("admin", "short")
    with pytest.raises(UsageError, match="not a valid user name"):
        store.set("bad:name", "long-enough-password")


def test_long_candidate_never_matches_a_truncated_hash(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    store.set("admin", "y" * 72)
    assert store.verify("admin", "y" * 72)
    assert not store.verify("admin", "y" * 72 + "extra")


def test_replacing_keeps_other_users(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    store.set("a-user", "first-password")
    store.set("b-user", "second-password")
    store.set("a-user", "third-password")
    assert set(store.load()) == {"a-user", "b-user"}
    assert store.verify("a-user", "third-password")

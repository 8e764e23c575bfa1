import stat
from pathlib import Path

import bcrypt
import pytest

from roost.errors import NotFound, UsageError
from roost.grants import ADMIN, NOTHING, Grants, Role
from roost.passwords import BCRYPT_ROUNDS, PasswordFile


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


def test_an_unknown_user_costs_one_real_bcrypt_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing: a spy shows that an unknown user is checked by bcrypt, against a hash of full cost."""
    store = PasswordFile(tmp_path / "passwords")
    store.set("admin", "s3cret-password")
    seen: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    assert not store.verify("ghost", "s3cret-password")
    assert len(seen) == 1
    assert seen[0].startswith(f"$2b${BCRYPT_ROUNDS:02d}$".encode())
    assert not store.verify("admin", "x" * 80)  # over the limit: also one full-cost check
    assert len(seen) == 2
    assert seen[1].startswith(f"$2b${BCRYPT_ROUNDS:02d}$".encode())


def test_version_changes_with_every_write(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    assert store.version() is None
    store.set("admin", "first-password")
    first = store.version()
    store.set("admin", "first-password")  # same user, same password: a new salt, a new file
    second = store.version()
    assert first is not None
    assert second is not None
    assert first != second


def test_a_line_from_before_roles_is_an_admin_and_grants_survive_a_new_password(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    store.set("old", "old-password")
    hashed = store.load()["old"].decode()
    (tmp_path / "passwords").write_text(f"old:{hashed}\n")  # the format before roles
    assert store.grants("old") == ADMIN
    assert store.verify("old", "old-password")
    store.set("alice", "alice-password", Grants.of(Role.VIEWER, ["blog"]))
    store.set_grants("old", Grants.of(Role.DEPLOYER, ["shop-*"]))
    store.set("old", "new-password")  # a new password keeps the grants
    assert store.grants("old") == Grants.of(Role.DEPLOYER, ["shop-*"])
    assert store.grants("alice") == Grants.of(Role.VIEWER, ["blog"])
    assert store.grants("nobody") is None
    assert store.verify("old", "new-password")


def test_a_grants_field_this_version_cannot_read_gives_no_rights(tmp_path: Path) -> None:
    store = PasswordFile(tmp_path / "passwords")
    store.set("alice", "alice-password")
    hashed = store.load()["alice"].decode()
    (tmp_path / "passwords").write_text(f"alice:{hashed}:owner=everything\n")
    assert store.grants("alice") == NOTHING

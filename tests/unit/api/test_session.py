"""The dashboard's sessions and one-time links: expiry, logout, single use, bounds, CSRF."""

from __future__ import annotations

import pytest

from roost.api import session as session_module
from roost.api.session import (
    LINK_SECONDS,
    SESSION_IDLE_SECONDS,
    SESSION_MAX_SECONDS,
    Login,
    SessionBook,
)


def test_a_session_lives_while_used_and_ends_idle_or_old() -> None:
    book = SessionBook()
    sid, session = book.open(Login("password", "alice"), 1000.0)
    assert book.get(sid, 1000.0 + SESSION_IDLE_SECONDS - 1) is session
    assert book.get(sid, 1000.0 + 2 * SESSION_IDLE_SECONDS - 2) is session  # each use restarts the idle clock
    assert book.get(sid, 1000.0 + 4 * SESSION_IDLE_SECONDS) is None  # idle too long
    assert book.get(sid, 1000.0) is None  # and forgotten


def test_a_session_ends_at_its_maximum_age_however_busy() -> None:
    book = SessionBook()
    sid, _ = book.open(Login("token", "ci", "secret"), 0.0)
    now = 0.0
    while now + SESSION_IDLE_SECONDS / 2 < SESSION_MAX_SECONDS:
        now += SESSION_IDLE_SECONDS / 2
        assert book.get(sid, now) is not None
    assert book.get(sid, SESSION_MAX_SECONDS) is None


def test_logout_makes_the_id_worthless_and_ids_are_not_guessable() -> None:
    book = SessionBook()
    sid, session = book.open(Login("password", "alice"), 0.0)
    other, _ = book.open(Login("password", "alice"), 0.0)
    assert sid != other and len(sid) >= 40 and session.csrf not in (sid, other)
    book.close(sid)
    assert book.get(sid, 1.0) is None
    assert book.get(other, 1.0) is not None
    assert book.get("", 1.0) is None


def test_the_csrf_token_must_match_exactly() -> None:
    _, session = SessionBook().open(Login("password", "alice"), 0.0)
    assert session.is_csrf(session.csrf)
    assert not session.is_csrf("")
    assert not session.is_csrf(session.csrf[:-1])


def test_a_link_works_once_and_only_while_fresh() -> None:
    book = SessionBook()
    secret = book.issue_link(0.0)
    assert book.redeem_link(secret, LINK_SECONDS - 1)
    assert not book.redeem_link(secret, LINK_SECONDS - 1)  # spent
    late = book.issue_link(0.0)
    assert not book.redeem_link(late, LINK_SECONDS + 1)
    assert not book.redeem_link("made-up", 1.0)


def test_the_book_forgets_the_oldest_session_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "LIMIT_SESSIONS", 3)
    book = SessionBook()
    first, _ = book.open(Login("password", "a"), 0.0)
    later = [book.open(Login("password", "b"), 0.0)[0] for _ in range(3)]
    assert book.get(first, 1.0) is None
    assert all(book.get(sid, 1.0) is not None for sid in later)

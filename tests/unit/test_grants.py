"""Roles and app patterns: which grant reaches which app, and the stored text form."""

from __future__ import annotations

import pytest

from roost.errors import UsageError
from roost.grants import ADMIN, NOTHING, Grants, Role, matches


@pytest.mark.parametrize(
    ("pattern", "app", "expected"),
    [
        ("shop", "shop", True),
        ("shop", "shop-a", False),
        ("shop-*", "shop-a", True),
        ("shop-*", "shop-", True),
        ("shop-*", "shop", False),
        ("shop-*", "blog", False),
        ("shop-*", "my-shop-a", False),
        ("*", "anything", True),
        ("shop-?", "shop-a", True),
        ("shop-?", "shop-ab", False),
        ("shop-[ab]", "shop-b", True),
        ("shop-[ab]", "shop-c", False),
        ("shop-[!ab]", "shop-c", True),
        ("*-staging", "shop-staging", True),
        ("*-staging", "shop-prod", False),
    ],
)
def test_patterns_match_whole_app_names(pattern: str, app: str, expected: bool) -> None:
    assert matches(pattern, app) is expected


@pytest.mark.parametrize(
    ("grants", "role", "app", "expected"),
    [
        (ADMIN, Role.ADMIN, "blog", True),
        (ADMIN, Role.DEPLOYER, "blog", True),
        (NOTHING, Role.VIEWER, "blog", False),
        (Grants.of(Role.DEPLOYER, ["shop-*"]), Role.DEPLOYER, "shop-a", True),
        (Grants.of(Role.DEPLOYER, ["shop-*"]), Role.VIEWER, "shop-a", True),
        (Grants.of(Role.DEPLOYER, ["shop-*"]), Role.ADMIN, "shop-a", False),
        (Grants.of(Role.DEPLOYER, ["shop-*"]), Role.VIEWER, "blog", False),
        (Grants.of(Role.VIEWER, ["blog"]), Role.VIEWER, "blog", True),
        (Grants.of(Role.VIEWER, ["blog"]), Role.DEPLOYER, "blog", False),
        # the highest role of every pattern that matches counts
        (Grants.parse(["viewer=shop-*", "deployer=shop-a"]), Role.DEPLOYER, "shop-a", True),
        (Grants.parse(["viewer=shop-*", "deployer=shop-a"]), Role.DEPLOYER, "shop-b", False),
    ],
)
def test_a_role_reaches_the_apps_its_patterns_match(grants: Grants, role: Role, app: str, expected: bool) -> None:
    assert grants.allows(role, app) is expected


def test_the_stored_form_round_trips() -> None:
    for grants in (ADMIN, NOTHING, Grants.parse(["deployer=shop-*", "viewer=blog"])):
        assert Grants.decode(grants.encode()) == grants
    assert Grants.decode("") == NOTHING
    assert Grants.parse(["deployer=shop-*", "viewer=blog"]).encode() == "deployer=shop-*;viewer=blog"


def test_admin_takes_no_app_and_the_others_need_one() -> None:
    assert Grants.of(Role.ADMIN, []) == ADMIN
    with pytest.raises(UsageError, match="daemon-wide"):
        Grants.of(Role.ADMIN, ["shop"])
    with pytest.raises(UsageError, match="at least one app"):
        Grants.of(Role.VIEWER, [])


@pytest.mark.parametrize("pattern", ["", "Shop", "shop/../x", "a b", "shop;admin", "x=y", "a" * 64])
def test_patterns_that_could_break_the_stored_form_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="not an app name or pattern"):
        Grants.of(Role.VIEWER, [pattern])


def test_granting_replaces_a_patterns_role_and_admin_and_revoking_removes_it() -> None:
    alice = ADMIN.with_grant(Role.DEPLOYER, "shop")
    assert alice == Grants.parse(["deployer=shop"])  # admin is replaced, not kept beside
    alice = alice.with_grant(Role.VIEWER, "blog").with_grant(Role.VIEWER, "shop")
    assert alice.describe() == "viewer on blog, viewer on shop"
    assert alice.without(["blog"]).describe() == "viewer on shop"
    assert alice.without(["blog", "shop"]).describe() == "no role"
    assert alice.with_grant(Role.ADMIN, "*") == ADMIN


def test_allows_somewhere_is_for_calls_that_name_no_app() -> None:
    viewer = Grants.of(Role.VIEWER, ["blog"])
    assert viewer.allows_somewhere(Role.VIEWER)
    assert not viewer.allows_somewhere(Role.DEPLOYER)
    assert not NOTHING.allows_somewhere(Role.VIEWER)
    assert ADMIN.allows_somewhere(Role.DEPLOYER)

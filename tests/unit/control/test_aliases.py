"""Branch alias names: what is valid, how a branch becomes one, and what the refusal says."""

from __future__ import annotations

import pytest

from roost.control import check_alias
from roost.errors import UsageError
from roost.model import alias_max_length, alias_slug, is_valid_alias


@pytest.mark.parametrize(
    ("branch", "slug"),
    [
        ("main", "main"),
        ("feature/Login_Page", "feature-login-page"),
        ("dependabot/pip/requests-2.31.0", "dependabot-pip-requests-2-31-0"),
        ("--fix--it--", "fix-it"),
        ("123", "123"),
        ("////", ""),
    ],
)
def test_a_branch_becomes_a_dns_label(branch: str, slug: str) -> None:
    assert alias_slug(branch, "shop") == slug
    assert slug == "" or is_valid_alias(slug, "shop")


def test_a_long_branch_is_cut_to_fit_the_host_and_stays_apart_from_its_neighbour() -> None:
    app = "a-rather-long-application-name"
    one = alias_slug("feature/" + "x" * 60 + "-one", app)
    two = alias_slug("feature/" + "x" * 60 + "-two", app)
    assert one != two
    for slug in (one, two):
        assert len(f"{slug}--{app}") <= 63
        assert is_valid_alias(slug, app)
    assert len(one) == alias_max_length(app)


@pytest.mark.parametrize("alias", ["feature/x", "Feature", "a--b", "-a", "a-", "", "x" * 60])
def test_an_invalid_alias_is_refused_with_the_rule(alias: str) -> None:
    with pytest.raises(UsageError) as refused:
        check_alias("shop", alias)
    assert "is not a valid alias of 'shop'" in refused.value.message
    assert "lowercase letters, digits" in refused.value.hint


def test_the_refusal_offers_the_slug_of_a_branch_name() -> None:
    with pytest.raises(UsageError) as refused:
        check_alias("shop", "feature/Login")
    assert "'feature-login'" in refused.value.hint

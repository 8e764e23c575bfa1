"""The quota rules: which apps a quota covers and what it leaves one deployment. Pure."""

from __future__ import annotations

import pytest

from roost.errors import UsageError
from roost.model import Quota
from roost.quotas import Holding, cap_for, check_quota, covers, group_usage, most_instances

MB = 1024 * 1024


def test_a_pattern_covers_the_apps_it_names() -> None:
    shop = Quota("shop-*", instances=4)
    assert covers(shop, "shop-a")
    assert not covers(shop, "blog")
    assert covers(Quota("blog", instances=1), "blog")
    assert not covers(Quota("blog", instances=1), "blog-2")


def test_the_group_usage_sums_the_covered_apps_only() -> None:
    held = {"shop-a": Holding(2, 256 * MB), "shop-b": Holding(1, 128 * MB), "blog": Holding(5, 640 * MB)}
    assert group_usage(Quota("shop-*", instances=4), held) == Holding(3, 384 * MB)


def test_the_tightest_of_several_quotas_and_kinds_wins() -> None:
    quotas = [Quota("shop-*", instances=10, memory=1024 * MB), Quota("shop-a", instances=6)]
    others = {"shop-b": Holding(2, 512 * MB)}
    cap = cap_for(quotas, "shop-a", 256 * MB, others)
    assert cap is not None
    assert cap.instances == 2  # (1024M - 512M) / 256M, below 10 - 2 and 6
    assert cap.quota.pattern == "shop-*"
    assert cap_for(quotas, "blog", 256 * MB, others) is None


def test_a_full_group_leaves_nothing() -> None:
    cap = cap_for([Quota("shop-*", instances=2)], "shop-a", MB, {"shop-b": Holding(3, 3 * MB)})
    assert cap is not None
    assert cap.instances == 0


def test_most_instances_of_an_app_alone() -> None:
    assert most_instances([Quota("shop-*", instances=4, memory=512 * MB)], "shop-a", 256 * MB) == 2
    assert most_instances([], "shop-a", 256 * MB) is None


@pytest.mark.parametrize(
    "quota",
    [Quota("Shop"), Quota("shop/a", instances=1), Quota("shop", instances=0), Quota("shop", memory=1000), Quota("")],
)
def test_bad_quotas_are_refused(quota: Quota) -> None:
    with pytest.raises(UsageError):
        check_quota(quota)

"""What `--alias BRANCH` sends: the branch made an alias, or a usage error when nothing is left."""

from __future__ import annotations

import pytest

from roost.cli.push import branch_alias
from roost.errors import UsageError


def test_a_branch_name_is_sent_as_its_alias() -> None:
    assert branch_alias("feature/Login_Page", "shop") == "feature-login-page"
    assert branch_alias("main", "shop") == "main"


def test_a_branch_with_nothing_usable_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no letter or digit"):
        branch_alias("/-_/", "shop")

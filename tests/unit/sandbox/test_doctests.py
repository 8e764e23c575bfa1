"""The examples in the sandbox's docstrings are run, so they cannot drift from the code."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from roost.runtime.sandbox import buildnet, cgroup_hierarchy, limit_checks


@pytest.mark.parametrize("module", [limit_checks, cgroup_hierarchy, buildnet], ids=lambda m: m.__name__)
def test_the_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.attempted > 0, f"{module.__name__} has no examples left to run"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module.__name__} failed"

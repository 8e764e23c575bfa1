"""Without Ray, the cluster's commands say how to install it."""

from __future__ import annotations

import importlib.util

import pytest

from roost.cluster.installed import require_ray
from roost.errors import ConfigError


def test_without_ray_the_hint_is_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as caught:
        require_ray("roost node join")
    assert caught.value.message == "`roost node join` needs Ray, which is not installed beside Roost"
    assert "pip install 'roost[cluster]'" in caught.value.hint

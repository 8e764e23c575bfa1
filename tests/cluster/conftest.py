"""Fixtures of the cluster tests: a private LAN of namespaced hosts and a folder for their homes,
both removed after the test whatever happened. Root only; run with the cluster venv
(`make test-cluster`), where Ray is installed."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import PROXY, reap_all
from tests.cluster.netns import Lan, lan
from tests.cluster.proxy import index_proxy


@pytest.fixture(autouse=True)
def _ray_and_root() -> None:
    """Fail, never skip: these tests need root (namespaces) and the cluster venv (Ray)."""
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root (network namespaces)")
    if importlib.util.find_spec("ray") is None:
        pytest.fail("the cluster tests need Ray: run them with `make test-cluster` (the cluster venv)")


@pytest.fixture
def make_lan() -> Iterator[Callable[[int], tuple[Lan, Path]]]:
    """make_lan(n): n hosts and a short folder for their homes (/tmp/rc-<run>)."""
    stack = contextlib.ExitStack()

    def make(count: int) -> tuple[Lan, Path]:
        run = secrets.token_hex(3)
        folder = Path(f"/tmp/rc-{run}")
        folder.mkdir(mode=0o700)
        stack.callback(shutil.rmtree, folder, True)  # after the LAN's processes are killed
        network = stack.enter_context(lan(count, run))
        PROXY["url"] = stack.enter_context(index_proxy(network.uplink))
        stack.callback(PROXY.clear)
        return network, folder

    with stack:
        stack.callback(reap_all)  # last: the LAN's close has killed them; collect their exits
        yield make

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Daemon, running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def daemon(home: Path) -> Iterator[Daemon]:
    with running(home) as started:
        yield started

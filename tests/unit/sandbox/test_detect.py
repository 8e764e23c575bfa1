"""Detection runs once, however many starts ask for it at the same moment."""

import asyncio
from pathlib import Path

import pytest

from roost.runtime.sandbox import Sandbox, SandboxSettings
from roost.runtime.sandbox.sandbox import Facilities


async def test_concurrent_detection_runs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fifty instances starting together all call detect(); two detections would make two uid
    books, each with its own lock, racing on uids.json (seen: a rename of a vanished temp file)."""
    sandbox = Sandbox(SandboxSettings(), tmp_path / "home")
    made: list[Facilities] = []
    real = sandbox._detect

    def counted() -> Facilities:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(sandbox, "_detect", counted)
    await asyncio.gather(*(sandbox.detect() for _ in range(20)))
    assert len(made) == 1
    assert sandbox.facilities is made[0]

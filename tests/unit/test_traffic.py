"""The one rule of "which deployment is production" (model.Traffic), and its users agreeing on it."""

from pathlib import Path

import pytest

from roost.model import AppConfig, AppName, DeploymentId, Mode, Traffic, TrafficEntry
from roost.store import Store


def split(*pairs: tuple[str, int]) -> Traffic:
    return Traffic.of(TrafficEntry(DeploymentId(d), w) for d, w in pairs)


@pytest.mark.parametrize(
    ("entries", "production", "serving"),
    [
        ((), None, ()),
        ((("a1", 100),), "a1", ("a1",)),
        ((("old", 90), ("new", 10)), "old", ("old", "new")),  # a canary serves but is not production
        ((("new", 10), ("old", 90)), "old", ("old", "new")),  # the order given does not matter
        ((("d2", 50), ("d1", 50)), "d1", ("d1", "d2")),  # a tie: the lowest id, whatever the order
        ((("d1", 50), ("d2", 50)), "d1", ("d1", "d2")),
        ((("a1", 100), ("b2", 0)), "a1", ("a1",)),  # weight 0 takes no new requests
        ((("b2", 0),), None, ()),  # nothing with weight: no production
    ],
)
def test_production_is_the_heaviest_then_the_lowest_id(
    entries: tuple[tuple[str, int], ...], production: str | None, serving: tuple[str, ...]
) -> None:
    traffic = split(*entries)
    assert traffic.production == production
    assert traffic.serving == serving
    assert Traffic.of_pairs((DeploymentId(d), w) for d, w in entries).production == production


def test_the_entries_are_read_heaviest_first() -> None:
    assert [e.deployment for e in split(("b", 10), ("c", 45), ("a", 45)).entries] == ["a", "c", "b"]


async def test_the_release_history_records_production_on_a_tie(tmp_path: Path) -> None:
    """The store's release history names the same deployment as everyone else, even on a 50/50 split
    given in the other order."""
    store = await Store.open(tmp_path / "roost.db")
    try:
        app = AppName("hello")
        await store.create_app(app, Mode.FUNCTION, AppConfig())
        for name in ("aaaaaaaa", "bbbbbbbb"):
            await store.create_deployment(app, DeploymentId(name), "sha256:0", name, AppConfig())
        entries = [TrafficEntry(DeploymentId("bbbbbbbb"), 50), TrafficEntry(DeploymentId("aaaaaaaa"), 50)]
        await store.set_traffic(app, entries, "traffic", "split")
        history = await store.release_history(app)
        assert history == [Traffic.of(entries).production] == ["aaaaaaaa"]
    finally:
        await store.close()

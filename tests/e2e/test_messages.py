"""What the runtime says about a promote, end to end: a function's new instance, started by
the hand-over before any request, is not stopped as idle seconds later, and a hand-over that
works is not reported as failed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from tests.e2e.apps import EXAMPLES, get, info, pushed, ready_instances, wait_until
from tests.e2e.harness import Daemon, module_daemon

OBSERVED_FOR = 4.0  # the autoscaler ticks every second: several ticks see the new instance
HANDOVER_WARNING = "hand-over to"

daemon = module_daemon("messages")


def instance(daemon: Daemon, app: str, instance_id: str) -> dict[str, Any]:
    [found] = [i for i in info(daemon, app)["instances"] if i["id"] == instance_id]
    return found


def test_a_promoted_function_keeps_its_fresh_instance_and_nothing_warns(daemon: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "promo"
    shutil.copytree(EXAMPLES / "flask-hello", app)
    toml = app / "roost.toml"
    toml.write_text(toml.read_text().replace('"flask-hello"', '"promo"'))
    pushed(daemon, app)
    assert "(hi)" in get(daemon, "promo.localhost").text  # a request: the first deployment runs
    [old] = ready_instances(daemon, "promo")
    toml.write_text(toml.read_text().replace('GREETING = "hi"', 'GREETING = "again"'))
    pushed(daemon, app)

    def drained() -> bool:
        return instance(daemon, "promo", old["id"])["state"] == "stopped"

    wait_until("the old instance to drain after the hand-over", drained, timeout=60)
    assert "left production" in instance(daemon, "promo", old["id"])["reason"]
    [new] = [i for i in ready_instances(daemon, "promo") if i["deployment"] != old["deployment"]]

    def observed_long_enough() -> bool:
        current = instance(daemon, "promo", new["id"])
        assert current["state"] == "ready", f"the hand-over's instance was stopped seconds old: {current}"
        return time.time() - current["started_at"] >= OBSERVED_FOR

    wait_until("the autoscaler to see the new instance for a few ticks", observed_long_enough, timeout=60)
    idle_stops = [e["message"] for e in info(daemon, "promo")["events"] if "no request for" in e["message"]]
    assert idle_stops == [], idle_stops
    assert HANDOVER_WARNING not in daemon.output(), daemon.output()[-3000:]
    assert "(again)" in get(daemon, "promo.localhost").text

"""Quotas end to end: real load on a real `roost serve` stops scaling at the quota's cap, with
one `quota.reached` event; `roost info` and `roost quota list` show how full it is; a `roost
scale --min` above the quota is refused; removing the quota asks first and lets scaling go on."""

from __future__ import annotations

import json
import time

from tests.e2e.apps import EXAMPLES, get, pushed, wait_until
from tests.e2e.harness import Daemon, module_daemon
from tests.e2e.test_autoscale import FAST_WINDOWS, SLOW, TARGET, WINDOW, Load, events, holds, live, reaches

daemon = module_daemon("quotas", *FAST_WINDOWS)
CAP = 2


def test_load_stops_at_the_quota_with_one_event(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "shop-a")
    assert daemon.cli("scale", "shop-a", "--concurrency", str(TARGET), "--max", "6").returncode == 0
    quota = daemon.cli("quota", "set", "shop-*", "--instances", str(CAP), "--memory", "2G")
    assert quota.returncode == 0, quota.stderr
    assert "0 of 2 instances" in quota.stdout
    started = time.time()
    with Load(daemon, "shop-a.localhost", SLOW, clients=8) as load:  # 8 in flight at target 2 wants 4
        reaches(daemon, "shop-a", CAP)
        reached = wait_until("the quota event", lambda: quota_events(daemon, started), timeout=30)
        held = holds(daemon, "shop-a", WINDOW + 2)
        shown = json.loads(daemon.cli("quota", "list", "--json").stdout)
        info = daemon.cli("info", "shop-a").stdout
    assert held and max(held) == CAP, held
    assert all(status == 200 for status in load.statuses), set(load.statuses)
    assert len(quota_events(daemon, started)) == 1  # one episode, one event, not one a tick
    message = reached[0]["message"]
    assert message.startswith(f'quota "shop-*" reached: {CAP} of {CAP} instances (wanted ')
    assert int(message.rsplit("wanted ", 1)[1].rstrip(")")) > CAP
    assert all(e["data"]["to"] <= CAP for e in events(daemon, "shop-a") if e["kind"] == "scale" and e["at"] >= started)
    assert shown == [
        {
            "pattern": "shop-*",
            "instances": CAP,
            "memory": 2 << 30,
            "used_instances": CAP,
            "used_memory": CAP * 128 << 20,
            "usage": f"{CAP} of {CAP} instances, 256M of 2G memory",
            "apps": ["shop-a"],
        }
    ]
    assert f'quota "shop-*": {CAP} of {CAP} instances' in info


def test_apps_of_one_group_share_its_cap(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "grp-a")
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "grp-b")
    assert daemon.cli("quota", "set", "grp-*", "--instances", str(CAP)).returncode == 0
    assert daemon.cli("scale", "grp-a", "--concurrency", str(TARGET), "--idle-timeout", "5m").returncode == 0
    with Load(daemon, "grp-a.localhost", SLOW, clients=8):
        reaches(daemon, "grp-a", CAP)
    assert get(daemon, "grp-b.localhost").status_code == 200  # an instance for grp-b: the group is over its cap...
    wait_until(  # ...until the autoscaler takes one back (from grp-a, decided first)
        "the group back within its cap",
        lambda: len(live(daemon, "grp-a")) + len(live(daemon, "grp-b")) == CAP and live(daemon, "grp-b"),
        timeout=30,
    )
    downs = [e for e in events(daemon, "grp-a") if e["kind"] == "scale" and e["data"]["to"] < e["data"]["from"]]
    assert any(e["data"]["reason"].startswith('quota "grp-*" reached') for e in downs), downs  # not "demand fell"
    (shown,) = [q for q in json.loads(daemon.cli("quota", "list", "--json").stdout) if q["pattern"] == "grp-*"]
    assert shown["apps"] == ["grp-a", "grp-b"]
    assert shown["used_instances"] == CAP


def test_scale_min_above_the_quota_is_refused(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "handler-hello", "--name", "solo")
    assert daemon.cli("quota", "set", "solo", "--instances", "1").returncode == 0
    refused = daemon.cli("scale", "solo", "--min", "3")
    assert refused.returncode == 1
    assert 'quota "solo" allows 1 instance of solo' in refused.stderr
    assert "roost quota set" in refused.stderr
    with daemon.api() as api:
        assert api.get("/v1/apps/solo").json()["settings"]["scale"]["min"] == 0


def test_removing_a_quota_asks_first_then_scaling_goes_past_it(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "free")
    assert daemon.cli("scale", "free", "--concurrency", str(TARGET), "--max", "4").returncode == 0
    assert daemon.cli("quota", "set", "fre?", "--instances", "1").returncode == 0  # '?' travels quoted
    with Load(daemon, "free.localhost", SLOW, clients=6):
        capped = holds(daemon, "free", WINDOW)
    assert capped and max(capped) == 1, capped
    asked = daemon.cli("quota", "remove", "fre?")
    assert asked.returncode == 2  # a usage error: nobody could answer the question
    assert "without confirmation" in asked.stderr and "--yes" in asked.stderr
    assert any(q["pattern"] == "fre?" for q in json.loads(daemon.cli("quota", "list", "--json").stdout))
    assert daemon.cli("quota", "remove", "fre?", "--yes").returncode == 0
    with Load(daemon, "free.localhost", SLOW, clients=6):
        reaches(daemon, "free", 3)
    assert len(live(daemon, "free")) >= 1


def quota_events(daemon: Daemon, since: float) -> list[dict[str, object]]:
    return [e for e in events(daemon, "shop-a") if e["kind"] == "quota.reached" and e["at"] >= since]


def test_a_quota_beyond_what_the_store_holds_is_refused_not_a_server_error(daemon: Daemon) -> None:
    with daemon.api() as api:
        for body in ({"memory": 2**64}, {"instances": 2**63}):
            answer = api.put("/v1/quotas/huge-*", json=body)
            assert answer.status_code == 422, answer.text
        assert api.put("/v1/quotas/huge-*", json={"memory": 2**63 - 1}).status_code == 200
        assert api.delete("/v1/quotas/huge-*").status_code in (200, 204)

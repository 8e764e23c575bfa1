"""Roost on three namespaced machines and a client, end to end: `roost serve --cluster`, two
`roost node join`s and one `roost push` give an app served from every machine's edge; Ray places
its instances about evenly; a request at an edge with no instance of the app is forwarded to a
machine that has one; an app asleep wakes through any edge; a machine killed under load is
replaced on the others with a bounded window of failed requests. The figures are printed (run
with -s to see them)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.cluster.netns import Lan
from tests.cluster.serving import (
    NODES_OF_TEST,
    Cluster,
    failures,
    percentiles,
    start_cluster,
    window,
    write_app,
)
from tests.e2e.apps import wait_until

MakeLan = Callable[[int], tuple[Lan, Path]]
SPREAD_MIN = 6
SPREAD = f'mode = "service"\n[scale]\nmin = {SPREAD_MIN}\nconcurrency = 2\n[limits]\nmemory = "64M"\n'
SINGLE = 'mode = "service"\n[scale]\nmin = 1\nmax = 1\n[limits]\nmemory = "64M"\n'
SLEEPY = 'mode = "function"\n[scale]\nidle_timeout = "3s"\n[limits]\nmemory = "64M"\n'
NODES = NODES_OF_TEST


def test_an_app_is_served_from_every_machine_and_a_lost_machine_is_replaced(make_lan: MakeLan) -> None:
    lan, folder = make_lan(4)
    cluster = start_cluster(lan, folder)

    pushed_at = time.time()
    seconds = cluster.push(write_app(folder, "spread", SPREAD))
    began = time.monotonic()
    placed = cluster.wait_placed("spread", 6)
    print(
        f"\nmin = 6 placed {dict(placed)}; push {seconds:.1f} s, then all ready {time.monotonic() - began:.1f} s later"
    )
    print(cluster.timeline(pushed_at))
    assert set(placed) == set(NODES) and max(placed.values()) - min(placed.values()) <= 1, placed

    listed = wait_until(
        "roost nodes counting them",
        lambda: (n := cluster.listed()) and sum(n[m]["instances"] for m in NODES) >= 6 and n,
        60,
    )
    assert all(listed[m]["alive"] and listed[m]["memory_used"] >= 64 * 1024**2 for m in NODES), listed

    for node in NODES:  # each edge serves from its own instances
        status, headers = cluster.get(node, "spread")
        assert status == 200 and headers["x-roost-node"] == f"{node}; region=main", (node, status, headers)

    cluster.push(write_app(folder, "single", SINGLE))
    (home,) = cluster.wait_placed("single", 1)
    for node in NODES:  # the other edges forward to the one machine that runs it
        status, headers = cluster.get(node, "single")
        assert status == 200 and headers["x-roost-node"] == f"{home}; region=main", (node, status, headers)
    others = [n for n in NODES if n != home]
    local = cluster.load("single", [home], rate=20, seconds=10).finish()
    forwarded = cluster.load("single", [others[0]], rate=20, seconds=10).finish()
    assert not failures(local) and not failures(forwarded)
    (lp50, lp99), (fp50, fp99) = percentiles([r["ms"] for r in local]), percentiles([r["ms"] for r in forwarded])
    print(f"served at its own edge p50 {lp50:.2f} ms p99 {lp99:.2f} ms; forwarded from {others[0]} "
          f"p50 {fp50:.2f} ms p99 {fp99:.2f} ms: forwarding adds {fp50 - lp50:.2f} / {fp99 - lp99:.2f} ms")  # fmt: skip
    assert all(r["node"].startswith(home) for r in forwarded)

    cluster.push(write_app(folder, "sleepy", SLEEPY))
    woken = []
    for node in NODES:  # asleep, it wakes through any machine's edge
        wait_until("sleepy asleep", lambda: cluster.asleep("sleepy"), 60)
        began = time.monotonic()
        status, headers = cluster.get(node, "sleepy")
        woken.append(f"{node} {time.monotonic() - began:.2f} s ({headers.get('x-roost-node')})")
        assert status == 200 and headers.get("x-roost-start") in ("warm", "cold"), (node, status, headers)
    print("woken from zero through each edge (curl, client machine):", ", ".join(woken))

    isolated = cluster.isolation("spread", "n2")  # read back through the agent on the node
    assert isolated and all(200000 <= uid <= 265535 for uid in isolated), isolated

    _lose_a_machine_under_load(cluster, lan)

    rejoined = cluster.join(3, "main")  # the same machine again: it gets work, nothing of its last run is left
    rejoined.wait_for("joined", 120)
    cluster.push(write_app(folder, "more", 'mode = "service"\n[scale]\nmin = 3\n[limits]\nmemory = "64M"\n'))
    assert cluster.wait_placed("more", 3)["n3"] >= 1
    status, headers = cluster.get("n3", "more")
    assert status == 200 and headers["x-roost-node"].startswith(("head", "n2", "n3"))


def _lose_a_machine_under_load(cluster: Cluster, lan: Lan) -> None:
    # n3 killed (every process of the machine) under 50 requests/s sent to the two others' edges;
    # each request takes 200 ms and an instance takes 2 at once, so each edge has more requests
    # than its own 4 slots and forwards the rest to its peers
    load = cluster.load("spread", ["head", "n2"], rate=50, seconds=30, path="/?ms=200")
    time.sleep(10)  # load before the loss; the client's records say what happened when
    before = cluster.placement("spread")  # the autoscaler may have added some for the load
    killed_at = time.monotonic() - load.began
    wall = time.time()
    lan.hosts[2].kill_all()
    lost = time.monotonic()
    replaced = _replaced(cluster, before, "n3")
    replaced_in = time.monotonic() - lost
    records = load.finish()
    failed = failures(records)
    forwarded = sum(1 for r in records if r["at"] < killed_at and not r["node"].startswith(("head", "n2")))
    after = [r for r in records if r["at"] > killed_at + 15]
    print(f"n3 killed at {killed_at:.1f} s ({forwarded} requests had gone to n3 before): {len(failed)} of "
          f"{len(records)} failed, window {window(records):.1f} s; {dict(before)} replaced ({dict(replaced)}) "
          f"{replaced_in:.1f} s after")  # fmt: skip
    print(cluster.timeline(wall))
    assert forwarded > 0  # the load did reach the machine that was lost
    assert not failures(after), failures(after)[:5]
    assert all(r["at"] >= killed_at - 0.5 for r in failed), failed[:5]


def _replaced(cluster: Cluster, before: Counter[str], lost: str) -> Counter[str]:
    """Once `spread` has as many ready instances as `before` (or its `min`: the autoscaler may
    lower the count meanwhile, as the load's demand varies), none of them on `lost`."""
    count = min(sum(before.values()), SPREAD_MIN)
    return cluster.wait(
        f"{count} ready without {lost}",
        lambda: (p := cluster.placement("spread"))[lost] == 0 and sum(p.values()) >= count and p,
        "spread",
    )


NEAR = 'mode = "function"\n[scale]\nmax = 4\nidle_timeout = "120s"\n[limits]\nmemory = "64M"\n'


def test_regions_a_cut_off_machine_and_a_head_restart(make_lan: MakeLan) -> None:
    lan, folder = make_lan(4)
    cluster = start_cluster(lan, folder, regions=("a", "a", "b"))

    cluster.push(write_app(folder, "near", NEAR))
    status, headers = cluster.get("n3", "near")  # asleep: started through the head, in the request's region
    assert status == 200 and headers["x-roost-node"] == "n3; region=b", headers
    began = time.monotonic()
    status, headers = cluster.get("n2", "near")  # region a has none yet: served in b meanwhile
    assert status == 200 and headers["x-roost-node"] == "n3; region=b", headers
    served_in_a = wait_until(
        "region a's own instance",
        lambda: (r := cluster.get("n2", "near")) and "region=a" in r[1]["x-roost-node"] and r,
        60,
    )
    print(
        f"\nregion a's demand got an instance there in {time.monotonic() - began:.1f} s",
        f"({served_in_a[1]['x-roost-node']})",
    )
    status, headers = cluster.get("n3", "near")  # b is served still (the autoscaler may have kept one instance in all)
    print(f"then through n3: {status} from {headers.get('x-roost-node')}")
    assert status == 200

    cluster.push(write_app(folder, "spread", SPREAD))
    cluster.wait_placed("spread", 6)
    load = cluster.load("spread", ["head", "n2"], rate=50, seconds=30, path="/?ms=200")
    time.sleep(10)
    before = cluster.placement("spread")
    cut_at = time.monotonic() - load.began
    wall = time.time()
    lan.cut(lan.hosts[2])  # n3's link down: its processes live on, unreachable
    lost = time.monotonic()
    replaced = _replaced(cluster, before, "n3")
    replaced_in = time.monotonic() - lost
    records = load.finish()
    failed = failures(records)
    after = [r for r in records if r["at"] > cut_at + 15]
    print(f"n3 cut off at {cut_at:.1f} s: {len(failed)} of {len(records)} failed, window {window(records):.1f} s; "
          f"{dict(before)} replaced ({dict(replaced)}) {replaced_in:.1f} s after")  # fmt: skip
    print(cluster.timeline(wall))
    assert not failures(after), failures(after)[:5]
    lan.mend(lan.hosts[2])
    wait_until("n3 back in the cluster", lambda: cluster.alive("n3"), 120)

    cluster.head.stop()  # the head goes away: every other machine serves what it ran
    during = {(node, app): cluster.get(node, app)[0] for node in ("n2", "n3") for app in ("spread", "near")}
    print(f"with the head stopped: {during}")
    assert during[("n2", "spread")] == during[("n3", "spread")] == during[("n3", "near")] == 200, during
    restarted, wall = time.monotonic(), time.time()
    cluster.restart_head()
    wait_until("every machine back", lambda: all(cluster.alive(n) for n in ("n2", "n3")), 120)
    cluster.wait_placed("spread", 6)
    print(f"head restarted: machines back and the app placed again in {time.monotonic() - restarted:.1f} s")
    print(cluster.timeline(wall))
    for node in NODES:
        assert cluster.get(node, "spread")[0] == 200

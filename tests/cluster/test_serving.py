"""Roost on three namespaced machines and a client, end to end: `roost serve --cluster`, two
`roost node join`s and one `roost push` give an app served from every machine's edge; Ray places
its instances about evenly; a request at an edge with no instance of the app is forwarded to a
machine that has one; an app asleep wakes through any edge; a machine killed under load is
replaced on the others with a bounded window of failed requests. The figures are printed (run
with -s to see them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.cluster.netns import Lan
from tests.cluster.serving import (
    failures,
    percentiles,
    start_cluster,
    window,
    write_app,
)
from tests.e2e.apps import wait_until

MakeLan = Callable[[int], tuple[Lan, Path]]
SPREAD = 'mode = "service"\n[scale]\nmin = 6\nconcurrency = 2\n[limits]\nmemory = "64M"\n'
SINGLE = 'mode = "service"\n[scale]\nmin = 1\nmax = 1\n[limits]\nmemory = "64M"\n'
SLEEPY = 'mode = "function"\n[scale]\nidle_timeout = "3s"\n[limits]\nmemory = "64M"\n'
NODES = ("head", "n2", "n3")


def test_an_app_is_served_from_every_machine_and_a_lost_machine_is_replaced(make_lan: MakeLan) -> None:
    lan, folder = make_lan(4)
    cluster = start_cluster(lan, folder)

    seconds = cluster.push(write_app(folder, "spread", SPREAD))
    began = time.monotonic()
    placed = cluster.wait_placed("spread", 6)
    print(
        f"\nmin = 6 placed {dict(placed)}; push {seconds:.1f} s, then all ready {time.monotonic() - began:.1f} s later"
    )
    assert set(placed) == set(NODES) and max(placed.values()) - min(placed.values()) <= 1, placed

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
    for node in NODES:  # asleep, it wakes through any machine's edge
        wait_until("sleepy asleep", lambda: not cluster.placement("sleepy"), 60)
        status, headers = cluster.get(node, "sleepy")
        assert status == 200 and headers.get("x-roost-start") in ("warm", "cold"), (node, status, headers)

    # n3 killed (every process of the machine) under 50 requests/s sent to the two others' edges;
    # each request takes 50 ms and an instance takes 2 at once, so the edges forward to peers
    load = cluster.load("spread", ["head", "n2"], rate=50, seconds=45, path="/?ms=50")
    time.sleep(10)  # load before the loss; the client's records say what happened when
    killed_at = time.monotonic() - load.began
    lan.hosts[2].kill_all()
    lost = time.monotonic()
    replaced = cluster.wait_placed("spread", 6, within=120)
    replaced_in = time.monotonic() - lost
    records = load.finish()
    failed = failures(records)
    after = [r for r in records if r["at"] > killed_at + 15]
    print(f"n3 killed at {killed_at:.1f} s: {len(failed)} of {len(records)} requests failed, "
          f"window {window(records):.1f} s; 6 ready again ({dict(replaced)}) {replaced_in:.1f} s after")  # fmt: skip
    assert "n3" not in replaced and sum(replaced.values()) == 6
    assert not failures(after), failures(after)[:5]
    assert all(r["at"] >= killed_at - 0.5 for r in failed), failed[:5]

"""Benchmark: what forwarding to another machine's edge costs a request, on a namespaced cluster.

    sudo .venv-cluster/bin/python bench/cluster.py [--rounds 5] [--seconds 4] [--rate 50]

Starts a real cluster as the cluster tests do (tests/cluster: a head and two `roost node join`s,
each in a network namespace of its own on a private LAN, and a client machine), pushes an app
with exactly one instance, and measures from the client with real HTTP requests (httpx, one
keep-alive pool, `--rate` requests a second for `--seconds`) at the edge of the machine that
runs the instance (the reference: served there) and at another machine's edge (forwarded to the
first one's peer door). Rounds are interleaved (local, forwarded, local, ...), so the host's
noise hits both alike; it prints each round's p50 and p99 and the median over the rounds of the
forwarded/local ratios. Needs root and Ray (the cluster venv: `make test-cluster` makes it). Not
a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.harness import PROXY, reap_all  # noqa: E402 - the repository's test harness, after its path
from tests.cluster.netns import lan  # noqa: E402
from tests.cluster.proxy import index_proxy  # noqa: E402
from tests.cluster.serving import NODES_OF_TEST, failures, percentiles, start_cluster, write_app  # noqa: E402

SINGLE = 'mode = "service"\n[scale]\nmin = 1\nmax = 1\n[limits]\nmemory = "64M"\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    run = secrets.token_hex(3)
    folder = Path(f"/tmp/rc-{run}")  # short: Ray's socket paths
    folder.mkdir(mode=0o700)
    try:
        with lan(4, run) as network, index_proxy(network.uplink) as proxy:
            PROXY["url"] = proxy
            cluster = start_cluster(network, folder)
            cluster.push(write_app(folder, "single", SINGLE))
            (home,) = cluster.wait_placed("single", 1)
            elsewhere = next(n for n in NODES_OF_TEST if n != home)
            print(f"one instance on {home}; forwarded from {elsewhere}'s edge; {args.rounds} rounds")
            ratios_p50, ratios_p99 = [], []
            for index in range(args.rounds):
                measured = {}
                for label, node in (("local", home), ("forwarded", elsewhere)):
                    records = cluster.load("single", [node], rate=args.rate, seconds=args.seconds).finish()
                    assert not failures(records), failures(records)[:3]
                    measured[label] = percentiles([r["ms"] for r in records])
                (lp50, lp99), (fp50, fp99) = measured["local"], measured["forwarded"]
                ratios_p50.append(fp50 / lp50)
                ratios_p99.append(fp99 / lp99)
                print(
                    f"round {index + 1}: local p50 {lp50:.2f} ms p99 {lp99:.2f} ms; "
                    f"forwarded p50 {fp50:.2f} ms p99 {fp99:.2f} ms (+{fp50 - lp50:.2f} / +{fp99 - lp99:.2f} ms)"
                )
            print(
                f"forwarded/local (median of rounds): p50 x{statistics.median(ratios_p50):.2f}, "
                f"p99 x{statistics.median(ratios_p99):.2f}"
            )
    finally:
        reap_all()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

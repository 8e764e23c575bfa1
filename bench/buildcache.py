"""Build time of the Flask example with a cold and a warm uv cache, this checkout against another
(main, exported with `git archive`), interleaved round by round, medians and their ratio.

    git archive main | tar -x -C /tmp/roost-main
    .venv/bin/python bench/buildcache.py --reference /tmp/roost-main [--rounds 5]

Each build runs the Builder alone (unpack, dependencies, bytecode) in a fresh process and a fresh
home, so the venv is never reused: "cold" starts on an empty uv cache (uv downloads Flask), "warm"
on the cache the cold build of that round left. The side that goes first alternates each round.
Not a test: the cold figures depend on the network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flask-hello"
TIMEOUT_BUILD = 600.0

DRIVER = """
import asyncio, json, sys, time
from pathlib import Path
import roost
from roost.builder import Builder, BuildRequest
from roost.pack import pack_app
from roost.runtime.protocol import RUNNER_REQUIREMENTS
work, example, cache = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
archive = pack_app(example, work / "app.tar.gz").path
started = time.monotonic()
asyncio.run(Builder(work / "home", RUNNER_REQUIREMENTS, cache_dir=cache).build(
    BuildRequest("flask-hello", "a1b2c3d4", archive), lambda line: None))
print(json.dumps({"seconds": time.monotonic() - started, "roost": roost.__file__}))
"""


def build_once(source: Path, cache: Path) -> tuple[float, float]:
    """One build with the roost package of `source` (PYTHONPATH comes before the venv's editable
    install; the working directory is not a checkout), in a fresh process: its wall seconds and the
    CPU seconds of all its processes (uv, compileall, their workers), which a busy host inflates less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as work:
        env = {**os.environ, "PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, work, str(EXAMPLE), str(cache)],
            cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_BUILD, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"build with {source} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if not str(result["roost"]).startswith(str(source)):
        raise SystemExit(f"ran {result['roost']}, not the roost of {source}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(result["seconds"]), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of the reference (main)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sides = {"reference": args.reference.resolve(), "this": ROOT}
    kinds = ("cold", "warm", "cold cpu", "warm cpu")
    times: dict[tuple[str, str], list[float]] = {(s, k): [] for s in sides for k in kinds}
    seeding: list[float] = []
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            with tempfile.TemporaryDirectory(prefix="roost-bench-cache-") as cache:
                for kind in ("cold", "warm"):
                    wall, cpu = build_once(sides[side], Path(cache))
                    times[side, kind].append(wall)
                    times[side, f"{kind} cpu"].append(cpu)
                if side == "this":
                    seeding.append(seed_view(Path(cache)))
        print(f"round {round_ + 1}: " + ", ".join(f"{s} {k} {v[-1]:.2f}s" for (s, k), v in times.items()), flush=True)
    for kind in kinds:
        ref, this = times["reference", kind], times["this", kind]
        print(
            f"{kind}: reference median {statistics.median(ref):.2f}s (min {min(ref):.2f}, max {max(ref):.2f}); "
            f"this median {statistics.median(this):.2f}s (min {min(this):.2f}, max {max(this):.2f}); "
            f"ratio this/reference {statistics.median(this) / statistics.median(ref):.2f}"
        )

    warm = statistics.median(times["this", "warm"])
    print(
        f"seeding an app's cache view (once per app, before its first sdist build): median "
        f"{statistics.median(seeding):.3f}s (min {min(seeding):.3f}, max {max(seeding):.3f}), "
        f"{statistics.median(seeding) / warm:.2f} of this side's warm build"
    )


def seed_view(cache: Path) -> float:
    """Seconds to make an app's view of `cache` (what an sdist build adds, once per app)."""
    from roost.builder.cache import UvCache  # this checkout's

    with tempfile.TemporaryDirectory(prefix="roost-bench-views-") as views:
        started = time.monotonic()
        UvCache(cache, Path(views)).view("bench")
        return time.monotonic() - started


if __name__ == "__main__":
    main()

"""Push-to-ready for the Flask example against a real `roost serve` on loopback: the first push on an
empty uv cache (uv downloads Flask from the package index), a redeploy after a one-line code change,
and `roost rollback`. Targets (issue 3): redeploy median <= 2 s, rollback < 1 s.

    .venv/bin/python bench/deploy.py [--part push,builds] [--runs 10] [--pause 0.5]
                                     [--rounds 3] [--sandbox on,off] [--apps flask-hello,numpy-pandas]

Each push is timed twice, from the moment `roost push --json` is started: until it exits with the
deployment ready, and until the production URL (the edge with Host: flask-hello.localhost, polled
from the start, as a user reloading the page would) answers the new greeting. A rollback is timed
until `roost rollback` exits and until the edge answers the previous greeting. Every push changes
one line of a copy of the example. The daemon runs in a fresh home with a fresh uv cache; it is
stopped with SIGTERM afterwards, and its process group and any instance left are killed.

The `builds` part (issue 25) times the build of every example and of a numpy/pandas app
(bench/apps/numpy-pandas) on a cold and a warm uv cache, with the build sandbox on and off
(`roost serve --no-build-sandbox`), in interleaved rounds, and prints medians, min-max and the ratio
sandbox on / off; see bench/_builds.py. `--rounds 2` takes a few minutes, most of it the cold installs.
Not a test: figures depend on the machine and, for cold installs, on the network.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _builds import app_folders, measure_builds, report_builds, unavailable_modes
from _common import ROOT, workdir
from _daemon import BenchError, Daemon, start_daemon

APP = "flask-hello"
EXAMPLE = ROOT / "examples" / APP
HOST = f"{APP}.localhost"
GREETING_RE = re.compile(r"Hello from Flask[^!(]*!")
TARGET_REDEPLOY = 2.0
TARGET_ROLLBACK = 1.0
TIMEOUT_FIRST_PUSH = 600.0
TIMEOUT_PUSH = 120.0
POLL = 0.01
PARTS = ("push", "builds")


# -- the edge, polled while a command runs ------------------------------------------------------


@dataclass
class EdgeWatch:
    """Polls the production URL in a thread until it answers `text`; counts every other answer."""

    port: int
    text: str
    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)
    seen: Counter[str] = field(default_factory=Counter)

    def __call__(self) -> float | None:
        """perf_counter() when `text` first came back, or None if stopped first."""
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"Host": HOST}, timeout=10) as client:
            while not self.stop.is_set() and time.perf_counter() < self.deadline:
                client.cookies.clear()  # no sticky traffic-split cookie: each poll is routed afresh
                try:
                    response = client.get("/")
                except httpx.HTTPError as exc:
                    self.seen[type(exc).__name__] += 1
                else:
                    if response.status_code == 200 and self.text in response.text:
                        return time.perf_counter()
                    self.seen["200 (older text)" if response.status_code == 200 else str(response.status_code)] += 1
                time.sleep(POLL)
        return None

    def failures(self) -> Counter[str]:
        return Counter({k: n for k, n in self.seen.items() if not k.startswith("200")})


@dataclass(frozen=True, slots=True)
class Timed:
    """One timed command: seconds until it exited and until the edge answered the expected text."""

    exited: float
    answered: float
    stdout: str
    stderr: str
    edge_failures: Counter[str]


def timed(pool: ThreadPoolExecutor, daemon: Daemon, args: list[str], text: str, timeout: float) -> Timed:
    """Run `roost ARGS` while polling the edge for `text`, both timed from the same start."""
    started = time.perf_counter()
    watch = EdgeWatch(daemon.edge_port, text, started + timeout)
    future: Future[float | None] = pool.submit(watch)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "roost", *args],
            env=daemon.env(),
            cwd=daemon.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        watch.stop.set()
        raise BenchError(f"roost {' '.join(args)} did not exit within {timeout:.0f}s") from exc
    exited = time.perf_counter() - started
    if result.returncode != 0:
        watch.stop.set()
        raise BenchError(f"roost {' '.join(args)} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    answered_at = future.result()
    if answered_at is None:
        raise BenchError(f"the edge never answered {text!r} within {timeout:.0f}s; it answered {dict(watch.seen)}")
    return Timed(exited, answered_at - started, result.stdout, result.stderr, watch.failures())


# -- pushes and rollbacks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Push:
    """A timed push and the build's own figures (build.log: "done in", "answered HTTP 200 in")."""

    deployment: str
    text: str
    times: Timed
    cli_elapsed: float  # the CLI's own clock: from after its imports to the deployment ready
    build_seconds: float  # the daemon's: unpack to ready
    build: float  # unpack, venv, bytecode ("done in", 0.1 s resolution)
    check: float  # the build check's instance answering ("answered HTTP 200 in")


def set_greeting(app_dir: Path, label: str) -> str:
    """Change the one greeting line of app.py; returns the text the app now answers."""
    source = app_dir / "app.py"
    code, count = GREETING_RE.subn(f"Hello from Flask, {label}!", source.read_text())
    if count != 1:
        raise BenchError(f"{source}: expected one line matching {GREETING_RE.pattern!r}, found {count}")
    source.write_text(code)
    return f"Hello from Flask, {label}! ("


def _figure(pattern: str, log: str) -> float:
    match = re.search(pattern, log)
    if match is None:
        raise BenchError(f"no line matching {pattern!r} in the push's build log:\n{log}")
    return float(match.group(1))


def push(pool: ThreadPoolExecutor, daemon: Daemon, app_dir: Path, label: str, timeout: float) -> Push:
    text = set_greeting(app_dir, label)
    times = timed(pool, daemon, ["push", str(app_dir), "--json", "-m", label], text, timeout)
    try:
        final: dict[str, Any] = json.loads(times.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"roost push --json printed no JSON object:\n{times.stdout}") from exc
    if final.get("status") != "ready":
        raise BenchError(f"deployment {final.get('id')} is {final.get('status')}: {final.get('error')}")
    return Push(
        deployment=final["id"],
        text=text,
        times=times,
        cli_elapsed=float(final["elapsed"]),
        build_seconds=float(final["build_seconds"]),
        build=_figure(r"==> done in ([\d.]+)s", times.stderr),
        check=_figure(r"answered HTTP \d+ in ([\d.]+)s", times.stderr),
    )


def show_uv_lines(first: Push) -> None:
    """uv's own summary of the first install: proof that the cache was empty."""
    for line in first.times.stderr.splitlines():
        if re.search(r"\b(Resolved|Prepared|Installed|Downloading|Bytecode compiled)\b", line):
            print(f"  {line.strip()}")
    print(f"first push: {first.times.exited:.2f}s exited, {first.times.answered:.2f}s on the edge", flush=True)


def rollback(pool: ThreadPoolExecutor, daemon: Daemon, texts: dict[str, str], expected: str) -> Timed:
    """`roost rollback APP` to `expected` (the previous production deployment)."""
    times = timed(pool, daemon, ["rollback", APP], texts[expected], TIMEOUT_PUSH)
    match = re.search(r"rolled back to (\w+)", times.stdout)
    if match is None or match.group(1) != expected:
        raise BenchError(f"roost rollback {APP} should have gone back to {expected}; it said:\n{times.stdout}")
    return times


def cli_startup(daemon: Daemon, runs: int) -> list[float]:
    """`roost version`: what every command pays before it does anything."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "roost", "version"], env=daemon.env(), capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return samples


# -- the run and its report ---------------------------------------------------------------------


@dataclass
class Results:
    first: Push | None = None
    redeploys: list[Push] = field(default_factory=list)
    rollbacks: list[Timed] = field(default_factory=list)
    startup: list[float] = field(default_factory=list)


def measure(daemon: Daemon, app_dir: Path, runs: int, pause: float) -> Results:
    results = Results()
    texts: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        print("first push (empty uv cache: uv downloads Flask) ...", flush=True)
        results.first = push(pool, daemon, app_dir, "first push", TIMEOUT_FIRST_PUSH)
        texts[results.first.deployment] = results.first.text
        show_uv_lines(results.first)
        production = [results.first.deployment]
        for run in range(1, runs + 1):
            time.sleep(pause)
            done = push(pool, daemon, app_dir, f"redeploy {run}", TIMEOUT_PUSH)
            print(
                f"redeploy {run}: {done.times.exited:.2f}s exited, {done.times.answered:.2f}s on the edge", flush=True
            )
            results.redeploys.append(done)
            texts[done.deployment] = done.text
            production.append(done.deployment)
        for run in range(1, runs + 1):
            time.sleep(pause)
            back = rollback(pool, daemon, texts, production[-2])
            print(f"rollback {run}: {back.exited:.2f}s exited, {back.answered:.2f}s on the edge", flush=True)
            results.rollbacks.append(back)
            production.append(production[-2])
    results.startup = cli_startup(daemon, runs)
    return results


def row(name: str, samples: list[float]) -> str:
    median = statistics.median(samples)
    return f"  {name:<60} {median:7.2f} {min(samples):7.2f} {max(samples):7.2f} {len(samples):4d}"


def breakdown_rows(pushes: list[Push]) -> list[tuple[str, list[float]]]:
    def of(part: Callable[[Push], float]) -> list[float]:
        return [part(p) for p in pushes]

    return [
        ("CLI start-up (wall minus the CLI's own clock)", of(lambda p: p.times.exited - p.cli_elapsed)),
        ("pack, upload, create, follow (CLI side)", of(lambda p: p.cli_elapsed - p.build_seconds)),
        ("build: unpack, venv, bytecode (0.1 s steps)", of(lambda p: p.build)),
        ("build check: instance answered HTTP", of(lambda p: p.check)),
        ("rest of the build (check spawn and stop, store)", of(lambda p: p.build_seconds - p.build - p.check)),
        ("exit -> edge answers new text", of(lambda p: p.times.answered - p.times.exited)),
    ]


def report(results: Results) -> None:
    assert results.first is not None
    first, redeploys, rollbacks = results.first, results.redeploys, results.rollbacks
    print(f"\n  {'seconds':<60} {'median':>7} {'min':>7} {'max':>7} {'n':>4}")
    print(row("first push (reference): push exits, ready", [first.times.exited]))
    print(row("first push: edge answers the new text", [first.times.answered]))
    print(row("redeploy: push exits, ready", [p.times.exited for p in redeploys]))
    print(row("redeploy: edge answers the new text", [p.times.answered for p in redeploys]))
    print(row("rollback: `roost rollback` exits", [r.exited for r in rollbacks]))
    print(row("rollback: edge answers the previous text", [r.answered for r in rollbacks]))
    print(row("`roost version` (CLI start-up alone)", results.startup))
    print("\n  where a push's time goes")
    for label, pushes in (("first push", [first]), ("redeploy", redeploys)):
        for name, samples in breakdown_rows(pushes):
            print(row(f"{label}: {name}", samples))
    redeploy = statistics.median(p.times.exited for p in redeploys)
    edge = statistics.median(p.times.answered for p in redeploys)
    ratio, ratio_edge = redeploy / first.times.exited, edge / first.times.answered
    print(f"\n  redeploy / first push: {ratio:.2f} (push exits), {ratio_edge:.2f} (edge answers)")
    failures = sum((p.times.edge_failures for p in redeploys), Counter()) + sum(
        (r.edge_failures for r in rollbacks), Counter()
    )
    print(f"  edge errors while redeploying or rolling back: {dict(failures) or 'none'}")
    rolled = statistics.median(r.answered for r in rollbacks)
    verdict = {True: "met", False: "MISSED"}
    print(f"  target redeploy median <= {TARGET_REDEPLOY:.0f} s (push exits): {verdict[redeploy <= TARGET_REDEPLOY]}")
    print(f"  target rollback < {TARGET_ROLLBACK:.0f} s (edge answers, median): {verdict[rolled < TARGET_ROLLBACK]}")


def prepare_app(root: Path) -> Path:
    app_dir = root / "app"
    shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("__pycache__", ".venv", "*.pyc"))
    return app_dir


def run_push_part(runs: int, pause: float) -> None:
    """The first push, redeploys and rollbacks of the Flask example on one daemon."""
    with workdir() as tmp:
        root = Path(tmp)
        daemon = start_daemon(root)
        try:
            daemon.wait_ready()
            print(f"roost serve ready: edge on 127.0.0.1:{daemon.edge_port}, home {daemon.home}", flush=True)
            results = measure(daemon, prepare_app(root), runs, pause)
        except (BenchError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
            raise SystemExit(
                f"bench/deploy.py failed: {exc}\n--- roost serve's last output ---\n{daemon.output()}"
            ) from exc
        finally:
            daemon.stop()
    report(results)


def run_builds_part(apps: list[str], modes: list[str], rounds: int) -> None:
    """Build times, cold and warm uv cache, sandbox on and off (bench/_builds.py)."""
    folders = app_folders()
    if unknown := sorted(set(apps) - set(folders)):
        raise SystemExit(f"unknown app(s) {', '.join(unknown)}; known: {', '.join(folders)}")
    unavailable = unavailable_modes(modes)
    for mode, reason in unavailable.items():
        print(f"sandbox {mode}: unavailable ({reason}); measuring the others", flush=True)
    runnable = [mode for mode in modes if mode not in unavailable]
    try:
        times = measure_builds({app: folders[app] for app in apps or folders}, runnable, rounds)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(f"bench/deploy.py failed: {exc}") from exc
    report_builds(times, modes, unavailable)


def _names(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if allowed is not None and (wrong := [name for name in names if name not in allowed]):
        raise argparse.ArgumentTypeError(f"{', '.join(wrong)}: expected some of {', '.join(allowed)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="redeploys and rollbacks (default 10)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between pushes (default 0.5)")
    parser.add_argument(
        "--part", type=lambda s: _names(s, PARTS), default=list(PARTS), help="push, builds or both (default both)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="build rounds per app and sandbox mode (default 3)")
    parser.add_argument(
        "--sandbox", type=lambda s: _names(s, ("on", "off")), default=["on", "off"], help="on, off or both (default)"
    )
    parser.add_argument("--apps", type=_names, default=[], help="apps for the build part (default: all)")
    options = parser.parse_args()
    if options.runs < 2:
        parser.error("--runs must be at least 2")
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    if "push" in options.part:
        run_push_part(options.runs, options.pause)
    if "builds" in options.part:
        run_builds_part(options.apps, options.sandbox, options.rounds)


if __name__ == "__main__":
    main()

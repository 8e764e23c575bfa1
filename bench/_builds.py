"""Build time of the examples and of a numpy/pandas app (bench/apps/numpy-pandas), cold and warm uv cache,
with and without the build sandbox (issue 25): the `builds` part of bench/deploy.py.

Cold: a fresh `roost serve` with a fresh home and an empty uv cache for every (round, app, sandbox mode), so
uv downloads everything. Warm: right after, the same app pushed into a fresh app name, with one comment line
added to its requirements.txt (created if it had none): the same packages from the now warm uv cache, but a
new venv (the builder keys venvs by the requirements' bytes and would otherwise reuse the cold push's).
Sandbox "on" is `roost serve` as it is; "off" adds `--no-build-sandbox`, and is reported unavailable when
`roost serve --help` does not offer that flag. Rounds are interleaved (on, off; then off, on; ...).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, workdir
from _daemon import BenchError, Daemon, start_daemon

NO_SANDBOX_FLAG = "--no-build-sandbox"
MODE_FLAGS = {"on": (), "off": (NO_SANDBOX_FLAG,)}
CACHES = ("cold", "warm")
APP_FOLDERS = (ROOT / "examples", ROOT / "bench" / "apps")
WARM_LINE = "# bench/deploy.py: warm push (this line gives the builder a new venv key; same packages)\n"
TIMEOUT_BUILD = 900.0
INSTALL_STEP = "install dependencies"  # roost/builder/builder.py's STEP_LABELS


@dataclass(frozen=True, slots=True)
class BuildTime:
    """One push, timed: wall time until `roost push --json` exits ready, and the build log's own figures."""

    app: str
    mode: str  # sandbox "on" or "off"
    cache: str  # "cold" or "warm"
    pushed: float  # wall: push started -> exited with the deployment ready (includes the build check)
    build: float  # the build log's "==> done in": unpack, dependencies, bytecode (0.1 s steps)
    install: float | None  # its step "install dependencies (uv)"; None if the log had no such step
    prepared: int  # packages uv downloaded or built ("Prepared N packages"); 0 when all came from its cache


def app_folders() -> dict[str, Path]:
    """Every example and bench app with a roost.toml, by folder name."""
    found = {path.parent.name: path.parent for folder in APP_FOLDERS for path in folder.glob("*/roost.toml")}
    return dict(sorted(found.items()))


def unavailable_modes(modes: Iterable[str]) -> dict[str, str]:
    """The sandbox modes this `roost serve` cannot run, with the reason."""
    if "off" not in modes:
        return {}
    shown = subprocess.run(
        [sys.executable, "-m", "roost", "serve", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    if NO_SANDBOX_FLAG in shown.stdout:
        return {}
    return {"off": f"`roost serve` has no {NO_SANDBOX_FLAG} here"}


def warm_copy(app_dir: Path, root: Path) -> Path:
    """A copy of the app whose requirements.txt differs by one comment line."""
    copy = root / f"{app_dir.name}-warm"
    shutil.copytree(app_dir, copy, ignore=shutil.ignore_patterns("__pycache__", ".venv", "*.pyc"))
    requirements = copy / "requirements.txt"
    before = requirements.read_text() if requirements.exists() else ""
    requirements.write_text(before + WARM_LINE)
    return copy


def timed_push(daemon: Daemon, app_dir: Path, name: str) -> tuple[float, float, float | None, int]:
    """Push `app_dir` as `name`: wall seconds, the build log's "done in", its install step's seconds
    (from `--json`'s steps) and the packages uv prepared."""
    argv = [sys.executable, "-m", "roost", "push", str(app_dir), "--name", name, "--json"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=daemon.env(), capture_output=True, text=True, timeout=TIMEOUT_BUILD)
    pushed = time.perf_counter() - started
    try:
        final: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"roost push {name} printed no JSON object:\n{done.stdout}\n{done.stderr}") from exc
    if done.returncode != 0 or final.get("status") != "ready":
        raise BenchError(f"push of {name} ended {final.get('status')}: {final.get('error')}\n{done.stderr}")
    built = re.search(r"==> done in ([\d.]+)s", done.stderr)
    if built is None:
        raise BenchError(f"no '==> done in' in the build log of {name}:\n{done.stderr}")
    prepared = re.search(r"Prepared (\d+) packages?", done.stderr)
    steps = final.get("steps") or []
    install = next((float(s["seconds"]) for s in steps if str(s.get("name", "")).startswith(INSTALL_STEP)), None)
    return pushed, float(built.group(1)), install, int(prepared.group(1)) if prepared else 0


def one_daemon(app: str, app_dir: Path, mode: str) -> list[BuildTime]:
    """A fresh daemon and uv cache: the cold push, then the warm one into a fresh app name."""
    with workdir() as tmp:
        root = Path(tmp)
        daemon = start_daemon(root, *MODE_FLAGS[mode])
        try:
            daemon.wait_ready()
            times = []
            for cache, folder, name in (("cold", app_dir, app), ("warm", warm_copy(app_dir, root), f"{app}-warm")):
                pushed, build, install, prepared = timed_push(daemon, folder, name)
                times.append(BuildTime(app, mode, cache, pushed, build, install, prepared))
                shown = f"{install:6.2f}s" if install is not None else "     -"
                print(
                    f"  {app:<14} sandbox {mode:<3} {cache}: build {build:5.1f}s, uv {shown}, push {pushed:6.2f}s",
                    flush=True,
                )
            return times
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- roost serve's last output ---\n{daemon.output()}") from exc
        finally:
            daemon.stop()


def measure_builds(apps: dict[str, Path], modes: list[str], rounds: int) -> list[BuildTime]:
    """Interleaved rounds: per app, one fresh daemon per mode, the modes' order flipped every round."""
    times: list[BuildTime] = []
    for number in range(rounds):
        print(f"build round {number + 1} of {rounds}", flush=True)
        order = modes if number % 2 == 0 else modes[::-1]
        for app, app_dir in apps.items():
            for mode in order:
                times.extend(one_daemon(app, app_dir, mode))
    return times


ROWS = (("build", "build"), ("  of which uv install", "install"), ("push to ready", "pushed"))


def _series(times: list[BuildTime], app: str, cache: str, mode: str, attribute: str) -> list[float]:
    found = (getattr(t, attribute) for t in times if (t.app, t.cache, t.mode) == (app, cache, mode))
    return [value for value in found if value is not None]


def _cell(samples: list[float]) -> str:
    if not samples:
        return f"{'-':>23}"
    return f"{statistics.median(samples):7.2f} [{min(samples):6.2f}-{max(samples):6.2f}]"


def _ratio(on: list[float], off: list[float]) -> str:
    if not on or not off:
        return f"{'-':>7}"
    return f"{statistics.median(on) / statistics.median(off):7.2f}"


def report_builds(times: list[BuildTime], modes: list[str], unavailable: dict[str, str]) -> None:
    """Medians [min-max] per app, cache and sandbox mode, and the ratio sandbox on / off."""
    apps = sorted({t.app for t in times})
    print("\n  build times, seconds: median [min-max] over the rounds")
    for mode, reason in unavailable.items():
        print(f"  sandbox {mode}: unavailable ({reason})")
    print(f"  {'app, cache, what':<46}  {'sandbox on':>23}  {'sandbox off':>23}  {'on/off':>7}")
    for app in apps:
        for cache in CACHES:
            for what, attribute in ROWS:
                series = {mode: _series(times, app, cache, mode, attribute) for mode in ("on", "off")}
                on, off = series["on"], series["off"]
                label = f"{app} {cache}: {what}"
                print(f"  {label:<46}  {_cell(on)}  {_cell(off)}  {_ratio(on, off)}")
    for cache in CACHES:
        prepared = [t.prepared for t in times if t.cache == cache]
        if prepared:
            print(f"  {cache} pushes: uv prepared (downloaded or built) {min(prepared)}-{max(prepared)} packages")
    total = {
        (mode, cache): sum(
            statistics.median(t.build for t in times if (t.app, t.cache, t.mode) == (app, cache, mode)) for app in apps
        )
        for mode in modes
        for cache in CACHES
        if mode not in unavailable
    }
    for cache in CACHES:
        on, off = total.get(("on", cache)), total.get(("off", cache))
        ratio = f", on/off {on / off:.2f}" if on is not None and off else ""
        shown = ", ".join(f"sandbox {mode} {total[(mode, cache)]:.1f}s" for mode in modes if (mode, cache) in total)
        print(f"  all apps, {cache}, sum of median builds: {shown}{ratio}")

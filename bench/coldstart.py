"""Cold start of the FastAPI example as a function with zero instances: time from a request to
the first response byte, (a) forked from a resident zygote, (b) with the zygote evicted, (c) the
ordinary way, `uvicorn main:app` as a new process. Targets: (a) median <= 15 ms, (c)/(a) >= 40.

The runtime runs with the sandbox this host offers (cgroups, bubblewrap, seccomp, own uid as
root), as `roost serve` does; `--no-sandbox` runs the same measurements with it off, so the two
runs give the sandbox's per-instance cost on a cold start.

`--firewall` (root and nft) measures instead (a), a fork from a resident zygote, with Roost's
nftables table around the instance ports and without it, in alternating rounds (the order
flips each round), and prints both medians and the median of the rounds' with/without ratios.

`--view` (as root) measures what the launcher's mount namespace adds: the private /proc every app
gets as root, and (root without bubblewrap) the view that shows an app's uid the interpreter,
runner, code, venv and TMPDIR when a directory above them is closed to it (the bench's home is
in a 0700 temporary folder). Interleaved rounds of (b)
with the apps as their own uid (view) and as root (nothing hidden, no view), bubblewrap off in
both; a fork inherits its zygote's view, so (a) pays nothing.

Run: .venv/bin/python bench/coldstart.py [SAMPLES] [--no-sandbox | --firewall | --view]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import uvloop
from _common import EXAMPLE, Recorder, build_venv, first_byte, free_port, summary, workdir

from roost.applog import LogBook
from roost.model import AppConfig, AppName, DeploymentId, Mode, ScaleConfig
from roost.runtime import DeploymentSpec, LocalRuntime
from roost.runtime.sandbox import SandboxSettings

SAMPLES = next((int(arg) for arg in sys.argv[1:] if arg.isdigit()), 20)
SANDBOX = SandboxSettings(enabled="--no-sandbox" not in sys.argv[1:])
FIREWALL_ROUNDS = 6
ROUNDS_VIEW = 4


async def activate(runtime: LocalRuntime, recorder: Recorder, deployment: DeploymentId) -> float:
    """What the edge does for a request that finds no instance; seconds to the first byte."""
    started = time.perf_counter()
    slot = runtime.try_acquire(deployment)
    while slot is None:
        recorder.wake.clear()
        runtime.request_capacity(deployment, 1)
        await recorder.wake.wait()
        slot = runtime.try_acquire(deployment)
    try:
        await first_byte(slot.host, slot.port)
        return time.perf_counter() - started
    finally:
        slot.release()


async def forked(
    runtime: LocalRuntime, recorder: Recorder, spec: DeploymentSpec, evict: bool, pause: float, samples_n: int
) -> list[float]:
    def count(kind: str) -> int:
        return sum(1 for k, _ in recorder.events if k == kind)

    samples = []
    for sample in range(samples_n):
        if evict:
            await recorder.until(lambda: count("zygote.evicted") > sample)  # noqa: B023 - awaited at once
        else:
            await recorder.until(lambda: count("zygote.started") > 0)
            await asyncio.sleep(pause)  # with a pause, the zygote's next spare is warm when the request comes
        samples.append(await activate(runtime, recorder, spec.deployment))
        await runtime.drain(spec.deployment)
    return samples


async def uvicorn_fresh(venv: Path) -> list[float]:
    samples = []
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(SAMPLES):
        port = free_port()
        argv = [
            str(venv / "bin" / "python"),
            "-m",
            "uvicorn",
            "main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=EXAMPLE, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    await first_byte("127.0.0.1", port)
                    break
                except OSError:
                    await asyncio.sleep(0.002)
            samples.append(time.perf_counter() - started)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return samples


def spec_for(venv: Path, deployment: str) -> DeploymentSpec:
    config = AppConfig(entrypoint="main:app", mode=Mode.FUNCTION, scale=ScaleConfig(concurrency=10, idle_timeout=300))
    return DeploymentSpec(AppName("fastapi-hello"), DeploymentId(deployment), EXAMPLE, venv, config)


async def run_runtime(
    home: Path,
    venv: Path,
    zygote_idle: float,
    deployment: str,
    pause: float = 0.0,
    sandbox: SandboxSettings = SANDBOX,
    samples: int = SAMPLES,
) -> list[float]:
    recorder = Recorder()
    logs = LogBook(home / "logs")
    runtime = LocalRuntime(home, logs, recorder, zygote_idle=zygote_idle, idle_check_interval=0.02, sandbox=sandbox)
    runtime.subscribe(recorder)
    await runtime.start()
    print(f"  {runtime.sandbox.summary()}", flush=True)
    try:
        spec = spec_for(venv, deployment)
        await runtime.deploy(spec)
        return await forked(runtime, recorder, spec, evict=zygote_idle < 1, pause=pause, samples_n=samples)
    finally:
        await runtime.close()
        logs.close()


async def firewall_rounds() -> None:
    """(a) with the firewall table and without, alternating; the table is the runtime's own."""
    samples: dict[str, list[float]] = {"with": [], "without": []}
    ratios: list[float] = []
    with workdir() as tmp:
        root = Path(tmp)
        print(f"building the FastAPI example's venv in {root} ...", flush=True)
        venv = build_venv(root)
        for index in range(FIREWALL_ROUNDS):
            medians: dict[str, float] = {}
            for name in ("with", "without") if index % 2 == 0 else ("without", "with"):
                settings = replace(SANDBOX, firewall=name == "with")
                home, deployment = root / f"home-{name}-{index}", f"bench{name[:2]}{index}"
                taken = await run_runtime(home, venv, 1800.0, deployment, pause=0.2, sandbox=settings)
                samples[name] += taken
                medians[name] = statistics.median(taken)
            ratios.append(medians["with"] / medians["without"])
            print(
                f"  round {index + 1}: with {medians['with'] * 1000:.1f} ms, without {medians['without'] * 1000:.1f} ms"
            )
    print(f"(a) with the firewall    {summary(samples['with'])}")
    print(f"(a) without the firewall {summary(samples['without'])}")
    print(f"with/without {statistics.median(ratios):.3f} (median of the rounds' ratios of medians)")


def launcher_alone(root: Path, venv: Path, rounds: int = 40) -> None:
    """The launcher starting /bin/true as root with no namespace (the reference), as an app's uid
    with its private /proc, and with that /proc and the view an instance gets: interleaved
    rounds, so each one's own cost shows without an app's import around it."""
    from roost.runtime.sandbox.confine import Confinement, LauncherPlan
    from roost.runtime.sandbox.reveal import paths_for

    (root / "run" / "tmp").mkdir(parents=True, exist_ok=True)
    reveal = paths_for(EXAMPLE, venv, root / "run" / "tmp" / "i1")
    plans = {
        "as root, nothing": LauncherPlan(),
        "own uid, /proc": LauncherPlan(uid=200999, gid=200999, hide_processes=True),
        "own uid, /proc + view": LauncherPlan(uid=200999, gid=200999, reveal=reveal, hide_processes=True),
    }
    times: dict[str, list[float]] = {name: [] for name in plans}
    for _ in range(rounds):
        for name, plan in plans.items():
            argv = Confinement(plan, None).command(["/bin/true"])
            started = time.perf_counter()
            subprocess.run(argv, check=True, cwd="/")
            times[name].append(time.perf_counter() - started)
    reference = statistics.median(times["as root, nothing"])
    for name, samples in times.items():
        m = statistics.median(samples)
        print(f"launcher, {name:22} {summary(samples)}  x{m / reference:.3f} ({1000 * (m - reference):+.1f} ms)")


async def view_cost() -> None:
    """(b) as the apps' own uid (the launcher's view) against (b) as root (no view), interleaved."""
    own, as_root = SandboxSettings(bwrap=False), SandboxSettings(bwrap=False, separate_users=False)
    per_round = max(1, SAMPLES // ROUNDS_VIEW)
    with workdir() as tmp:
        root = Path(tmp)
        print(f"building the FastAPI example's venv in {root} (mode {os.stat(root).st_mode & 0o777:o}) ...", flush=True)
        venv = build_venv(root)
        launcher_alone(root, venv)
        viewed: list[float] = []
        plain: list[float] = []
        for n in range(ROUNDS_VIEW):
            viewed += await run_runtime(
                root / f"home-v{n}", venv, 0.05, f"benchv{n:03d}", sandbox=own, samples=per_round
            )
            plain += await run_runtime(
                root / f"home-r{n}", venv, 0.05, f"benchr{n:03d}", sandbox=as_root, samples=per_round
            )
            print(
                f"  round {n + 1}: view {summary(viewed[-per_round:])}   root {summary(plain[-per_round:])}", flush=True
            )
    print(f"(b) own uid, launcher's view      {summary(viewed)}")
    print(f"(b) as root, no view              {summary(plain)}")
    v, r = statistics.median(viewed), statistics.median(plain)
    print(f"view/root = {v / r:.3f}   difference of medians {1000 * (v - r):+.1f} ms")


async def main() -> None:
    if "--firewall" in sys.argv[1:]:
        await firewall_rounds()
        return
    if "--view" in sys.argv[1:]:
        await view_cost()
        return
    with workdir() as tmp:
        root = Path(tmp)
        print(f"building the FastAPI example's venv in {root} ...", flush=True)
        venv = build_venv(root)
        resident = await run_runtime(root / "home-a", venv, 1800.0, "benchaaa", pause=0.2)
        back_to_back = await run_runtime(root / "home-a2", venv, 1800.0, "benchaa2", pause=0.0)
        evicted = await run_runtime(root / "home-b", venv, 0.05, "benchbbb")
        fresh = await uvicorn_fresh(venv)
    a, c = statistics.median(resident), statistics.median(fresh)
    print(f"(a) fork from a resident zygote   {summary(resident)}")
    print(f"(a') back to back, no pause     {summary(back_to_back)}")
    print(f"(b) zygote evicted (full import)  {summary(evicted)}")
    print(f"(c) uvicorn main:app, new process {summary(fresh)}")
    print(f"(c)/(a) = {c / a:.0f}x   (b)/(a) = {statistics.median(evicted) / a:.0f}x")
    print(
        f"target (a) <= 15 ms: {'met' if a <= 0.015 else 'MISSED'}; (c)/(a) >= 40: {'met' if c / a >= 40 else 'MISSED'}"
    )


if __name__ == "__main__":
    uvloop.run(main())

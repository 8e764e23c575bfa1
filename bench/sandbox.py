"""What the sandbox costs a cold start, in one run: the FastAPI example as a function with zero
instances, time from a request to the first response byte, with the sandbox on (cgroups,
bubblewrap, seccomp, own uid as root) and off, for (a) a fork from a resident zygote and
(b) a fresh instance (preload = false, the full import). Also the cgroup work on the fork
path (create a group with limits, move a pid in, remove it), which runs on the event loop.

Each is measured with the default limits.cpu = 0.5 (the CPU quota slows a fresh import down
about twice, which is the limit doing its job, not overhead) and with cpu = 2.

Run: .venv/bin/python bench/sandbox.py [SAMPLES]
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import uvloop
from _common import Recorder, build_venv, summary, workdir
from coldstart import activate, spec_for

from roost.applog import LogBook
from roost.model import LimitsConfig
from roost.runtime import DeploymentSpec, LocalRuntime
from roost.runtime.sandbox import Sandbox, SandboxSettings

SAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 15


async def cold_starts(home: Path, spec: DeploymentSpec, sandbox: SandboxSettings) -> list[float]:
    recorder = Recorder()
    logs = LogBook(home / "logs")
    runtime = LocalRuntime(home, logs, recorder, idle_check_interval=0.05, sandbox=sandbox)
    runtime.subscribe(recorder)
    await runtime.start()
    print(f"  {runtime.sandbox.summary()}", flush=True)
    try:
        await runtime.deploy(spec)
        if spec.config.preload:
            await recorder.until(lambda: any(k == "zygote.started" for k, _ in recorder.events))
        samples = []
        for _ in range(SAMPLES):
            await asyncio.sleep(0.2)  # the zygote's next spare is warm, as between real requests
            samples.append(await activate(runtime, recorder, spec.deployment))
            await runtime.drain(spec.deployment)
        return samples
    finally:
        await runtime.close()
        logs.close()


async def cgroup_costs(home: Path) -> list[float]:
    """Create (with limits) + move one pid in + remove: what a forked start adds on the loop."""
    sandbox = Sandbox(SandboxSettings(cgroup_parent="roost-bench"), home)
    await sandbox.detect()
    if not sandbox.has_cgroups():
        return []
    samples = []
    process = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        for index in range(SAMPLES * 4):
            started = time.perf_counter()
            group = sandbox.cgroup(f"bench{index}", LimitsConfig())
            assert group is not None
            group.add(process.pid)
            samples.append(time.perf_counter() - started)
            group.remove()  # the daemon does this in a thread; measured apart from the fork path
    finally:
        process.kill()
        await process.wait()
    return samples


async def main() -> None:
    with workdir() as tmp:
        root = Path(tmp)
        print(f"building the FastAPI example's venv in {root} ...", flush=True)
        venv = build_venv(root)
        forked = spec_for(venv, "benchfork")
        fresh = spec_for(venv, "benchfrsh")
        fresh = dataclasses.replace(fresh, config=dataclasses.replace(fresh.config, preload=False))
        # limits.cpu = 2 (this machine's cores): the sandbox's own cost, without the CPU quota's slowdown
        unthrottled = dataclasses.replace(fresh.config, limits=dataclasses.replace(fresh.config.limits, cpu=2.0))
        fresh_fast = dataclasses.replace(fresh, deployment="benchfrs2", config=unthrottled)
        fork_fast = dataclasses.replace(
            forked, deployment="benchfrk2", config=dataclasses.replace(unthrottled, preload=True)
        )
        results = {}
        for label, spec in (("fork", forked), ("fresh", fresh), ("fork cpu=2", fork_fast), ("fresh cpu=2", fresh_fast)):
            for on in (False, True):
                name = f"{label} sandbox {'on' if on else 'off'}"
                print(f"{name}:", flush=True)
                settings = SandboxSettings(enabled=on)
                results[name] = await cold_starts(root / name.replace(" ", "-"), spec, settings)
        cgroups = await cgroup_costs(root / "cgroups")
    for name, samples in results.items():
        print(f"{name:<24} {summary(samples)}")
    for label in ("fork", "fresh", "fork cpu=2", "fresh cpu=2"):
        on, off = statistics.median(results[f"{label} sandbox on"]), statistics.median(results[f"{label} sandbox off"])
        print(f"{label}: the sandbox adds {(on - off) * 1000:+.1f} ms to the median")
    if cgroups:
        print(f"cgroup create + limits + move a pid (on the loop): {summary(cgroups)}")


if __name__ == "__main__":
    uvloop.run(main())

"""Memory density: 50 warm instances of the FastAPI example forked from one zygote, against 50
separately started `uvicorn main:app` processes. Total PSS (shared pages split fairly among the
processes sharing them) and per-instance USS (pages only that process holds).
Target: the forked set needs at most a third of the memory.

Run: .venv/bin/python bench/density.py [COUNT]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import psutil
import uvloop
from _common import EXAMPLE, Recorder, build_venv, first_byte, free_port, workdir

from roost.applog import LogBook
from roost.model import AppConfig, AppName, DeploymentId, Mode, ScaleConfig
from roost.runtime import DeploymentSpec, LocalRuntime

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 50
MB = 1024 * 1024


def memory(pids: list[int]) -> tuple[int, list[int]]:
    """(total PSS, USS of each) of `pids`, in bytes."""
    total, uss = 0, []
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        total += info.pss
        uss.append(info.uss)
    return total, uss


async def forked_set(root: Path, venv: Path) -> tuple[int, list[int], int]:
    recorder = Recorder()
    logs = LogBook(root / "logs")
    runtime = LocalRuntime(root / "home", logs, recorder)
    runtime.subscribe(recorder)
    config = AppConfig(
        entrypoint="main:app", mode=Mode.FUNCTION, scale=ScaleConfig(max=COUNT, concurrency=1, idle_timeout=600)
    )
    spec = DeploymentSpec(AppName("fastapi-hello"), DeploymentId("densitya"), EXAMPLE, venv, config)
    try:
        await runtime.deploy(spec)
        await runtime.scale_to(spec.deployment, COUNT, "density benchmark")
        slots = [runtime.try_acquire(spec.deployment) for _ in range(COUNT)]
        for slot in slots:
            assert slot is not None
            await first_byte(slot.host, slot.port)  # warm: each instance has served once
            slot.release()
        instances = [i.pid for i in runtime.instances(spec.deployment) if i.pid is not None]
        zygote = next(pid for pid in (psutil.Process(p).ppid() for p in instances))
        spare = [c.pid for c in psutil.Process(zygote).children() if c.pid not in instances]
        total, uss = memory([zygote, *spare, *instances])
        return total, uss[1 + len(spare) :], len(instances)
    finally:
        await runtime.close()
        logs.close()


async def separate_set(venv: Path) -> tuple[int, list[int]]:
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}
    processes: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for port in (free_port() for _ in range(COUNT)):
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
            process = subprocess.Popen(argv, cwd=EXAMPLE, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
            processes.append((process, port))
        for _, port in processes:
            for _ in range(3000):
                try:
                    await first_byte("127.0.0.1", port)
                    break
                except OSError:
                    await asyncio.sleep(0.01)
        return memory([p.pid for p, _ in processes])
    finally:
        for process, _ in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _mb(values: list[int]) -> str:
    return f"{statistics.median(values) / MB:5.1f}"


def _mb(values: list[int]) -> str:
    return f"{statistics.median(values) / MB:5.1f}"


async def main() -> None:
    with workdir() as tmp:
        root = Path(tmp)
        print(f"building the FastAPI example's venv in {root} ...", flush=True)
        venv = build_venv(root)
        forked_total, forked_uss, count = await forked_set(root, venv)
        separate_total, separate_uss = await separate_set(venv)
    assert count == COUNT, count
    print(f"{COUNT} instances forked from one zygote (zygote and spare included):")
    print(f"    total PSS {forked_total / MB:8.1f} MB   USS per instance: median {_mb(forked_uss)} MB")
    print(f"{COUNT} separate `uvicorn main:app` processes:")
    print(f"    total PSS {separate_total / MB:8.1f} MB   USS per instance: median {_mb(separate_uss)} MB")
    ratio = forked_total / separate_total
    print(
        f"forked / separate = {ratio:.2f} (1/{1 / ratio:.1f})   target <= 1/3: {'met' if ratio <= 1 / 3 else 'MISSED'}"
    )


if __name__ == "__main__":
    uvloop.run(main())

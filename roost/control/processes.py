"""Process types as use cases: which deployment runs them, their build check, `roost scale
--process`. The runtime keeps them (`Runtime.deploy` carries their counts); this module only
decides the counts and checks a new deployment's types before it may take traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from roost.config import merge, validate, with_overrides
from roost.errors import BuildFailed, ConfigError, Conflict
from roost.model import App, AppConfig, AppName, Traffic
from roost.runtime.protocol import DeploymentSpec, Runtime
from roost.store import Store

Reconcile = Callable[[AppName], Coroutine[Any, Any, None]]
Say = Callable[[str], None]


def without_processes(config: AppConfig) -> AppConfig:
    """The settings of a deployment that is not production: its process types run 0 each (a
    preview or a canary must not consume production's queue twice)."""
    if not config.processes:
        return config
    return replace(config, processes=tuple(replace(p, count=0) for p in config.processes))


async def check_processes(runtime: Runtime, spec: DeploymentSpec, say: Say) -> None:
    """The build check of each process type, one after the other: one instance must stay up for
    its `ready_after`. Raises BuildFailed with the type's own last lines (`say` prints them)."""
    for process in spec.config.processes:
        say(f"==> build check: process type '{process.name}' must stay up {process.ready_after:g}s")
        result = await runtime.probe_process(spec, process.name)
        if not result.ok:
            for line in result.output.splitlines()[-40:]:
                say(f"    {line}")
            raise BuildFailed(
                f"build check failed: {result.message}",
                hint=f"the command of '{process.name}' ({process.command}) must keep running; its output is above",
            )
        say(f"    {result.message} ({result.seconds:.1f}s)")


class ProcessUseCases:
    """`roost scale APP --process worker=3`: counts kept with the app's other `roost scale` changes."""

    def __init__(self, store: Store, reconcile: Reconcile) -> None:
        self.store = store
        self.reconcile = reconcile

    async def set_process_counts(self, app: str, counts: Mapping[str, int]) -> App:
        """Set how many instances of each named process type production runs; they survive
        pushes and daemon restarts. Raises ConfigError for a type production does not have."""
        record = await self.store.get_app(app)
        if not counts:
            return record
        production = await self._production_config(record)
        known = sorted(p.name for p in production.processes)
        for name in counts:
            if name not in known:
                raise ConfigError(
                    f"app '{app}' has no process type '{name}'",
                    hint=f"its process types: {', '.join(known)}"
                    if known
                    else "it has none: name them in [processes] of roost.toml (or a Procfile) and push",
                )
        layer = validate({"processes": {name: {"count": n} for name, n in counts.items()}}, "roost scale --process")
        overrides = merge(record.overrides, layer)
        with_overrides(production, overrides)  # or ConfigError
        updated = await self.store.set_overrides(app, overrides)
        said = ", ".join(f"{name}={n}" for name, n in counts.items())
        await self.store.add_event(app, "scale.processes", f"process counts changed: {said}", dict(counts))
        await self.reconcile(record.name)
        return updated

    async def _production_config(self, record: App) -> AppConfig:
        top = Traffic.of(await self.store.get_traffic(record.name)).production
        if top is None:
            raise Conflict(
                f"app '{record.name}' has no production deployment",
                hint="push it first: the process types counted are those of production (roost push)",
            )
        return (await self.store.get_deployment(record.name, top)).config

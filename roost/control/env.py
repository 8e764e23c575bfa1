"""Environment use cases: secrets set with `roost env`, encrypted at rest, applied by
a rolling restart without a rebuild. Values never reach events or logs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from roost.control.lifecycle import LifecycleUseCases
from roost.control.secrets import Secrets
from roost.errors import UsageError
from roost.model import ENV_NAME_PATTERN, AppName
from roost.store import Store

NAME_RE = re.compile(ENV_NAME_PATTERN)  # the admin API's schema carries it and RESERVED too
RESERVED = frozenset({"PORT", "TMPDIR", "HOME", "PATH", "ROOST_APP", "ROOST_DEPLOYMENT", "ROOST_INSTANCE"})
MASK = "********"


@dataclass(frozen=True, slots=True)
class EnvEntry:
    name: str
    value: str
    source: str  # "roost env" or "roost.toml"


def check_env_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a valid variable name", hint="use letters, digits and '_', not starting with a digit"
        )
    if name in RESERVED:
        raise UsageError(f"{name} is set by Roost itself", hint="choose another name")
    return name


class EnvUseCases:
    """`roost env`: set, unset and list an app's secrets; a change reconciles the app."""

    def __init__(self, store: Store, secrets: Secrets, lifecycle: LifecycleUseCases) -> None:
        self.store = store
        self.secrets = secrets
        self.lifecycle = lifecycle

    async def set_env(self, app: str, values: Mapping[str, str]) -> list[str]:
        await self.store.get_app(app)
        if not values:
            raise UsageError("nothing to set", hint=f"roost env {app} set NAME=value")
        names = [check_env_name(name) for name in values]
        await self.store.secrets.set_secrets(app, {name: self.secrets.seal(values[name]) for name in names})
        await self.store.add_event(app, "env.set", f"set {', '.join(sorted(names))}; rolling restart", {"names": names})
        await self.lifecycle.reconcile(AppName(app))
        return sorted(names)

    async def unset_env(self, app: str, names: list[str]) -> list[str]:
        await self.store.get_app(app)
        removed = await self.store.secrets.unset_secrets(app, names)
        if removed:
            await self.store.add_event(
                app, "env.unset", f"unset {', '.join(sorted(removed))}; rolling restart", {"names": removed}
            )
            await self.lifecycle.reconcile(AppName(app))
        return removed

    async def list_env(self, app: str, reveal: bool) -> list[EnvEntry]:
        record = await self.store.get_app(app)
        secrets = await self.secrets.secrets_of(app)
        entries = {name: EnvEntry(name, value, "roost.toml") for name, value in record.config.env.items()}
        for name, value in secrets.items():
            entries[name] = EnvEntry(name, value if reveal else MASK, "roost env")
        return [entries[name] for name in sorted(entries)]

"""Environment use cases: secrets set with `roost env`, encrypted at rest, applied by
a rolling restart without a rebuild. Values never reach events or logs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from roost.control.core import AppUseCases
from roost.errors import UsageError
from roost.model import ENV_NAME_PATTERN, AppConfig, AppName
from roost.vault import Vault

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


class EnvUseCases(AppUseCases):
    vault: Vault

    async def secrets_of(self, app: str) -> dict[str, str]:
        return {name: self.vault.decrypt(value) for name, value in (await self.store.secrets(app)).items()}

    async def app_env(self, app: str, config: AppConfig) -> dict[str, str]:
        """What an instance sees: roost.toml's [env], then `roost env` on top."""
        return {**config.env, **await self.secrets_of(app)}

    async def set_env(self, app: str, values: Mapping[str, str]) -> list[str]:
        await self.store.get_app(app)
        if not values:
            raise UsageError("nothing to set", hint=f"roost env {app} set NAME=value")
        names = [check_env_name(name) for name in values]
        await self.store.set_secrets(app, {name: self.vault.encrypt(values[name]) for name in names})
        await self.store.add_event(app, "env.set", f"set {', '.join(sorted(names))}; rolling restart", {"names": names})
        await self.reconcile(AppName(app))
        return sorted(names)

    async def unset_env(self, app: str, names: list[str]) -> list[str]:
        await self.store.get_app(app)
        removed = await self.store.unset_secrets(app, names)
        if removed:
            await self.store.add_event(
                app, "env.unset", f"unset {', '.join(sorted(removed))}; rolling restart", {"names": removed}
            )
            await self.reconcile(AppName(app))
        return removed

    async def list_env(self, app: str, reveal: bool) -> list[EnvEntry]:
        record = await self.store.get_app(app)
        secrets = await self.secrets_of(app)
        entries = {name: EnvEntry(name, value, "roost.toml") for name, value in record.config.env.items()}
        for name, value in secrets.items():
            entries[name] = EnvEntry(name, value if reveal else MASK, "roost env")
        return [entries[name] for name in sorted(entries)]

    async def reconcile(self, app: AppName) -> None:
        """Bring the router and the runtime in line with the store (LifecycleUseCases)."""
        raise NotImplementedError

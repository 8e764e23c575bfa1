"""Reading an app's secrets (`roost env`), kept encrypted in the store, for the instances it starts."""

from __future__ import annotations

from roost.model import AppConfig
from roost.store import Store
from roost.vault import Vault


class Secrets:
    """An app's decrypted secrets and the environment its instances see."""

    def __init__(self, store: Store, vault: Vault) -> None:
        self.store = store
        self.vault = vault

    def seal(self, value: str) -> str:
        """A value as the store keeps it (encrypted with the home's key)."""
        return self.vault.encrypt(value)

    async def secrets_of(self, app: str) -> dict[str, str]:
        return {name: self.vault.decrypt(value) for name, value in (await self.store.secrets.sealed(app)).items()}

    async def app_env(self, app: str, config: AppConfig) -> dict[str, str]:
        """What an instance sees: roost.toml's [env], then `roost env` on top."""
        return {**config.env, **await self.secrets_of(app)}

"""The audit trail of the admin API: who did what to which app, from where, and how it ended.

The API's auth middleware calls `AuditTrail.record` once per call that changes something; other
use cases (a secret revealed) call it the same way with their own `action`. Never parses a body.
"""

from __future__ import annotations

from typing import Protocol

from roost.model import is_valid_app_name
from roost.store import AuditEntry, AuditQuery, Store


class Actor(Protocol):
    """Who made a call, as the API's auth knows them (roost.api.Identity)."""

    @property
    def name(self) -> str: ...  # user or token name; "local" for the Unix socket
    @property
    def kind(self) -> str: ...  # "socket", "loopback", "password", "token"
    @property
    def address(self) -> str: ...  # client address, or "unix-socket"


def app_of(path: str) -> str | None:
    """The app an API path is about: `/v1/apps/shop/scale` -> `shop`; None for other paths."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "v1" and parts[2] == "apps" and is_valid_app_name(parts[3]):
        return parts[3]
    return None


class AuditTrail:
    """Writes and reads the audit trail in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, who: Actor, method: str, path: str, status: int, action: str = "") -> None:
        """Record one call: `action` names it when the method does not say enough (`secret.reveal`)."""
        await self.store.audit.add_audit(
            app_of(path), who.name, who.kind, who.address, method, path, action or method, status
        )

    async def entries(self, query: AuditQuery) -> list[AuditEntry]:
        """The newest `query.limit` matching entries, oldest first."""
        return await self.store.audit.list_audit(query)

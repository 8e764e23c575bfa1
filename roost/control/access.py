"""Access use cases: API tokens. A token is shown once; only its hash is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

from roost.control.core import ControlBase
from roost.errors import UsageError

TOKEN_PREFIX = "roost_"  # noqa: S105 - a visible prefix, not a secret
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # noqa: S105 - a rule, not a secret; the API schema has it
TOKEN_NAME_RE = re.compile(TOKEN_NAME_PATTERN)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessUseCases(ControlBase):
    async def create_token(self, name: str) -> str:
        """Make a token named `name`; returns the token itself (the only time it is seen)."""
        if not TOKEN_NAME_RE.fullmatch(name):
            raise UsageError(f"'{name}' is not a valid token name", hint="use letters, digits, '.', '_' or '-'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.store.create_token(name, hash_token(token))
        await self.store.add_event(None, "token.created", f"token {name} created")
        return token

    async def revoke_token(self, name: str) -> None:
        await self.store.revoke_token(name)
        await self.store.add_event(None, "token.revoked", f"token {name} revoked")

    async def list_tokens(self) -> list[tuple[str, float, float | None]]:
        return await self.store.list_tokens()

    async def token_name(self, token: str) -> str | None:
        """Who a presented token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        return await self.store.token_name(hash_token(token))

"""Access use cases: API tokens and their grants. A token is shown once; only its hash is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from roost.errors import UsageError
from roost.grants import Grants
from roost.store import Store
from roost.store.tokens import TokenRecord

TOKEN_PREFIX = "roost_"  # noqa: S105 - a visible prefix, not a secret
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # noqa: S105 - a rule, not a secret; the API schema has it
TOKEN_NAME_RE = re.compile(TOKEN_NAME_PATTERN)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as `roost token list` shows it (never the token itself).

    `user` set: the token was made by that password user (`roost login`) and acts with the
    user's grants of the moment, read from the password file at each request; `grants` is then
    unused. Otherwise `grants` are the token's own."""

    name: str
    grants: Grants
    user: str | None
    created_at: float
    last_used_at: float | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenInfo:
        """The stored row, its grants decoded."""
        return cls(record.name, Grants.decode(record.grants), record.user, record.created_at, record.last_used_at)


class AccessUseCases:
    """API tokens: create, revoke, list, and who a presented token is."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create_token(self, name: str, grants: Grants, user: str | None = None) -> str:
        """Make a token named `name`; returns the token itself (the only time it is seen)."""
        if not TOKEN_NAME_RE.fullmatch(name):
            raise UsageError(f"'{name}' is not a valid token name", hint="use letters, digits, '.', '_' or '-'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.store.tokens.create_token(name, hash_token(token), grants.encode(), user)
        rights = f"for user {user}" if user else grants.describe()
        await self.store.add_event(None, "token.created", f"token {name} created ({rights})")
        return token

    async def revoke_token(self, name: str) -> None:
        await self.store.tokens.revoke_token(name)
        await self.store.add_event(None, "token.revoked", f"token {name} revoked")

    async def list_tokens(self) -> list[TokenInfo]:
        return [TokenInfo.of(record) for record in await self.store.tokens.list_tokens()]

    async def token_info(self, token: str) -> TokenInfo | None:
        """Who a presented token belongs to and what it may do, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        found = await self.store.tokens.token_record(hash_token(token))
        if found is None:
            return None
        return TokenInfo.of(found)

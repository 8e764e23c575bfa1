"""Constrained wire types of the admin API: each carries its rule into the OpenAPI schema.

Every pattern and bound here is the constant the use case checks with, imported from the rule's
home, never a copy: a request the schema calls valid is never refused for its shape (only for a
rule across values or the state, like weights adding up to 100 or a name already taken).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from roost.control import (
    DIGEST_PATTERN,
    HOST_MAX_LENGTH,
    HOST_PATTERN,
    QUOTA_PATTERN,
    QUOTA_PATTERN_RULE,
    RESERVED_ENV_NAMES,
    TOKEN_NAME_PATTERN,
)
from roost.model import (
    ALIAS_PATTERN,
    ALIAS_RULE,
    APP_NAME_MAX_LENGTH,
    APP_NAME_PATTERN,
    APP_NAME_RULE,
    ENV_NAME_PATTERN,
    alias_max_length,
)

APP_NAME_TEXT = f"an app name is {APP_NAME_RULE}"
HOST_TEXT = "a host name like app.example.com"
DIGEST_TEXT = "sha256:<64 lowercase hex digits> of an uploaded archive"
TOKEN_NAME_TEXT = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"  # noqa: S105
ALIAS_TEXT = f"a branch alias: {ALIAS_RULE}, short enough that <alias>--<app> is one 63-character DNS label"
ALIAS_MAX_LENGTH = alias_max_length("a")  # the app's own length is checked by the use case
ENV_NAME_TEXT = "letters, digits and '_', not starting with a digit; not one Roost sets itself"

# pattern -> (what the value is, its rule): errors.py says them when a value breaks the pattern
RULES: dict[str, tuple[str, str]] = {
    APP_NAME_PATTERN: ("app name", APP_NAME_TEXT),
    HOST_PATTERN: ("host name", HOST_TEXT),
    DIGEST_PATTERN: ("digest", DIGEST_TEXT),
    TOKEN_NAME_PATTERN: ("token name", TOKEN_NAME_TEXT),
    ENV_NAME_PATTERN: ("variable name", ENV_NAME_TEXT),
    ALIAS_PATTERN: ("alias", ALIAS_TEXT),
    QUOTA_PATTERN: ("quota pattern", f"a quota names {QUOTA_PATTERN_RULE}"),
}


def json_integer(value: object) -> object:
    """What JSON Schema calls an integer: 2 or 2.0, never `true` or "2" (pydantic's lax mode takes
    both, and its strict mode refuses 2.0). Constraints go before it in `Annotated`, or pydantic
    writes them into the schema as `ge`/`le` instead of `minimum`/`maximum`."""
    if isinstance(value, bool | str):
        raise ValueError("a JSON integer")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _json_number(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("a JSON number")
    return value


JsonInt = Annotated[int, BeforeValidator(json_integer)]
JsonNumber = Annotated[float, BeforeValidator(_json_number)]
# The largest integer SQLite stores: ids and counters past it are refused by the schema.
SQLITE_INTEGER_MAX = 2**63 - 1


def _not_reserved(name: str) -> str:
    if name in RESERVED_ENV_NAMES:
        raise ValueError(f"{name} is set by Roost itself; choose another name")
    return name


AppNameText = Annotated[
    str, StringConstraints(pattern=APP_NAME_PATTERN, max_length=APP_NAME_MAX_LENGTH), Field(description=APP_NAME_TEXT)
]
AppName = Annotated[str, Path(pattern=APP_NAME_PATTERN, max_length=APP_NAME_MAX_LENGTH, description=APP_NAME_TEXT)]
AppNameQuery = Annotated[
    str | None, Query(pattern=APP_NAME_PATTERN, max_length=APP_NAME_MAX_LENGTH, description=APP_NAME_TEXT)
]
HostText = Annotated[
    str, StringConstraints(pattern=HOST_PATTERN, max_length=HOST_MAX_LENGTH), Field(description=HOST_TEXT)
]
Host = Annotated[str, Path(pattern=HOST_PATTERN, max_length=HOST_MAX_LENGTH, description=HOST_TEXT)]
QuotaPattern = Annotated[str, Path(pattern=QUOTA_PATTERN, description=f"a quota names {QUOTA_PATTERN_RULE}")]
DigestText = Annotated[str, StringConstraints(pattern=DIGEST_PATTERN), Field(description=DIGEST_TEXT)]
Digest = Annotated[str, Path(pattern=DIGEST_PATTERN, description=DIGEST_TEXT)]
AliasText = Annotated[
    str, StringConstraints(pattern=ALIAS_PATTERN, max_length=ALIAS_MAX_LENGTH), Field(description=ALIAS_TEXT)
]
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, max_length=ALIAS_MAX_LENGTH, description=ALIAS_TEXT)]
TokenNameText = Annotated[str, StringConstraints(pattern=TOKEN_NAME_PATTERN), Field(description=TOKEN_NAME_TEXT)]
TokenName = Annotated[str, Path(pattern=TOKEN_NAME_PATTERN, description=TOKEN_NAME_TEXT)]
_RESERVED_SCHEMA: dict[str, Any] = {"not": {"enum": sorted(RESERVED_ENV_NAMES)}}
EnvName = Annotated[
    str,
    StringConstraints(pattern=ENV_NAME_PATTERN),
    AfterValidator(_not_reserved),
    Field(description=ENV_NAME_TEXT, json_schema_extra=_RESERVED_SCHEMA),
]

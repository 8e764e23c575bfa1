"""Roles and grants: what one credential (a user or a token) may do, and to which apps.

Pure values, no I/O. The admin API decides with them (roost/api/scopes.py); the password file
and the token table store them in the one text form `Grants.encode` writes.

    >>> grants = Grants.parse(["deployer=shop-*", "viewer=blog"])
    >>> grants.allows(Role.DEPLOYER, "shop-a"), grants.allows(Role.DEPLOYER, "blog")
    (True, False)
    >>> grants.describe()
    'deployer on shop-*, viewer on blog'
"""

from __future__ import annotations

import enum
import fnmatch
import re
from dataclasses import dataclass

from roost.errors import UsageError

# an app name (roost.model's rule) with the glob characters * ? [ ] ! added
APP_PATTERN = r"^[a-z0-9*?\[\]!-]{1,63}$"
APP_PATTERN_RE = re.compile(APP_PATTERN)
PATTERN_RULE = "an app name or a glob like 'shop-*' (lowercase letters, digits, '-', '*', '?', '[...]')"


class Role(enum.StrEnum):
    """What a grant allows; each role includes the ones below it."""

    VIEWER = "viewer"  # read-only: list, info, logs, metrics, events; never secret values
    DEPLOYER = "deployer"  # push, promote, rollback, traffic, env, scale, start/stop, and every read
    ADMIN = "admin"  # everything, daemon-wide: users, tokens, gc, audit, domains, removal

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def covers(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 1, Role.DEPLOYER: 2, Role.ADMIN: 3}


def check_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise UsageError(f"'{text}' is not a role", hint="the roles are admin, deployer and viewer") from None


def check_pattern(pattern: str) -> str:
    if not APP_PATTERN_RE.fullmatch(pattern):
        raise UsageError(f"'{pattern}' is not an app name or pattern", hint=f"use {PATTERN_RULE}")
    return pattern


def matches(pattern: str, app: str) -> bool:
    """Whether `app` falls under `pattern` (a shell glob, case-sensitive, whole name)."""
    return fnmatch.fnmatchcase(app, pattern)


@dataclass(frozen=True, slots=True)
class Grant:
    """One role on the apps a pattern matches."""

    role: Role
    pattern: str

    def encode(self) -> str:
        return f"{self.role.value}={self.pattern}"


@dataclass(frozen=True, slots=True)
class Grants:
    """A credential's rights: admin (everything), or roles on app patterns (maybe none)."""

    admin: bool = False
    scoped: tuple[Grant, ...] = ()

    @classmethod
    def of(cls, role: Role, patterns: tuple[str, ...] | list[str]) -> Grants:
        """`role` on each pattern; admin takes none (it is daemon-wide), the others at least one."""
        if role is Role.ADMIN:
            if patterns:
                raise UsageError("admin is daemon-wide, not per app", hint="name apps only with deployer or viewer")
            return ADMIN
        if not patterns:
            raise UsageError(f"{role.value} needs at least one app", hint="name it, or a pattern: --app 'shop-*'")
        return cls(scoped=tuple(Grant(role, check_pattern(p)) for p in dict.fromkeys(patterns)))

    @classmethod
    def parse(cls, items: list[str]) -> Grants:
        """From 'admin' or 'role=pattern' items (the stored form, split on ';')."""
        if "admin" in items:
            return ADMIN
        scoped: list[Grant] = []
        for item in items:
            role, sep, pattern = item.partition("=")
            if not sep:
                raise UsageError(f"'{item}' is not a grant", hint="a grant is ROLE=PATTERN, e.g. deployer=shop-*")
            scoped.append(Grant(check_role(role), check_pattern(pattern)))
        return cls(scoped=tuple(scoped))

    @classmethod
    def decode(cls, text: str) -> Grants:
        return cls.parse([item for item in text.split(";") if item])

    def encode(self) -> str:
        """'admin', '' (no rights), or 'deployer=shop-*;viewer=blog'."""
        return "admin" if self.admin else ";".join(g.encode() for g in self.scoped)

    def role_on(self, app: str) -> Role | None:
        """The highest role these grants give on `app`, or None."""
        if self.admin:
            return Role.ADMIN
        roles = [g.role for g in self.scoped if matches(g.pattern, app)]
        return max(roles, key=lambda r: r.rank, default=None)

    def allows(self, role: Role, app: str) -> bool:
        held = self.role_on(app)
        return held is not None and held.covers(role)

    def allows_somewhere(self, role: Role) -> bool:
        """Whether some app could be reached with `role` (for calls that name no app)."""
        return self.admin or any(g.role.covers(role) for g in self.scoped)

    def with_grant(self, role: Role, pattern: str) -> Grants:
        """These grants plus `role` on `pattern` (replacing that pattern's role); admin replaces all."""
        if role is Role.ADMIN:
            return ADMIN
        kept = () if self.admin else tuple(g for g in self.scoped if g.pattern != pattern)
        return Grants(scoped=(*kept, Grant(role, check_pattern(pattern))))

    def without(self, patterns: tuple[str, ...] | list[str]) -> Grants:
        """These grants less those on `patterns` (exactly as granted, not what they match)."""
        return Grants(scoped=tuple(g for g in self.scoped if g.pattern not in patterns))

    def describe(self) -> str:
        if self.admin:
            return "admin"
        return ", ".join(f"{g.role.value} on {g.pattern}" for g in self.scoped) or "no role"


ADMIN = Grants(admin=True)
NOTHING = Grants()

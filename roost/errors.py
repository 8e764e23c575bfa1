"""The one tree of errors a Roost user can meet.

Every error carries a message (what went wrong) and a hint (what to do), a
stable ``code`` for the wire, and the HTTP status the admin API answers with::

    RoostError                      500  internal
    ├── ConfigError                 400  config_invalid
    ├── UsageError                  400  usage
    │   ├── RequestInvalid          422  invalid_request
    │   └── DigestMismatch          400  digest_mismatch
    ├── AuthError                   401  unauthorized
    ├── Forbidden                   403  forbidden
    ├── NotFound                    404  not_found
    ├── Conflict                    409  conflict
    │   └── DaemonAlreadyRunning    409  daemon_running
    ├── BuildFailed                 422  build_failed
    │   └── ReleaseFailed           422  release_failed
    ├── CertificateRefused          502  certificate_refused
    ├── LimitExceeded               429  limit_exceeded
    ├── NoSpace                     507  no_space
    ├── Unavailable                 503  unavailable
    │   ├── DaemonUnreachable       503  daemon_unreachable
    │   └── PortInUse               503  port_in_use
    └── StoreError                  500  store

The CLI client turns the API's ``{"error", "message", "hint"}`` back into the
same class with :func:`from_wire`. This module imports nothing of Roost.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import ClassVar


class RoostError(Exception):
    """Base of every error a user may see: a message and a hint."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, str]:
        """The JSON body the admin API sends for this error."""
        return {"error": self.code, "message": self.message, "hint": self.hint}


class ConfigError(RoostError):
    """A roost.toml, pyproject.toml or flag holds a value Roost cannot use."""

    code = "config_invalid"
    status = 400


class UsageError(RoostError):
    """A request or command was given arguments that do not fit."""

    code = "usage"
    status = 400


class RequestInvalid(UsageError):
    """An API request outside the OpenAPI schema (a wrong type, a name that breaks its pattern)."""

    code = "invalid_request"
    status = 422


class DigestMismatch(UsageError):
    """Bytes that do not hash to the digest they came with (an archive cut or changed in transit)."""

    code = "digest_mismatch"


class AuthError(RoostError):
    """No credentials, or wrong ones."""

    code = "unauthorized"
    status = 401


class Forbidden(RoostError):
    code = "forbidden"
    status = 403


class NotFound(RoostError):
    code = "not_found"
    status = 404


class Conflict(RoostError):
    """The request contradicts the current state (a name taken, a wrong status)."""

    code = "conflict"
    status = 409


class DaemonAlreadyRunning(Conflict):
    code = "daemon_running"


class BuildFailed(RoostError):
    code = "build_failed"
    status = 422


class CertificateRefused(RoostError):
    """The ACME CA would not issue a certificate: its own words are in the message."""

    code = "certificate_refused"
    status = 502


class ReleaseFailed(BuildFailed):
    """The deployment's release command failed or ran past its timeout: it never takes traffic."""

    code = "release_failed"
    status = 422


class LimitExceeded(RoostError):
    code = "limit_exceeded"
    status = 429


class NoSpace(RoostError):
    """The device holding ROOST_HOME is full: build it with `no_space`, which says how full."""

    code = "no_space"
    status = 507


SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(exc: BaseException) -> bool:
    """An OSError that means the disk (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in SPACE_ERRNOS


def no_space(path: Path) -> NoSpace:
    """The error for a full device under `path` (anywhere in ROOST_HOME), with what is free now.

    >>> no_space(Path("/")).message.startswith("no space left on the device holding ROOST_HOME (")
    True
    """
    try:
        stats = os.statvfs(path)
        free = f"{stats.f_bavail * stats.f_frsize // 2**20} MB free"
    except OSError:
        free = "free space unknown"
    return NoSpace(
        f"no space left on the device holding ROOST_HOME ({free})",
        hint="free space on that device (`roost gc` removes old deployments, unused venvs and blobs) "
        "or move ROOST_HOME to a larger one, then try again",
    )


class Unavailable(RoostError):
    code = "unavailable"
    status = 503


class DaemonUnreachable(Unavailable):
    code = "daemon_unreachable"


class PortInUse(Unavailable):
    code = "port_in_use"


class StoreError(RoostError):
    """The database could not be opened, migrated or written."""

    code = "store"
    status = 500


def _all_subclasses(cls: type[RoostError]) -> list[type[RoostError]]:
    found: list[type[RoostError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def from_wire(body: dict[str, object], status: int) -> RoostError:
    """Rebuild the error the API sent, as the same class where the code is known."""
    code = str(body.get("error", "internal"))
    message = str(body.get("message") or body.get("error") or f"HTTP {status}")
    hint = str(body.get("hint") or "")
    classes: list[type[RoostError]] = [RoostError, *_all_subclasses(RoostError)]
    for cls in classes:
        if cls.code == code:
            return cls(message, hint)
    return RoostError(message, hint)

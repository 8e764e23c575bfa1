"""Saved logins: `roost login` keeps a token per daemon URL in a 0600 file.

Only tokens are saved, never passwords: logging in with a password makes a
token named after this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def credentials_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "roost" / "credentials.json"


def load() -> dict[str, str]:
    """URL -> token."""
    try:
        data = json.loads(credentials_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def token_for(url: str) -> str | None:
    return load().get(url.rstrip("/"))


def save(url: str, token: str | None) -> Path:
    """Store (or, with None, forget) the token for `url`, atomically, mode 0600."""
    data = load()
    if token is None:
        data.pop(url.rstrip("/"), None)
    else:
        data[url.rstrip("/")] = token
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return path

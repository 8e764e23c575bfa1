"""The cluster's token: the secret every Ray process of the cluster presents (RAY_AUTH_MODE=token).

The head creates it once, owner-only (0600; Ray's own `ray get-auth-token --generate` writes
0644), as HOME/cluster/token. Each node is given a copy (`roost node join --token-file`), which
must be owner-only too, as ssh insists of its keys. Never logged, never sent over the admin API.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from roost.errors import ConfigError, UsageError

TOKEN_RE = re.compile(r"[0-9a-f]{64}")  # 256 bits, as Ray generates them


def ensure_token(path: Path) -> Path:
    """The head's token file: made owner-only with a new random token when missing; an existing
    one is kept (nodes hold copies of it) and its mode tightened to 0600 if it was looser."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    read_token(path)
    return path


def check_token_file(path: Path) -> Path:
    """A node's copy of the token: present, owner-only and well formed."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise UsageError(
            f"no cluster token at {path}",
            hint="copy the head's HOME/cluster/token to this machine (owner-only) and name it with --token-file",
        ) from None
    if mode & 0o077:
        raise UsageError(
            f"the cluster token {path} can be read by others (mode {mode:04o})",
            hint=f"chmod 600 {path}: whoever reads it can run code on every machine of the cluster",
        )
    read_token(path)
    return path


def read_token(path: Path) -> str:
    text = path.read_text().strip()
    if TOKEN_RE.fullmatch(text) is None:
        raise ConfigError(
            f"{path} does not hold a cluster token (64 hexadecimal characters)",
            hint="copy the head's HOME/cluster/token again; a damaged one on the head is replaced by removing it "
            "and restarting `roost serve --cluster` (then every node needs the new copy)",
        )
    return text

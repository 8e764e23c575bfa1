"""Binding the daemon's sockets, with errors that say which port and what to do.

Roost binds every listening socket itself (and hands them to servers), so a
taken port is reported before anything starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

from roost.errors import ConfigError, PortInUse


def bind_tcp(host: str, port: int, what: str, flag: str) -> socket.socket:
    """A listening TCP socket on host:port; PortInUse names `what` and `flag`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is in use, so the {what} cannot listen there",
                hint=f"stop what holds it (`ss -ltnp 'sport = :{port}'` shows it) or choose another with {flag}",
            ) from exc
        if exc.errno == errno.EACCES:
            raise PortInUse(
                f"not allowed to listen on port {port} for the {what}",
                hint=f"ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another with {flag}",
            ) from exc
        raise ConfigError(
            f"cannot listen on {host}:{port} for the {what}: {exc.strerror}",
            hint=f"check the address given with {flag}",
        ) from exc
    sock.setblocking(False)
    return sock


def bind_unix(path: Path) -> socket.socket:
    """An owner-only (0600) Unix socket at `path`, replacing a stale one."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot create the admin socket {path}: {exc.strerror}",
            hint="check that the home directory is writable, and that its path is under 100 characters",
        ) from exc
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock

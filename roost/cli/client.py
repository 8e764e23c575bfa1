"""The CLI's one way to the daemon: HTTP(JSON) over the Unix socket or TCP.

Turns the API's `{"error", "message", "hint"}` back into the same RoostError,
and a refused connection into DaemonUnreachable with what to do.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from roost.errors import AuthError, DaemonUnreachable, RoostError, UsageError, from_wire
from roost.serve_settings import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    DEFAULT_HOME_TEXT,
    SOCKET_NAME,
    default_home,
    homes_to_search,
)

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the daemon is: a base URL, and a Unix socket path when local."""

    url: str
    socket: Path | None = None
    passed_over: Path | None = None  # the home's socket, skipped because this user may not use it
    searched: tuple[Path, ...] = ()  # the sockets looked for in vain before falling back to TCP

    def describe(self) -> str:
        return f"unix socket {self.socket}" if self.socket else self.url


def resolve_target(url: str | None) -> Target:
    """`--url`/`ROOST_URL` (http://, https:// or unix:///path), else the socket of the first home
    that has one (`homes_to_search`) when this user may connect to it, else TCP (where
    credentials are asked)."""
    chosen = url or os.environ.get("ROOST_URL")
    if chosen:
        if chosen.startswith("unix://"):
            return Target("http://roost", Path(chosen.removeprefix("unix://")))
        return Target(chosen.rstrip("/"))
    tcp = f"http://{DEFAULT_API_HOST}:{DEFAULT_API_PORT}"
    found = [home / SOCKET_NAME for home in homes_to_search() if _exists(home / SOCKET_NAME)]
    if not found:
        return Target(tcp, searched=tuple(home / SOCKET_NAME for home in homes_to_search()))
    socket_path = found[0]
    if _forbidden(socket_path):
        return Target(tcp, passed_over=socket_path)
    return Target("http://roost", socket_path)


def _exists(path: Path) -> bool:
    """Whether `path` exists; a directory above it this user may not enter counts as "exists"."""
    try:
        return path.exists()
    except PermissionError:
        return True


def _forbidden(path: Path) -> bool:
    """True when connecting to the socket is refused for lack of permission (EACCES/EPERM).
    Any other failure (a stale socket, no daemon) keeps the socket, whose error says what to do."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            return exc.errno in (errno.EACCES, errno.EPERM)
    return False


def _trusting(cafile: str) -> ssl.SSLContext:
    """A TLS context that trusts the CA bundle (or self-signed certificate) in `cafile`."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot read the CA bundle {cafile}: {exc}", hint="--cacert takes a PEM file with the daemon's certificate"
        ) from exc


class Client:
    def __init__(
        self,
        target: Target,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        verify: str | bool | ssl.SSLContext = True,
    ) -> None:
        self.target = target
        if isinstance(verify, str):
            verify = _trusting(verify)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = httpx.BasicAuth(*basic) if basic else None
        transport = httpx.HTTPTransport(uds=str(target.socket)) if target.socket else None
        self._http = httpx.Client(
            base_url=target.url, transport=transport, timeout=TIMEOUT, headers=headers, auth=auth, verify=verify
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return the decoded JSON body (None for 204)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return self._decode(response)

    def has_blob(self, digest: str, app: str | None = None) -> bool:
        """Whether the daemon stores the archive; `app`: the app it is for (a deployer's grant is
        checked on it). A refused HEAD has no body: False, and the upload says why."""
        try:
            response = self._http.head(f"/v1/blobs/{digest}", params={"app": app} if app else None)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return response.status_code == 200

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        """Yield the lines of a streamed response (logs, events, build output)."""
        try:
            with self._http.stream(method, path, timeout=httpx.Timeout(None, connect=5.0), **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: Exception) -> RoostError:
        if self.target.passed_over is not None:
            return DaemonUnreachable(
                f"cannot reach the daemon at {self.target.describe()}, and its socket {self.target.passed_over} "
                "belongs to another user",
                hint="run the command as the user who runs `roost serve`, or point --url or ROOST_URL at the "
                "daemon's TCP address and log in with a password or token",
            )
        if self.target.searched:
            return DaemonUnreachable(
                f"cannot reach the daemon: no socket at {' or '.join(map(str, self.target.searched))}, "
                f"and nothing answers at {self.target.url}",
                hint="start one with `roost serve` (`make serve` in a checkout), or set ROOST_HOME to the home "
                "of the daemon you started",
            )
        if isinstance(exc.__context__, PermissionError) or "Permission denied" in str(exc):
            return DaemonUnreachable(
                f"you are not allowed to use the daemon's socket {self.target.describe()}",
                hint="run the command as the user who runs `roost serve`, or reach it over TCP with --url and "
                "a password or token",
            )
        return DaemonUnreachable(
            f"cannot reach the daemon at {self.target.describe()}: is `roost serve` running?",
            hint=f"start it with `roost serve`, or point at it with --url or ROOST_URL ({type(exc).__name__})",
        )

    def _decode(self, response: httpx.Response) -> Any:
        target = self.target
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and "error" in body:
                error = from_wire(body, response.status_code)
                raise needs_credentials(target, error) if isinstance(error, AuthError) else error
            raise RoostError(
                f"the daemon answered HTTP {response.status_code}: {response.text[:200]}",
                hint="check that --url points at a Roost admin API",
            )
        return body


def needs_credentials(target: Target, error: AuthError) -> AuthError:
    """The daemon asked for credentials: say, in whole sentences, how to reach a local daemon
    without any (its socket, through ROOST_HOME) and how to log in to a remote one."""
    if target.socket is not None or error.message != "this API needs credentials":
        return error
    home = default_home()
    return AuthError(
        f"The daemon at {target.url} needs credentials, and there is no local daemon socket at "
        f"{home / SOCKET_NAME} (the home is $ROOST_HOME, else {DEFAULT_HOME_TEXT}).",
        hint="For a local daemon, run `roost` as the user who runs `roost serve` with ROOST_HOME set to the "
        "folder it printed (or pass --url unix:///PATH/roost.sock); for a remote one, run "
        f"`roost login {target.url}` once, or pass --token.",
    )

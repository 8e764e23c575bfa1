"""Whether the admin API may open where the daemon was told to listen: never beyond loopback
while nobody could log in (no password user, no token), unless `--insecure` says so."""

from __future__ import annotations

import logging

from roost.errors import ConfigError
from roost.passwords import PasswordFile
from roost.serve_settings import ServeSettings

log = logging.getLogger("roost.api")


def is_loopback_host(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def check_exposure(settings: ServeSettings, has_tokens: bool) -> None:
    """Refuse to open the admin API beyond loopback while nobody could log in. Raises ConfigError."""
    if is_loopback_host(settings.api_host):
        return
    if has_tokens or PasswordFile(settings.passwords_path).has_users():
        return
    if settings.insecure:
        log.warning("the admin API listens on %s with no user and no token (--insecure)", settings.api_host)
        return
    raise ConfigError(
        f"refusing to expose the admin API on {settings.api_host}: no user or token exists, so anyone could log in",
        hint="add one first: `roost password admin` (or `roost token create NAME` over the Unix socket); "
        "--insecure overrides",
    )

"""`roost serve`: flags and environment onto ServeSettings, then the daemon."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from roost.settings import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    DEFAULT_DOMAIN,
    DEFAULT_EDGE_HOST,
    DEFAULT_EDGE_PORT,
    ServeSettings,
    default_home,
)


def _announce(line: str) -> None:
    sys.stdout.write(f"roost: {line}\n")
    sys.stdout.flush()


@click.command("serve")
@click.option("--home", type=click.Path(path_type=Path), envvar="ROOST_HOME", help="State directory [env ROOST_HOME].")
@click.option("--host", default=DEFAULT_EDGE_HOST, show_default=True, envvar="ROOST_HOST", help="Edge address.")
@click.option("--port", default=DEFAULT_EDGE_PORT, show_default=True, envvar="ROOST_PORT", type=int, help="Edge port.")
@click.option("--api-host", default=DEFAULT_API_HOST, show_default=True, envvar="ROOST_API_HOST")
@click.option("--api-port", default=DEFAULT_API_PORT, show_default=True, envvar="ROOST_API_PORT", type=int)
@click.option(
    "--domain", default=DEFAULT_DOMAIN, show_default=True, envvar="ROOST_DOMAIN", help="Apps at <app>.DOMAIN."
)
@click.option("--require-password", is_flag=True, envvar="ROOST_REQUIRE_PASSWORD", help="Ask even on the Unix socket.")
@click.option("--trust-proxy", multiple=True, metavar="CIDR", help="Believe X-Forwarded-For from these networks.")
def serve(
    home: Path | None,
    host: str,
    port: int,
    api_host: str,
    api_port: int,
    domain: str,
    require_password: bool,
    trust_proxy: tuple[str, ...],
) -> None:
    """Run the Roost daemon in the foreground."""
    from roost import daemon  # the one place the daemon is imported

    logging.basicConfig(level=logging.INFO, format="roost: %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    settings = ServeSettings(
        home=(home or default_home()).expanduser().resolve(),
        edge_host=host,
        edge_port=port,
        api_host=api_host,
        api_port=api_port,
        domain=domain.lower().strip("."),
        require_password=require_password,
        trust_proxy=trust_proxy,
    )
    daemon.run(settings, _announce)

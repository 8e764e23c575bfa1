"""The `roost` command: the group and its global options."""

from __future__ import annotations

import platform
from pathlib import Path

import click
from click.shell_completion import get_completion_class
from rich.markup import escape

from roost import __version__
from roost.cli.apps import create, info, list_apps, remove
from roost.cli.base import Context, RoostGroup, json_option, pass_context
from roost.cli.cluster import node, nodes
from roost.cli.deploys import alias, deployments, promote, rollback, traffic
from roost.cli.domains import domains
from roost.cli.env import env
from roost.cli.events import events
from roost.cli.examples import attach
from roost.cli.init import init
from roost.cli.lifecycle import kill, restart, scale, start, stop
from roost.cli.logs import logs
from roost.cli.ops import cron, gc
from roost.cli.output import console, err_console, print_json
from roost.cli.push import push
from roost.cli.security import login, logout, password, token
from roost.cli.serve import serve
from roost.cli.tenants import audit, quota
from roost.cli.ui import ui
from roost.cli.users import user
from roost.config import load_app_config
from roost.errors import RoostError, UsageError
from roost.guess import code_reads_port, port_warning
from roost.units import format_duration, format_size

SECTIONS: dict[str, tuple[str, ...]] = {
    "Apps": ("push", "init", "check", "create", "list", "info", "env", "cron", "remove"),
    "Deployments": ("deployments", "promote", "rollback", "alias"),
    "Traffic": ("traffic", "domains"),
    "Runtime": ("logs", "events", "scale", "start", "stop", "kill", "restart"),
    "Admin": ("serve", "login", "logout", "password", "user", "token", "quota", "audit", "gc", "version", "completion"),
    "Cluster (preview)": ("nodes", "node"),
}


@click.group(cls=RoostGroup, sections=SECTIONS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="roost", message="%(prog)s %(version)s")
@click.option("--url", envvar="ROOST_URL", help="Daemon URL: http(s)://HOST:PORT or unix:///PATH [env ROOST_URL].")
@click.option("--token", envvar="ROOST_TOKEN", help="API token [env ROOST_TOKEN].")
@click.option("-B", "--basic-auth", is_flag=True, help="Prompt for a user and password.")
@click.option("--cacert", envvar="ROOST_CACERT", help="CA bundle to trust for an https --url [env ROOST_CACERT].")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context, url: str | None, token: str | None, basic_auth: bool, cacert: str | None, debug: bool
) -> None:
    """Roost: push Python web apps, serve them, scale them, sleep them.

    Commands that take an APP use the app of the current folder (its roost.toml) when none is
    given. Without --url, the CLI talks to the daemon of $ROOST_HOME (default
    ~/.local/share/roost) over its Unix socket, with no password.
    """
    ctx.obj = Context(url=url, token=token, debug=debug, basic_auth=basic_auth, cacert=cacert)


@cli.command("version")
@json_option
@pass_context
def version(ctx: Context, as_json: bool) -> None:
    """Print the CLI's version, and the daemon's when it is reachable."""
    data: dict[str, object] = {"cli": __version__, "python": platform.python_version()}
    unreachable = ""
    try:
        data["daemon"] = ctx.client().request("GET", "/v1/version")
    except RoostError as exc:
        data["daemon"] = None
        unreachable = exc.message
    if as_json:
        print_json(data)
        return
    console.print(f"roost {__version__} (Python {data['python']})")
    daemon = data["daemon"]
    if isinstance(daemon, dict):
        console.print(f"daemon: roost {daemon['version']} (Python {daemon['python']})")
    else:
        console.print(f"daemon: {unreachable}", markup=False)


@cli.command("check")
@click.argument("path", default=".", type=click.Path(path_type=Path, exists=True, file_okay=False))
@json_option
def check(path: Path, as_json: bool) -> None:
    """Validate an app's roost.toml and print the settings in force; warn of a command that never reads $PORT."""
    config = load_app_config(path)
    warning = port_warning(config.command, code_reads_port(path)) if config.command else None
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if as_json:
        print_json(config.to_dict())
        return
    console.print(f"[green]ok[/]: {path}")
    console.print(f"  mode={config.mode.value} runs={config.entrypoint or config.command or '(to be guessed)'}")
    console.print(
        f"  scale min={config.scale.min} max={config.scale.max} concurrency={config.scale.concurrency}"
        f" idle_timeout={format_duration(config.scale.idle_timeout)}"
    )
    console.print(
        f"  limits memory={format_size(config.limits.memory)} cpu={config.limits.cpu:g}"
        f" timeout={format_duration(config.limits.timeout)} stream_idle={format_duration(config.limits.stream_idle)}"
        f" stream_max={format_duration(config.limits.stream_max)} body={format_size(config.limits.body)}"
    )
    if config.release:
        console.print(f"  release={config.release!r} within {format_duration(config.release_timeout)}", highlight=False)
    if config.check is not None:
        check = config.check
        console.print(
            f"  check GET {check.path} expects {check.expected()}, every {format_duration(check.interval)}"
            f" (timeout {format_duration(check.timeout)}, restart after {check.failures} failures)",
            highlight=False,
        )
    for process in config.processes:
        console.print(
            f"  process {process.name} x{process.count}: {process.command}"
            f" (memory={format_size(process.limits.memory)} cpu={process.limits.cpu:g})",
            markup=False,
        )


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL; load it from your shell's startup file."""
    script = get_completion_class(shell)
    if script is None:
        raise UsageError(f"no completion for {shell}", hint="roost completion bash|zsh|fish")
    click.echo(script(cli, {}, "roost", "_ROOST_COMPLETE").source())


for command in (
    serve,
    create,
    list_apps,
    info,
    remove,
    push,
    deployments,
    promote,
    alias,
    rollback,
    traffic,
    start,
    stop,
    kill,
    restart,
    scale,
    logs,
    domains,
    password,
    user,
    token,
    login,
    logout,
    init,
    env,
    gc,
    cron,
    events,
    quota,
    audit,
    ui,
    nodes,
    node,
):
    cli.add_command(command)
attach(cli)

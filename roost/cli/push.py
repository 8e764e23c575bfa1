"""`roost push`: pack the folder, upload it if the daemon lacks it, build, follow, report."""

from __future__ import annotations

import queue
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from roost.cli.base import Context, json_option, pass_context
from roost.cli.client import Client
from roost.cli.output import console, err_console, print_json
from roost.config import find_settings, merge, validate
from roost.errors import BuildFailed, ConfigError, UsageError
from roost.guess import factory_note, guess
from roost.model import ALIAS_RULE, alias_slug
from roost.pack import pack_app
from roost.units import human_size

CHUNK = 256 * 1024
HEARTBEAT_SECONDS = 3.0  # without a terminal (CI logs), a quiet step still says it is alive this often
STEP_RE = re.compile(r"✓ (?P<name>.+) (?P<seconds>\d+(?:\.\d+)?)s")  # the builder's step lines
LOG_TAIL_LINES = 40  # the build log's last lines that `--json` carries: a failure's own words are there


def app_name_for(path: Path, settings: dict[str, Any], flag: str | None) -> str:
    """--name, else `name` in roost.toml, else the folder's name made valid."""
    if flag:
        return flag
    if settings.get("name"):
        return str(settings["name"])
    guess = re.sub(r"[^a-z0-9-]+", "-", path.resolve().name.lower()).strip("-")
    guess = re.sub(r"-{2,}", "-", guess)
    if not guess or not guess[0].isalpha():
        guess = f"app-{guess}".rstrip("-")
    return guess[:63].rstrip("-")


FLAG_SOURCES = {"mode": "roost push --mode", "auto_restart": "roost push --no-auto-restart"}
GUESSED = "guessed by roost push"
TABLES = ("scale", "limits", "check")  # their keys are marked one by one ("scale.max"): a file may set a few


def setting_origins(
    settings: dict[str, Any], source: str, overrides: dict[str, Any], guessed: dict[str, str]
) -> dict[str, str]:
    """Where the push took each setting from, for the daemon to keep (it sees only the merged result).

    Later layers win as in `merge`: the settings file ("roost.toml" or "pyproject.toml"), then
    the flags, then the guess of the entrypoint or command.
    """
    file_name = Path(source.removesuffix(" [tool.roost]")).name if source else "roost.toml"
    origins: dict[str, str] = {}
    for key, value in settings.items():
        if key in TABLES and isinstance(value, dict):
            origins.update({f"{key}.{name}": file_name for name in value})
        else:
            origins[key] = file_name
    origins.update({key: FLAG_SOURCES.get(key, "roost push") for key in overrides})
    origins.update(dict.fromkeys(guessed, GUESSED))
    return origins


def _chunks(path: Path, progress: Progress, task: TaskID) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            progress.advance(task, len(chunk))
            yield chunk


def _upload(
    client: Client, app: str, archive: Path, digest: str, size: int, say: Any, shown: Console
) -> dict[str, Any]:
    """Send the archive for `app` unless the daemon has it; what was sent, for `--json`."""
    if client.has_blob(digest, app):
        say(f"[dim]archive {digest[:19]}… ({human_size(size)}) already on the daemon: not uploaded again[/]")
        return {"bytes": 0, "seconds": 0.0, "skipped": True}
    started = time.monotonic()
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=shown, transient=True, disable=not shown.is_terminal) as progress:
        task = progress.add_task("upload", total=size)
        client.request(
            "PUT",
            f"/v1/blobs/{digest}",
            params={"app": app},
            content=_chunks(archive, progress, task),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
    seconds = max(time.monotonic() - started, 1e-6)
    say(f"uploaded {human_size(size)} in {seconds:.2f}s ({human_size(size / seconds)}/s)")
    return {"bytes": size, "seconds": round(seconds, 3), "skipped": False}


@click.command("push")
@click.argument("path", default=".", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--name", help="App name (default: roost.toml's name, else the folder's).")
@click.option("--mode", type=click.Choice(["service", "function"]), help="Override roost.toml's mode.")
@click.option("--no-promote", is_flag=True, help="Build, but leave production traffic where it is.")
@click.option(
    "--alias",
    metavar="BRANCH",
    help="Give the deployment the stable preview URL BRANCH--APP.DOMAIN, moved by each push with it "
    "(a branch name is made a DNS label: feature/Login -> feature-login).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the build to its end, exiting 1 if it fails; --no-wait returns once it is accepted.",
)
@click.option("--no-auto-restart", is_flag=True, help="Do not restart crashed instances (auto_restart = false).")
@click.option("-m", "--message", default="", help="A note kept with the deployment.")
@json_option
@pass_context
def push(
    ctx: Context,
    path: Path,
    name: str | None,
    mode: str | None,
    no_promote: bool,
    alias: str | None,
    wait: bool,
    no_auto_restart: bool,
    message: str,
    as_json: bool,
) -> None:
    """Build the app in PATH and (unless --no-promote) send production traffic to it.

    With --json, stdout holds one JSON document (the build's output goes to stderr) and the
    exit status is the deployment's outcome: 0 ready, 1 failed (with its error and last lines).
    """
    started = time.monotonic()
    shown = err_console if as_json else console
    say = shown.print
    settings, source = find_settings(path)
    flags: dict[str, object] = {"mode": mode} if mode else {}
    if no_auto_restart:
        flags["auto_restart"] = False
    overrides = validate(flags, "command-line flags")
    app = app_name_for(path, settings, name)
    merged = merge(settings, overrides, {"name": app})
    guessed: dict[str, str] = {}
    if not merged.get("entrypoint") and not merged.get("command"):
        guessed = _guessed(path, say, source)
        merged.update(guessed)
    sources = setting_origins(settings, source, overrides, guessed)
    alias = _alias_for(alias, app, say)
    say(f"[bold]pushing {path.resolve()}[/] as app [bold]{app}[/]" + (f" (settings from {source})" if source else ""))
    client = ctx.client()
    with tempfile.TemporaryDirectory(prefix="roost-push-") as scratch:
        packed = pack_app(path, Path(scratch) / "app.tar.gz")
        sizes = f"{human_size(packed.unpacked_size)} → {human_size(packed.size)}"
        say(f"packed {packed.files} files, {sizes} ({packed.digest[:19]}…)")
        upload = _upload(client, app, packed.path, packed.digest, packed.size, say, shown)
    body = {
        "digest": packed.digest,
        "message": message,
        "settings": merged,
        "promote": not no_promote,
        "sources": sources,
        **({"alias": alias} if alias else {}),
    }
    deployment = client.request("POST", f"/v1/apps/{app}/deployments", json=body)
    say(f"deployment [bold]{deployment['id']}[/] building")
    if not wait:
        _accepted(deployment, as_json, say)
        return
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    log_path = f"/v1/apps/{app}/deployments/{deployment['id']}/log"
    steps = _follow(client, log_path, deployment["id"], shown, started, tail)
    final = client.request("GET", f"/v1/apps/{app}/deployments/{deployment['id']}")
    elapsed = time.monotonic() - started
    failed = final["status"] != "ready"
    hint = failure_hint(app, client.request("GET", f"/v1/apps/{app}/deployments")) if failed else ""
    alias_url = _alias_url(client, app, alias, final["id"]) if alias and not failed else None
    if as_json:
        outcome = {"promoted": not failed and not no_promote, "alias": alias, "alias_url": alias_url}
        extra = {"hint": hint, "log_tail": list(tail)} if failed else {}
        print_json({**final, **outcome, **extra, "elapsed": round(elapsed, 3), "steps": steps, "upload": upload})
    if failed:
        raise BuildFailed(f"deployment {final['id']} failed: {final['error']}", hint=hint)
    if not as_json:
        _report(final, elapsed, promoted=not no_promote, alias_url=alias_url)


def branch_alias(branch: str, app: str) -> str:
    """The alias of `app` a branch name makes (`feature/Login` -> `feature-login`); UsageError
    when nothing of it is usable. Every command that takes a BRANCH sends this."""
    slug = alias_slug(branch, app)
    if not slug:
        raise UsageError(f"'{branch}' has no letter or digit to make an alias of", hint=f"an alias is {ALIAS_RULE}")
    return slug


def _alias_for(given: str | None, app: str, say: Any) -> str | None:
    """The alias to send for --alias, saying so when the branch name was changed to make it."""
    if given is None:
        return None
    slug = branch_alias(given, app)
    if slug != given:
        say(f"alias [bold]{slug}[/] (from '{given}')")
    return slug


def _alias_url(client: Client, app: str, alias: str, deployment: str) -> str | None:
    """The alias's preview URL, once it serves `deployment` (None if a newer push moved it already)."""
    for entry in client.request("GET", f"/v1/apps/{app}/aliases"):
        if entry["name"] == alias and entry["deployment"] == deployment:
            return str(entry["url"])
    return None


def _accepted(deployment: dict[str, Any], as_json: bool, say: Any) -> None:
    """--no-wait: the deployment is building; say how to follow it."""
    if as_json:
        print_json(deployment)
        return
    say(f"not waiting: `roost deployments {deployment['app']}` shows when it is ready")


def failure_hint(app: str, deployments: list[dict[str, Any]]) -> str:
    """What a failed push leaves behind: production as it was, or (a first push) nothing that works.

    >>> failure_hint("hello", [{"id": "ab12cd34", "status": "ready", "weight": 100}])
    'fix the error above and push again; production still serves the previous deployment (ab12cd34)'
    >>> failure_hint("hello", [{"id": "ef56gh78", "status": "failed", "weight": 0}])
    "fix the error above and push again; 'hello' has no working deployment yet (`roost logs hello` has details)"
    """
    serving = ", ".join(d["id"] for d in deployments if d.get("weight", 0) > 0 and d.get("status") == "ready")
    if serving:
        return f"fix the error above and push again; production still serves the previous deployment ({serving})"
    ready = [d["id"] for d in deployments if d.get("status") == "ready"]
    if ready:
        return (
            f"fix the error above and push again; nothing takes production traffic (`roost promote {app} {ready[0]}`)"
        )
    return f"fix the error above and push again; '{app}' has no working deployment yet (`roost logs {app}` has details)"


def _follow(
    client: Client, path: str, deployment: str, shown: Console, started: float, tail: deque[str]
) -> list[dict[str, Any]]:
    """Print the build log as it comes, keeping its last lines in `tail`; return its steps with their times.

    On a terminal a spinner with the time elapsed keeps ticking while a step is quiet;
    elsewhere (CI logs) a plain "still ..." line comes every HEARTBEAT_SECONDS instead.
    """
    steps: list[dict[str, Any]] = []
    doing = f"building {deployment}"
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=shown,
        transient=True,
        disable=not shown.is_terminal,
    ) as progress:
        task = progress.add_task(doing)
        quiet_since = time.monotonic()
        for line in _lines_or_silence(client, path):
            now = time.monotonic()
            if line is None:
                if not shown.is_terminal and now - quiet_since >= HEARTBEAT_SECONDS:
                    progress.console.print(f"  {now - started:5.1f}s  … still {doing}", markup=False, highlight=False)
                    quiet_since = now
                continue
            quiet_since = now
            tail.append(line)
            progress.console.print(f"  {now - started:5.1f}s  {line}", markup=False, highlight=False)
            if line.startswith("==> "):
                doing = line[4:]
                progress.update(task, description=doing)
            elif match := STEP_RE.fullmatch(line):
                steps.append({"name": match["name"], "seconds": float(match["seconds"])})
    return steps


def _lines_or_silence(client: Client, path: str) -> Iterator[str | None]:
    """The log's lines, with a None for each second nothing came (so the caller can say it waits).

    A thread reads the stream; its errors come out here, in the caller's thread.
    """
    lines: queue.Queue[tuple[str, object]] = queue.Queue()

    def read() -> None:
        try:
            for line in client.stream_lines("GET", path):
                lines.put(("line", line))
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            lines.put(("error", exc))
        else:
            lines.put(("end", None))

    threading.Thread(target=read, name="build log", daemon=True).start()
    while True:
        try:
            kind, value = lines.get(timeout=1.0)
        except queue.Empty:
            yield None
            continue
        if kind == "end":
            return
        if isinstance(value, Exception):
            raise value
        yield str(value)


def _guessed(path: Path, say: Any, source: str) -> dict[str, str]:
    found = guess(path)
    if found is None and not source and not any(path.glob("*.py")):
        raise ConfigError(
            f"no app here ({path.resolve()}): add a roost.toml or run `roost init`",
            hint="cd into the app's folder, or name it: roost push path/to/app",
        )
    if found is None:
        raise ConfigError(
            f"{path.resolve()}: roost.toml names no `entrypoint` or `command`, and none could be guessed",
            hint=factory_note(path)
            or 'run `roost init` there, or set entrypoint = "module:app" (or command = "...") in roost.toml',
        )
    say(f"no entrypoint or command in roost.toml: guessed {found.framework} ({found.reason})", markup=False)
    if found.command and (note := factory_note(path)):
        say(f"note: {note}", markup=False)
    return {"entrypoint": found.entrypoint} if found.entrypoint else {"command": str(found.command)}


def _report(final: dict[str, Any], elapsed: float, promoted: bool, alias_url: str | None) -> None:
    console.print(f"[green]✓[/] deployment [bold]{final['id']}[/] ready in {elapsed:.1f}s")
    console.print(f"  preview     {final['preview_url']}")
    if alias_url:
        console.print(f"  alias       {alias_url}")
    if promoted:
        console.print(f"  production  {final['url']}")
    else:
        console.print(f"  not promoted: `roost promote {final['app']} {final['id']}` sends traffic to it")

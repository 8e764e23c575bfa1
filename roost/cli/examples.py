"""One example (or a few) per command, shown at the end of its `--help` and in docs/cli.md."""

from __future__ import annotations

import click

EXAMPLES: dict[str, tuple[str, ...]] = {
    "push": (
        "roost push",
        "roost push examples/flask-hello --no-promote -m 'new greeting'",
        "roost push --wait --json --no-promote --alias feature/login   # CI: a preview per branch",
    ),
    "init": ("roost init", "roost init path/to/project"),
    "check": ("roost check", "roost check examples/flask-hello --json"),
    "create": ("roost create hello --mode service",),
    "list": ("roost list", "roost list --json"),
    "info": ("roost info flask-hello", "roost info   # in the app's folder"),
    "env": (
        "roost env flask-hello set API_KEY=abc123",
        "roost env unset API_KEY --yes   # in the app's folder, without asking",
    ),
    "domains": (
        "roost domains flask-hello add hello.example.com",
        "roost domains flask-hello add shop.example.com --cert shop.pem --key shop.key --hsts",
        "roost domains flask-hello list --json",
    ),
    "cron": ("roost cron flask-hello",),
    "remove": ("roost remove flask-hello", "roost remove flask-hello --yes   # in scripts"),
    "deployments": ("roost deployments flask-hello", "roost deployments --quiet | head -n 1"),
    "promote": (
        "roost promote flask-hello ab12cd34",
        "roost promote ab12cd34   # in the app's folder",
        "roost promote flask-hello --alias feature/login   # what the branch's preview serves",
    ),
    "alias": ("roost alias list flask-hello", "roost alias remove flask-hello feature/login"),
    "alias list": ("roost alias list flask-hello", "roost alias list --json"),
    "alias remove": ("roost alias remove flask-hello feature/login", "roost alias remove feature-login"),
    "rollback": ("roost rollback flask-hello", "roost rollback flask-hello ab12cd34"),
    "traffic": ("roost traffic flask-hello ab12cd34=90 ef56gh78=10", "roost traffic flask-hello"),
    "start": ("roost start flask-hello",),
    "stop": ("roost stop flask-hello",),
    "kill": ("roost kill flask-hello",),
    "restart": ("roost restart flask-hello",),
    "scale": (
        "roost scale flask-hello --max 4 --idle-timeout 2m",
        "roost scale shop --process worker=3",
        "roost scale flask-hello",
    ),
    "logs": (
        "roost logs -n 20 -f   # in the app's folder",
        "roost logs flask-hello --requests-only --json",
        "roost logs shop --process worker",
    ),
    "events": ("roost events flask-hello", "roost events -f"),
    "serve": (
        "roost serve",
        "roost serve --port 8080 --api-port 7070 --home /var/lib/roost",
        "roost serve --cluster --cluster-address 10.0.0.1   # the head of a cluster (preview)",
    ),
    "login": ("roost login https://roost.example.com:7070 --user admin",),
    "logout": ("roost logout https://roost.example.com:7070",),
    "password": (
        "roost password admin",
        "roost password alice --role deployer --app 'shop-*'",
        "roost password admin --delete --yes",
    ),
    "user": ("roost user grant alice deployer shop", "roost user list"),
    "user list": ("roost user list", "roost user list --json"),
    "user grant": ("roost user grant alice deployer shop 'shop-*'", "roost user grant bob viewer blog"),
    "user revoke": ("roost user revoke alice shop",),
    "token": ("roost token create ci --role deployer --app 'shop-*'", "roost token list"),
    "token create": (
        "roost token create ci --role deployer --app 'shop-*'",
        "roost token create grafana --role viewer --app blog --app shop",
        "roost token create ops   # an admin",
    ),
    "token list": ("roost token list",),
    "token revoke": ("roost token revoke ci",),
    "quota": ("roost quota set 'shop-*' --instances 4 --memory 2G", "roost quota list"),
    "quota set": ("roost quota set 'shop-*' --instances 4 --memory 2G", "roost quota set blog --instances 2"),
    "quota list": ("roost quota list", "roost quota list --json"),
    "quota remove": ("roost quota remove 'shop-*'", "roost quota remove blog --yes   # in scripts"),
    "audit": (
        "roost audit --app shop-a --since 1h",
        "roost audit --user ci --action DELETE -n 100 --json",
    ),
    "ui": ("roost ui", "roost ui --open   # in the desktop's browser"),
    "gc": ("roost gc", "roost gc --yes --json"),
    "nodes": ("roost nodes", "roost nodes --json"),
    "node": ("roost node join 10.0.0.1 --region eu-west --memory-budget 8G",),
    "node join": (
        "roost node join 10.0.0.1 --region eu-west --memory-budget 8G",
        "roost node join head.internal:8000 --region us-east --cluster-ports 8000-8099 --token-file /etc/roost/token",
    ),
    "version": ("roost version", "roost --version"),
    "completion": (
        "echo 'eval \"$(roost completion bash)\"' >> ~/.bashrc",
        "echo 'eval \"$(roost completion zsh)\"' >> ~/.zshrc",
        "roost completion fish > ~/.config/fish/completions/roost.fish",
    ),
}
"""Command path below `roost` -> example command lines."""


def epilog(lines: tuple[str, ...]) -> str:
    """The help's closing paragraph; `\\b` keeps click from rewrapping the lines."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def example_lines(command: click.Command) -> list[str]:
    """The example command lines of `command`'s help, as `epilog` wrote them."""
    text = command.epilog or ""
    return [line.strip() for line in text.splitlines()[2:]] if text.startswith("\b\nExamples:") else []


def attach(group: click.Group, prefix: str = "") -> None:
    """Give every command of `group` (and of its subgroups) its examples."""
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if path in EXAMPLES:
            command.epilog = epilog(EXAMPLES[path])
        if isinstance(command, click.Group):
            attach(command, f"{path} ")

"""Cluster commands (preview): `roost nodes` asks the head's API; `roost node join` runs this
machine as a node, in the foreground (the one command besides `serve` that runs something)."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import click

from roost.cli.base import Context, RoostGroup, json_option, pass_context
from roost.cli.output import age, console, print_json, show, table
from roost.cli.serve import CLUSTER_PORTS_DEFAULT, parse_memory_budget, parse_port_range
from roost.serve_settings import (
    DEFAULT_EDGE_HOST,
    DEFAULT_EDGE_PORT,
    DEFAULT_INSTANCE_PORT_FIRST,
    DEFAULT_INSTANCE_PORT_LAST,
    default_home,
)
from roost.units import format_size


@click.command("nodes")
@json_option
@pass_context
def nodes(ctx: Context, as_json: bool) -> None:
    """List the cluster's machines (on its head): role, region, memory in use of its budget, instances, address, health.

    A machine that joined several times is listed once, as it joined last.
    """
    listed = ctx.client().request("GET", "/v1/nodes")
    if as_json:
        print_json(listed)
        return
    rows = table("NODE", "ROLE", "REGION", "MEMORY USED/BUDGET", "INSTANCES", "ADDRESS", "STATE", "SINCE")
    for node in listed:
        state = "alive" if node["alive"] else f"dead{': ' + node['reason'] if node['reason'] else ''}"
        since = node["started_at"] if node["alive"] else node["ended_at"]
        rows.add_row(
            node["name"],
            node["role"],
            node["region"] or "-",
            f"{format_size(node['memory_used'])}/{format_size(node['memory_budget'])}"
            if node["memory_budget"]
            else "-",
            str(node["instances"]),
            node["address"],
            state,
            f"{age(since)} ago" if since else "-",
        )
    show(rows)


@click.group("node", cls=RoostGroup)
def node() -> None:
    """Run this machine as a node of a cluster (preview)."""


def _announce(line: str) -> None:
    sys.stdout.write(f"roost: {line}\n")
    sys.stdout.flush()


@node.command("join", short_help="Join a cluster's head and stay joined, in the foreground.")
@click.argument("head")
@click.option("--region", required=True, envvar="ROOST_REGION", help="This machine's region, e.g. eu-west.")
@click.option(
    "--memory-budget",
    default="80%",
    show_default=True,
    envvar="ROOST_MEMORY_BUDGET",
    help="Memory this machine offers to instances (their limits add up to at most this): a share of RAM "
    "(80%) or a size (16G). Advertised to Ray as the resource roost_memory, in bytes.",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ROOST_CLUSTER_TOKEN_FILE",
    help="An owner-only copy of the head's HOME/cluster/token [default: HOME/cluster/token] "
    "[env ROOST_CLUSTER_TOKEN_FILE].",
)
@click.option("--name", envvar="ROOST_NODE_NAME", help="This machine's name in `roost nodes` [default: host name].")
@click.option(
    "--address",
    envvar="ROOST_NODE_ADDRESS",
    help="This machine's address on the cluster's network [default: the one that reaches HEAD].",
)
@click.option(
    "--host",
    default=DEFAULT_EDGE_HOST,
    show_default=True,
    envvar="ROOST_HOST",
    help="Address this node's public edge and peer door listen on.",
)
@click.option(
    "--port",
    default=DEFAULT_EDGE_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar="ROOST_PORT",
    help="This node's public edge: clients reach every app of the cluster here.",
)
@click.option(
    "--peer-port",
    type=click.IntRange(0, 65535),
    envvar="ROOST_PEER_PORT",
    help="This node's peer door: other nodes' edges forward requests for this node's instances here [default: 8081].",
)
@click.option(
    "--cluster-ports",
    metavar="FIRST-LAST",
    envvar="ROOST_CLUSTER_PORTS",
    help="Every port Ray opens on this machine lies in this block, which no app may connect to, on any address; "
    f"the same block as the head's [default: {CLUSTER_PORTS_DEFAULT}] [env ROOST_CLUSTER_PORTS].",
)
@click.option("--home", type=click.Path(path_type=Path), envvar="ROOST_HOME", help="State directory [env ROOST_HOME].")
def join(
    head: str,
    region: str,
    memory_budget: str,
    token_file: Path | None,
    name: str | None,
    address: str | None,
    host: str,
    port: int,
    peer_port: int | None,
    cluster_ports: str | None,
    home: Path | None,
) -> None:
    """Join the cluster whose head is HEAD (HOST or HOST:PORT, as `roost serve --cluster` printed; the
    port defaults to the first of --cluster-ports, as the head's) and stay joined in the foreground
    until SIGTERM or Ctrl-C, which leave it. Ray is restarted if it dies. The node runs the instances
    the head places on it (built here from the head's archives), serves every app on its public edge
    (--port) and takes other nodes' forwarded requests on its peer door (--peer-port).
    """
    from roost.cluster import (
        DEFAULT_PEER_PORT,
        NodeSettings,
        check_region,
        parse_head_address,
        ray_ports,
        run_node,
        token_path,
    )  # cluster commands only

    root = (home or default_home()).expanduser().resolve()
    budget = parse_memory_budget(memory_budget)
    block = parse_port_range("--cluster-ports", cluster_ports, CLUSTER_PORTS_DEFAULT) if cluster_ports else None
    door = DEFAULT_PEER_PORT if peer_port is None else peer_port
    instances = (DEFAULT_INSTANCE_PORT_FIRST, DEFAULT_INSTANCE_PORT_LAST)
    ports = ray_ports(block, apart={"the instance ports": instances, "--port": port, "--peer-port": door})
    settings = NodeSettings(
        home=root,
        head=parse_head_address(head, ports.gcs),
        region=check_region(region),
        memory_budget=budget,
        token_file=(token_file or token_path(root)).expanduser().resolve(),
        name=name or socket.gethostname(),
        address=address,
        edge_host=host,
        edge_port=port,
        peer_port=door,
        ports=ports,
    )
    if budget <= 0:
        raise click.BadParameter("a node offers some memory", param_hint="--memory-budget")
    logging.basicConfig(level=logging.INFO, format="roost: %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    console.print(f"joining {settings.head} as {settings.name}", markup=False)
    run_node(settings, _announce)

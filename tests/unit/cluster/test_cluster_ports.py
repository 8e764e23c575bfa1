"""Every port Ray opens lies in the cluster's block (`--cluster-ports`): the layout, the `ray start`
flags of a head and a node, the errors for a block that cannot hold Ray or overlaps another
listener, and the ports the sandbox closes to apps. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from roost.cli.main import cli
from roost.cli.serve import CLUSTER_PORTS_DEFAULT
from roost.cluster.cluster_settings import (
    DEFAULT_PORTS,
    PORTS_LEAST,
    RAY_DEFAULT_PORT,
    HeadSettings,
    NodeSettings,
    closed_to_apps,
    head_argv,
    node_argv,
    ray_ports,
)
from roost.errors import UsageError
from roost.runtime.ports import PortRange

# every `ray start` flag that names a port; `--port` is the head's GCS
PORT_FLAGS = (
    "--port",
    "--node-manager-port",
    "--object-manager-port",
    "--metrics-export-port",
    "--dashboard-agent-grpc-port",
    "--dashboard-agent-listen-port",
    "--runtime-env-agent-port",
    "--ray-client-server-port",
    "--min-worker-port",
    "--max-worker-port",
)


def ports_named(argv: list[str]) -> dict[str, list[int]]:
    """Each port flag of `argv` with the ports it names (a worker port list names several)."""
    named = {flag: [int(argv[i + 1])] for i, flag in enumerate(argv) if flag in PORT_FLAGS}
    if "--worker-port-list" in argv:
        named["--worker-port-list"] = [int(p) for p in argv[argv.index("--worker-port-list") + 1].split(",")]
    return named


def head(block: tuple[int, int] | None = None, gcs: int | None = None) -> list[str]:
    settings = HeadSettings(Path("/r"), "10.0.0.1", ray_ports(block, gcs))
    return head_argv("python", settings, Path("/r/cluster/ray"), ray_client=True)


def node(block: tuple[int, int] | None = None) -> list[str]:
    settings = NodeSettings(Path("/r"), "10.0.0.1:7300", "eu", 1, Path("/r/t"), "n", ports=ray_ports(block))
    return node_argv("python", settings, Path("/r/cluster/ray"))


def test_the_default_block_is_not_redis_port_and_the_cli_says_the_same() -> None:
    assert PortRange(7300, 7399) == DEFAULT_PORTS
    assert RAY_DEFAULT_PORT == 7300 and 6379 not in DEFAULT_PORTS
    assert DEFAULT_PORTS.describe() == CLUSTER_PORTS_DEFAULT
    for command in (["serve", "--help"], ["node", "join", "--help"]):
        shown = CliRunner().invoke(cli, command, terminal_width=200)
        assert f"[default: {DEFAULT_PORTS.describe()}]" in " ".join(shown.output.split()), shown.output


def test_the_head_pins_every_port_inside_the_block() -> None:
    argv = head()
    named = ports_named(argv)
    assert set(named) == set(PORT_FLAGS)
    assert named["--port"] == [7300]
    assert named["--node-manager-port"] == [7301]
    assert named["--ray-client-server-port"] == [7307]
    assert (named["--min-worker-port"], named["--max-worker-port"]) == ([7308], [7399])
    fixed = [port for flag, ports in named.items() if "worker" not in flag for port in ports]
    assert len(set(fixed)) == len(fixed)  # no two listeners on one port
    assert all(port in DEFAULT_PORTS for ports in named.values() for port in ports)


def test_a_node_pins_the_same_ports_but_the_gcs_and_the_client_server() -> None:
    named = ports_named(node((8000, 8031)))
    assert "--port" not in named and "--ray-client-server-port" not in named
    assert named["--node-manager-port"] == [8001]
    assert (named["--min-worker-port"], named["--max-worker-port"]) == ([8008], [8031])
    assert all(8000 <= port <= 8031 for ports in named.values() for port in ports)


def test_without_ray_client_the_head_names_no_client_port() -> None:
    settings = HeadSettings(Path("/r"), "10.0.0.1")
    argv = head_argv("python", settings, Path("/r/cluster/ray"))
    assert "--ray-client-server-port" not in argv  # Ray refuses the flag when Ray Client is not installed
    assert ports_named(argv)["--port"] == [7300]


def test_a_gcs_port_inside_the_workers_range_is_left_out_of_it() -> None:
    argv = head((7300, 7399), 7350)
    named = ports_named(argv)
    assert named["--port"] == [7350]
    assert named["--node-manager-port"] == [7300]
    assert "--min-worker-port" not in named
    workers = named["--worker-port-list"]
    assert 7350 not in workers and len(workers) == 100 - 8
    assert all(port in DEFAULT_PORTS for port in workers)


def test_a_block_too_small_for_ray_is_refused_with_the_least_size() -> None:
    ray_ports((7300, 7300 + PORTS_LEAST - 1))
    with pytest.raises(UsageError) as caught:
        ray_ports((7300, 7300 + PORTS_LEAST - 2))
    assert f"Ray needs at least {PORTS_LEAST}" in caught.value.message
    assert "--cluster-ports" in caught.value.hint and "the same on every machine" in caught.value.hint


def test_a_gcs_port_outside_the_block_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        ray_ports(None, 6379)
    assert caught.value.message == "--cluster-port 6379 lies outside --cluster-ports 7300-7399"
    assert "--cluster-ports FIRST-LAST" in caught.value.hint


@pytest.mark.parametrize(
    ("apart", "said"),
    [
        ({"--instance-ports": (7000, 7300)}, "overlaps --instance-ports 7000-7300"),
        ({"--port": 7399}, "overlaps --port 7399"),
        ({"--api-port": 7350}, "overlaps --api-port 7350"),
    ],
)
def test_a_block_overlapping_another_listener_is_refused(apart: dict[str, tuple[int, int] | int], said: str) -> None:
    with pytest.raises(UsageError) as caught:
        ray_ports(None, None, apart)
    assert said in caught.value.message
    assert "move one of them" in caught.value.hint


def test_ports_the_kernel_picks_and_listeners_elsewhere_are_fine() -> None:
    apart = {"--instance-ports": (20000, 29999), "--port": 0, "--https-port": None, "--api-port": 7070}
    assert ray_ports(None, None, apart).block == DEFAULT_PORTS


def test_the_apps_are_closed_out_of_the_block_and_a_node_also_out_of_its_heads_port() -> None:
    assert closed_to_apps(HeadSettings(Path("/r"), "10.0.0.1")) == (DEFAULT_PORTS,)
    same = NodeSettings(Path("/r"), "10.0.0.1:7300", "eu", 1, Path("/r/t"), "n")
    assert closed_to_apps(same) == (DEFAULT_PORTS,)
    elsewhere = NodeSettings(Path("/r"), "[fd00::1]:6380", "eu", 1, Path("/r/t"), "n", ports=ray_ports((8000, 8099)))
    assert closed_to_apps(elsewhere) == (PortRange(8000, 8099), PortRange(6380, 6380))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["node", "join", "10.0.0.1", "--region", "eu", "--cluster-ports", "7300-7310"], "Ray needs at least"),
        (["node", "join", "10.0.0.1", "--region", "eu", "--cluster-ports", "900-999"], "is not a usable range"),
        (["node", "join", "10.0.0.1", "--region", "eu", "--cluster-ports", "25000-25099"], "overlaps the instance"),
        (["serve", "--cluster-ports", "7300-7399"], "--cluster-ports goes with --cluster"),
        (["serve", "--cluster", "--cluster-address", "10.0.0.1", "--cluster-ports", "a-b"], "not a range of ports"),
    ],
)
def test_the_commands_refuse_a_bad_block_before_anything_starts(args: list[str], said: str, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, [*args], env={"ROOST_HOME": str(tmp_path)}, terminal_width=200)
    assert done.exit_code == 2, done.output
    assert said in done.output, done.output
    assert "hint:" in done.output, done.output

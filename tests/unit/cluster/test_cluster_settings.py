"""The head's and a node's `ray start` command lines, resources, labels and addresses; pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roost.cluster.cluster_settings import (
    HeadSettings,
    HealthChecks,
    NodeSettings,
    check_region,
    check_temp_dir,
    head_argv,
    node_argv,
    parse_head_address,
    ray_environment,
    ray_ports,
)
from roost.errors import UsageError


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_head_binds_its_address_with_tuned_health_checks_and_no_autoscaler() -> None:
    settings = HeadSettings(
        Path("/var/lib/roost"), "10.0.0.1", ray_ports((7300, 7399), 7380), HealthChecks(2.0, 0.5, 4)
    )
    argv = head_argv("/venv/bin/python", settings, Path("/var/lib/roost/cluster/ray"))
    assert argv[:5] == ["/venv/bin/python", "-m", "ray.scripts.scripts", "start", "--block"]
    assert "--head" in argv and "--no-monitor" in argv
    assert (option(argv, "--node-ip-address"), option(argv, "--port")) == ("10.0.0.1", "7380")
    assert json.loads(option(argv, "--system-config")) == {
        "health_check_period_ms": 2000,
        "health_check_timeout_ms": 500,
        "health_check_failure_threshold": 4,
    }
    assert option(argv, "--temp-dir") == "/var/lib/roost/cluster/ray"
    assert settings.gcs_address == "10.0.0.1:7380"


def test_a_node_advertises_its_budget_in_bytes_and_its_region() -> None:
    settings = NodeSettings(Path("/r"), "10.0.0.1:7300", "eu-west", 8 * 1024**3, Path("/r/t"), "box-1", "10.0.0.7")
    argv = node_argv("python", settings, Path("/r/cluster/ray"))
    assert "--head" not in argv
    assert option(argv, "--address") == "10.0.0.1:7300"
    assert json.loads(option(argv, "--resources")) == {"roost_memory": 8 * 1024**3, "roost_region_eu-west": 1}
    assert option(argv, "--labels") == "roost-role=node,roost-node=box-1,roost-region=eu-west"
    assert option(argv, "--node-ip-address") == "10.0.0.7"
    guessed = NodeSettings(Path("/r"), "h:1", "eu", 1, Path("/r/t"), "b")
    assert "--node-ip-address" not in node_argv("python", guessed, Path("/r/cluster/ray"))


def test_ray_gets_the_token_path_the_agent_socket_and_only_the_environment_it_needs() -> None:
    env = ray_environment(Path("/r/cluster/token"), Path("/r"), {"PATH": "/bin", "ROOST_TOKEN": "x", "SECRET": "y"})
    assert env == {
        "PATH": "/bin",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": "/r/cluster/token",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_gcs_rpc_server_reconnect_timeout_s": "5",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        "RAY_raylet_liveness_self_check_interval_ms": "2000",
        "HOME": "/r/cluster",
        "ROOST_AGENT_SOCKET": "/r/cluster/agent.sock",
    }


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.1", "10.0.0.1:7300"),
        ("10.0.0.1:6380", "10.0.0.1:6380"),
        (" head.lan ", "head.lan:7300"),
        ("[fd00::1]:7000", "[fd00::1]:7000"),
        ("fd00::1", "[fd00::1]:7300"),
    ],
)
def test_head_addresses(text: str, address: str) -> None:
    assert parse_head_address(text) == address


def test_a_head_address_without_a_port_takes_the_given_default() -> None:
    assert parse_head_address("10.0.0.1", 8000) == "10.0.0.1:8000"
    assert parse_head_address("10.0.0.1:7300", 8000) == "10.0.0.1:7300"


@pytest.mark.parametrize("text", ["", "10.0.0.1:http", "10.0.0.1:0", "10.0.0.1:70000"])
def test_bad_head_addresses_say_how_to_write_one(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_head_address(text)
    assert "HOST:PORT" in caught.value.hint


def test_region_names() -> None:
    assert check_region("eu-west-1") == "eu-west-1"
    assert check_region("a") == "a"
    for bad in ("EU", "-eu", "eu-", "eu_west", "1eu", "e" * 33, ""):
        with pytest.raises(UsageError):
            check_region(bad)


def test_a_home_too_deep_for_rays_socket_paths_is_refused_with_the_limit() -> None:
    assert check_temp_dir(Path("/var/lib/roost")) == Path("/var/lib/roost/cluster/ray")
    with pytest.raises(UsageError) as caught:
        check_temp_dir(Path("/tmp/pytest-of-root/pytest-12/test_something_long0/home"))
    assert "107-byte" in caught.value.message and "--home" in caught.value.hint

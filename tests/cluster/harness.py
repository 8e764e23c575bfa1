"""Real Roost commands on the namespaced hosts of netns.py: `roost serve --cluster` on one,
`roost node join` on others, `roost nodes --json` to see what the head sees.

Each process runs in its host's namespace (`ip netns exec`, which execs it: the pid is Roost's),
writes to a file, and is waited on with a deadline. Homes are short paths under /tmp (Ray's
socket paths must stay under 107 bytes), one folder per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.netns import Host
from tests.e2e.apps import wait_until

ROOST = Path(sys.executable).with_name("roost")  # the console script of this venv (the cluster one)
TIMEOUT_HEAD = 180.0  # a daemon and Ray's head on a busy two-core machine (8 s idle)
TIMEOUT_JOIN = 120.0
TIMEOUT_STOP = 60.0
STARTED: list[Running] = []  # every process `start` made, reaped by `reap_all` after the test
PROXY: dict[str, str] = {}  # the LAN's package-index proxy (conftest sets it): {"url": ...}


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "RAY_"))}
    env.update(ROOST_HOME=str(home), PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
    env["XDG_CONFIG_HOME"] = str(home / "config")
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY"):
        env.pop(name, None)
    if PROXY:
        env["HTTPS_PROXY"] = PROXY["url"]  # only uv goes out: the CLI talks to its daemon, Ray gets its own env
    return env


@dataclass
class Running:
    """A Roost command running in a host, its output in `log`."""

    host: Host
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    offset: int = 0  # where this run's output begins in `log` (a rejoin appends to the same file)

    def output(self) -> str:
        with self.log.open("rb") as file:
            file.seek(self.offset)
            return file.read().decode(errors="replace")

    def wait_for(self, text: str, within: float) -> float:
        """Seconds from the start until `text` appeared in the output; fails if the process ends first."""

        def seen() -> bool:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.proc.args} exited ({self.proc.returncode}) before {text!r}:\n{self.output()}"
                )
            return False

        wait_until(f"{text!r} from {self.proc.args[-1]}\n{self.output()}", seen, within)
        return time.monotonic() - self.started

    def stop(self, within: float = TIMEOUT_STOP) -> int:
        """SIGTERM, and its exit status within `within` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=within)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def start(host: Host, home: Path, args: list[str], name: str) -> Running:
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"{name}.out"
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as output:
        proc = subprocess.Popen(
            host.argv([str(ROOST), *args]),
            env=env_for(home),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = Running(host, home, proc, log, time.monotonic(), offset)
    STARTED.append(running)
    return running


def reap_all() -> None:
    """Kill and wait for every process `start` made that is still unreaped (after a failure)."""
    while STARTED:
        STARTED.pop().kill()


def serve_head(host: Host, home: Path, *extra: str) -> Running:
    args = ["serve", "--home", str(home), "--port", "0", "--api-port", "0", *extra]
    return start(host, home, [*args, "--cluster", "--cluster-address", host.address], "serve")


def join(host: Host, home: Path, head: Host, region: str, budget: str, token: Path, name: str) -> Running:
    args = ["node", "join", head.address, "--region", region, "--memory-budget", budget]  # the default port
    return start(host, home, [*args, "--token-file", str(token), "--name", name, "--home", str(home)], "node")


def roost(host: Host, home: Path, *args: str, within: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        host.argv([str(ROOST), *args]), env=env_for(home), capture_output=True, text=True, timeout=within
    )


def nodes(host: Host, home: Path) -> dict[str, dict[str, Any]]:
    """`roost nodes --json` on the head, by node name."""
    done = roost(host, home, "nodes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return {node["name"]: node for node in json.loads(done.stdout)}


def nodes_if_answered(host: Host, home: Path) -> dict[str, dict[str, Any]]:
    """`nodes`, or {} while the head does not answer (its Ray restarting)."""
    done = roost(host, home, "nodes", "--json")
    return {node["name"]: node for node in json.loads(done.stdout)} if done.returncode == 0 else {}


def copy_token(source: Path, home: Path) -> Path:
    """A node's owner-only copy of the head's token, as an operator would scp it."""
    target = home / "token"
    home.mkdir(parents=True, exist_ok=True)
    target.write_text(source.read_text())
    target.chmod(0o600)
    return target


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of these processes in MiB (shared pages split between their users)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024

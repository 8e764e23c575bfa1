"""A serving cluster for the tests: a head (`roost serve --cluster`) and nodes (`roost node join`),
each on its own namespaced machine, plus a client machine; apps pushed to the head; requests and
bounded load sent from the client's namespace with real clients (curl, httpx in client.py)."""

from __future__ import annotations

import collections
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.cluster.harness import (
    TIMEOUT_HEAD,
    TIMEOUT_JOIN,
    Running,
    copy_token,
    join,
    nodes_if_answered,
    roost,
    serve_head,
)
from tests.cluster.netns import Host, Lan
from tests.e2e.apps import wait_until

T = TypeVar("T")

EDGE_PORT = 8080
NODES_OF_TEST = ("head", "n2", "n3")  # the machines start_cluster starts, by name
BUDGET = "1G"
HEAD_FLAGS = ("--port", str(EDGE_PORT), "--host", "0.0.0.0", "--memory-budget", BUDGET)
REPO = Path(__file__).resolve().parents[2]
HANDLER = """\
import time


def handler(request):
    ms = int(request.query.get("ms", "0"))
    if ms:
        time.sleep(ms / 1000)
    return "ok\\n"
"""


def write_app(folder: Path, name: str, toml: str) -> Path:
    app = folder / "apps" / name
    app.mkdir(parents=True)
    (app / "handler.py").write_text(HANDLER)
    (app / "roost.toml").write_text(f'name = "{name}"\nentrypoint = "handler:handler"\n{toml}')
    return app


@dataclass
class Cluster:
    lan: Lan
    folder: Path
    head: Running
    regions: tuple[str, str, str]
    nodes: dict[str, Running] = field(default_factory=dict)

    @property
    def client(self) -> Host:
        return self.lan.hosts[-1]

    def host_of(self, name: str) -> Host:
        return self.lan.hosts[0] if name == "head" else self.lan.hosts[int(name[1:]) - 1]

    def name_of(self, address: str) -> str:
        """The node an instance's address belongs to (the head's own are on its loopback)."""
        host = address.rpartition(":")[0]
        if host.startswith("127."):
            return "head"
        return f"n{host.rpartition('.')[2]}"

    def roost(self, *args: str, within: float = 120) -> subprocess.CompletedProcess[str]:
        return roost(self.lan.hosts[0], self.folder / "h1", *args, within=within)

    def push(self, app: Path) -> float:
        began = time.monotonic()
        done = self.roost("push", str(app), within=600)
        assert done.returncode == 0, done.stdout + done.stderr + self.head.output()[-4000:]
        return time.monotonic() - began

    def placement(self, app: str, states: tuple[str, ...] = ("ready",)) -> collections.Counter[str]:
        """Web instances of `app` in `states` by node, as the head sees them."""
        done = self.roost("info", app, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        instances = json.loads(done.stdout).get("instances", [])
        return collections.Counter(
            self.name_of(i["address"]) for i in instances if i["state"] in states and not i.get("process")
        )

    def asleep(self, app: str) -> bool:
        return not self.placement(app, ("starting", "ready", "draining"))

    def timeline(self, since: float) -> str:
        """The head's events since the wall-clock time `since`, as seconds after it: what the
        cluster noticed and did (a machine lost, instances placed, started, ready)."""
        done = self.roost("events", "--all", "--last", "300", "--json")
        if done.returncode != 0:
            return done.stderr
        lines = [
            f"+{e['at'] - since:.1f}s {e['kind']}: {e['message'][:110]}"
            for e in json.loads(done.stdout)
            if e["at"] >= since and e["kind"].startswith(("node.", "instance.ready", "cluster.", "scale"))
        ]
        return "\n".join(lines)

    def isolation(self, app: str, node: str) -> list[int]:
        """The uids `roost info` read back from `app`'s instances on `node`."""
        done = self.roost("info", app, "--json")
        assert done.returncode == 0, done.stderr
        instances = json.loads(done.stdout)["instances"]
        return [
            i["isolation"]["identity"]["uid"][1]
            for i in instances
            if self.name_of(i["address"]) == node and i.get("isolation")
        ]

    def wait_placed(self, app: str, count: int, within: float = 120) -> collections.Counter[str]:
        return self.wait(
            f"{count} ready instances of {app}",
            lambda: (p := self.placement(app)) and sum(p.values()) == count and p,
            app,
            within,
        )

    def wait(self, what: str, probe: Callable[[], T | None], app: str, within: float = 120) -> T:
        """`wait_until`, saying on a timeout where `app`'s instances are and what the head did."""
        began = time.time()
        try:
            return wait_until(what, probe, within)
        except TimeoutError as exc:
            seen = self.placement(app, ("starting", "ready", "draining"))
            raise TimeoutError(
                f"{exc}; placed: {dict(seen)}; the head's events:\n{self.timeline(began - 30)}"
            ) from None

    def get(self, node: str, app: str, path: str = "/") -> tuple[int, dict[str, str]]:
        """One GET from the client machine to `node`'s public edge: status and headers (lower case)."""
        url = f"http://{self.host_of(node).address}:{EDGE_PORT}{path}"
        argv = ["curl", "-s", "-o", "/dev/null", "-D", "-", "-m", "30", "-H", f"Host: {app}.localhost", url]
        done = subprocess.run(self.client.argv(argv), capture_output=True, text=True, timeout=60)
        lines = done.stdout.replace("\r", "").splitlines()
        if not lines:
            return 0, {}
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}
        return status, headers

    def load(self, app: str, nodes: list[str], rate: float, seconds: float, path: str = "/") -> Load:
        """Start client.py in the client machine: `rate` requests/s over `nodes`' edges."""
        out = self.folder / f"load-{time.monotonic_ns()}.jsonl"
        urls = [f"http://{self.host_of(n).address}:{EDGE_PORT}{path}" for n in nodes]
        argv = [sys.executable, "-m", "tests.cluster.client", "--host", f"{app}.localhost"]
        argv += ["--rate", str(rate), "--seconds", str(seconds), "--out", str(out), *urls]
        proc = subprocess.Popen(self.client.argv(argv), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return Load(proc, out, time.monotonic())

    def listed(self) -> dict[str, dict[str, Any]]:
        """`roost nodes --json` on the head, by name ({} while it does not answer)."""
        return nodes_if_answered(self.lan.hosts[0], self.folder / "h1")

    def alive(self, name: str) -> bool:
        """Whether the head lists `name` alive (False while the head does not answer)."""
        return bool(self.listed().get(name, {}).get("alive"))

    def restart_head(self) -> None:
        """`roost serve --cluster` again on the head's home, as its service manager would."""
        self.head = serve_head(self.lan.hosts[0], self.folder / "h1", *HEAD_FLAGS, "--cluster-region", self.regions[0])
        self.head.wait_for("roost is ready", TIMEOUT_HEAD)

    def join(self, index: int, region: str) -> Running:
        name = f"n{index}"
        home = self.folder / f"h{index}"
        token = copy_token(self.folder / "h1/cluster/token", home)
        node = join(self.lan.hosts[index - 1], home, self.lan.hosts[0], region, BUDGET, token, name)
        self.nodes[name] = node
        return node


@dataclass
class Load:
    proc: subprocess.Popen[bytes]
    out: Path
    began: float

    def finish(self, within: float = 180) -> list[dict[str, Any]]:
        _, err = self.proc.communicate(timeout=within)
        assert self.proc.returncode == 0, err.decode()
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


def start_cluster(lan: Lan, folder: Path, regions: tuple[str, str, str] = ("main", "main", "main")) -> Cluster:
    """The head on the first machine (region regions[0]), nodes n2 and n3 on the next two; the last
    machine is the client."""
    head = serve_head(lan.hosts[0], folder / "h1", *HEAD_FLAGS, "--cluster-region", regions[0])
    head.wait_for("roost is ready", TIMEOUT_HEAD)
    cluster = Cluster(lan, folder, head, regions)
    for index, region in ((2, regions[1]), (3, regions[2])):
        cluster.join(index, region)
    for node in cluster.nodes.values():
        node.wait_for("joined", TIMEOUT_JOIN)
    wait_until("every machine taking work", lambda: cluster.head.output().count("takes work") >= 3, 120)
    return cluster


def failures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["status"] != 200]


def window(records: list[dict[str, Any]]) -> float:
    """Seconds from the first failed request to the last one sent (0 without failures)."""
    failed = failures(records)
    return failed[-1]["at"] - failed[0]["at"] if failed else 0.0


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]

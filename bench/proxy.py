"""Benchmark: a hello ASGI app (uvicorn, one process) behind nothing, nginx and Roost's edge.

    python bench/proxy.py [--seconds 10] [--connections 64] [--rounds 3] [--profile]
    python bench/proxy.py --cpu-per-request [--seconds 5] [--runs 3]
    python bench/proxy.py --firewall [--seconds 10] [--rounds 5]

Runs wrk (64 keep-alive connections) against each in one run, `--rounds`
times interleaved (the host's noise then hits all three alike), and prints
each round's requests/s and p99, the medians of requests/s, p50 and p99, the
Roost/nginx throughput as the median of the rounds' ratios (each round's pair
shares the host's noise) and as the ratio of the medians, and p99 at half of
the peak load. It names the edge's build: compiled with mypyc (the normal
install) or pure Python (set ROOST_PURE_PYTHON=1 to compare). Not a test:
figures depend on the machine. Needs `nginx` and `wrk` (Debian: apt-get
install nginx wrk). nginx runs on loopback only, from a
temporary prefix with its own config, pid and logs, and is stopped after.

Half load: wrk has no fixed-rate mode (wrk2 is not in Debian), so each of the
same 64 connections waits a fixed delay before each request (wrk's `delay()`
hook); the delay is chosen so the offered rate is half the lowest peak of the
three, and the rate wrk actually achieved is printed beside the latencies.

`--profile` runs the edge under cProfile during the peak run and prints the
functions that cost the most.

The edge writes a request log line per answer, as `roost serve` does; nginx
runs with `access_log off`, so the comparison charges that log to Roost.

`--cpu-per-request` measures instead what the proxy's own process spends per
request: CPU seconds (user + sys, from /proc/<pid>/stat) of the edge (with its
request log and without, to show that log's cost), and of nginx's processes for
reference, over a fixed load (wrk -t1, `--seconds`,
`--connections`), divided by the requests wrk completed; `--runs` times each,
alternating, median printed. Far less noisy than throughput on a shared machine.

`--firewall` (root and nft) measures what Roost's nftables table costs on the edge's path: the
app listens on an instance port (from the default range) under an app's uid, as an instance
does, and wrk runs against the edge `--rounds` times with the table installed and as often
without it, alternating (the order flips each round); it prints each pair, the medians, and
the median of the pairs' with/without ratios, of throughput and of the CPU the edge and the
app spend per request (far less noisy on a shared machine).

`--tls` measures HTTPS: the edge's TLS door (`roost serve --tls-cert`/`--https-port`: TLS
1.2/1.3, modern ciphers) against nginx with the same self-signed ECDSA certificate and the
same protocols and ciphers, wrk over keep-alive HTTPS, `--rounds` interleaved, the median of
the rounds' roost/nginx ratios printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "hello.localhost"
BODY = b"Hello, world!"


# -- the app under test (imported by uvicorn in its own process) ------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The hello app: what a real handler would answer, no more."""
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


# -- the Roost edge in its own process, with a runtime of one fixed instance -------------------


async def start_door(edge: Any, sock: socket.socket, tls: Path | None) -> None:
    """Plain HTTP, or the HTTPS door `roost serve --tls-cert` uses, with the same certificate as nginx."""
    if tls is None:
        await edge.start(sock)
        return
    from roost.edge.tls import TlsTable, server_context

    edge.update_tls(TlsTable(default=server_context(tls / "cert.pem", tls / "key.pem")))
    await edge.start_https(sock)


def serve_edge(fd: int, upstream_port: int, profile: Path | None, request_log: bool, tls: Path | None = None) -> None:
    import cProfile

    import uvloop

    from roost.edge import AppRoute, Edge, EdgeSettings, RouteTable
    from roost.model import AppName, DeploymentId, InstanceId
    from roost.runtime.protocol import RuntimeListener, Slot, StartKind

    deployment = DeploymentId("bench001")

    class StaticRuntime:
        """One ready instance at 127.0.0.1:upstream_port that always has a slot."""

        def __init__(self) -> None:
            self.in_flight = 0

        def subscribe(self, listener: RuntimeListener) -> None:
            pass

        def try_acquire(self, dep: DeploymentId) -> Slot:
            self.in_flight += 1
            return Slot(InstanceId("ibench0001"), dep, "127.0.0.1", upstream_port, StartKind.FORK, self._release)

        def _release(self, slot: Slot) -> None:
            self.in_flight -= 1

        def request_capacity(self, dep: DeploymentId, slots: int, region: str = "") -> None:
            pass

    async def main() -> None:
        # Per-client rate limiting stays on (its cost is measured), set above what one wrk address sends.
        settings = EdgeSettings(rate_per_client=1e9, rate_burst=10**9)
        edge = Edge(StaticRuntime(), settings)  # type: ignore[arg-type]
        route = AppRoute("hello", ((deployment, 100),), frozenset({deployment}), False, 5.0, 10 << 20, True)
        edge.update_routes(RouteTable("localhost", {AppName("hello"): route}))
        logs_dir = tempfile.mkdtemp(prefix="roost-bench-logs-")
        if request_log:  # as `roost serve` does: a line in the app's log per answer
            from roost.applog import LogBook
            from roost.requestlog import AnswerLog

            edge.on_answer = AnswerLog(LogBook(Path(logs_dir)), lambda: {deployment: "hello"})
        sock = socket.socket(fileno=fd)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await start_door(edge, sock, tls)
        await stop.wait()
        await edge.close(1.0)
        shutil.rmtree(logs_dir, ignore_errors=True)

    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    uvloop.run(main())
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)


# -- the harness --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


def wait_http(port: int, host: str, deadline: float = 15.0, tls: bool = False) -> None:
    """Until something on `port` answers HTTP 200 (over TLS, unverified, with `tls`), or fail after `deadline` s."""
    end = time.monotonic() + deadline
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            conn = context.wrap_socket(raw, server_hostname=host) if tls else raw
            conn.sendall(request)
            if conn.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port} within {deadline}s")


@dataclass
class Served:
    port: int
    pid: int  # the process we started (nginx's master; its worker is a child)


@contextlib.contextmanager
def process(
    argv: list[str], pass_fds: tuple[int, ...] = (), env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(argv, pass_fds=pass_fds, env=env, start_new_session=True)
    try:
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def serve_app(fd: int) -> None:
    """uvicorn on the inherited TCP socket (its `--fd` assumes a Unix socket, which loses TCP_NODELAY)."""
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(app, http="httptools", loop="uvloop", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def uvicorn_app() -> Iterator[int]:
    sock = bound_socket()
    argv = [sys.executable, str(Path(__file__)), "--serve-app", str(sock.fileno())]
    port = sock.getsockname()[1]
    with process(argv, (sock.fileno(),)):
        sock.close()
        wait_http(port, HOST)
        yield port


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of `pid` and its children (nginx's worker), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for path in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            fields = path.joinpath("stat").read_text().rpartition(")")[2].split()
            if path.name == str(pid) or int(fields[1]) == pid:  # fields[1] is the ppid
                user += int(fields[11])
                system += int(fields[12])
    return user / ticks, system / ticks


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{
        server 127.0.0.1:{upstream};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port}{listen_tls};
        {tls}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


# The edge's policy (roost/edge/tls.py): TLS 1.2 and 1.3, ECDHE with AES-GCM or ChaCha20, no session tickets
# on either side's account (each wrk connection handshakes once and then keeps alive).
NGINX_TLS = """ssl_certificate {folder}/cert.pem;
        ssl_certificate_key {folder}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers on;"""


def make_certificate() -> Path:
    """A self-signed ECDSA P-256 certificate for HOST in a new folder (cert.pem, key.pem), for both proxies."""
    from roost.certs import self_signed

    folder = Path(tempfile.mkdtemp(prefix="roost-bench-tls-"))
    folder.chmod(0o755)
    key, cert = self_signed(HOST, days=1)
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return folder


@contextlib.contextmanager
def nginx(upstream: int, tls: Path | None = None) -> Iterator[Served]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = Path(tempfile.mkdtemp(prefix="roost-bench-nginx-"))
    prefix.chmod(0o755)
    try:
        probe = bound_socket()  # nginx wants a port number: a free one, released just before it binds
        port = probe.getsockname()[1]
        probe.close()
        conf = prefix / "nginx.conf"
        listen_tls, directives = (" ssl", NGINX_TLS.format(folder=tls)) if tls is not None else ("", "")
        conf.write_text(
            NGINX_CONF.format(prefix=prefix, upstream=upstream, port=port, listen_tls=listen_tls, tls=directives)
        )
        with process([binary, "-p", str(prefix), "-c", str(conf)]) as child:
            wait_http(port, HOST, tls=tls is not None)
            yield Served(port, child.pid)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@contextlib.contextmanager
def roost_edge(
    upstream: int, profile: Path | None, request_log: bool = True, tls: Path | None = None
) -> Iterator[Served]:
    sock = bound_socket()
    sock.setblocking(False)
    argv = [sys.executable, str(Path(__file__)), "--serve-edge", str(sock.fileno()), "--upstream", str(upstream)]
    if not request_log:
        argv.append("--no-request-log")
    if profile is not None:
        argv += ["--profile-to", str(profile)]
    if tls is not None:
        argv += ["--tls-folder", str(tls)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    port = sock.getsockname()[1]
    with process(argv, (sock.fileno(),), env) as child:
        sock.close()
        wait_http(port, HOST, tls=tls is not None)
        yield Served(port, child.pid)


def milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    name: str, port: int, seconds: int, connections: int, delay_ms: int = 0, threads: int = 2, scheme: str = "http"
) -> Result:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Host: {HOST}"]
    script = None
    if delay_ms:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        script.write(f"function delay()\n  return {delay_ms}\nend\n")
        script.close()
        argv += ["-s", script.name]
    try:
        url = f"{scheme}://127.0.0.1:{port}/"
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    finally:
        if script is not None:
            os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = milliseconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if re.search(r"Non-2xx|Socket errors", out):
        notes = " ".join(line.strip() for line in out.splitlines() if "rror" in line or "Non-2xx" in line)
        print(f"  note for {name}: {notes}")
    return Result(name, rps, p50, p99, requests)


def table(title: str, results: list[Result]) -> None:
    print(f"\n{title}")
    print(f"  {'':8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"  {r.name:8} {r.rps:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}")


def print_profile(path: Path) -> None:
    import pstats

    print("\nedge profile (cProfile, peak run, top 25 by own time):")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(25)


def check_tools() -> None:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install nginx wrk")


def cpu_per_request(name: str, served: Served, seconds: int, connections: int) -> tuple[float, float]:
    """Microseconds of the proxy's user and system CPU per request completed under one wrk -t1 run."""
    user, system = cpu_seconds(served.pid)
    result = wrk(name, served.port, seconds, connections, threads=1)
    user_after, system_after = cpu_seconds(served.pid)
    return (user_after - user) / result.requests * 1e6, (system_after - system) / result.requests * 1e6


def run_cpu(seconds: int, connections: int, runs: int) -> None:
    check_tools()
    print(f"{os.cpu_count()} CPUs; wrk -t1 -c{connections} -d{seconds}s, {runs} runs each; CPU of the proxy only")
    print(f"edge: {edge_build()}")
    with (
        uvicorn_app() as upstream,
        nginx(upstream) as nginx_served,
        roost_edge(upstream, None) as edge_served,
        roost_edge(upstream, None, request_log=False) as quiet_served,
    ):
        targets = {"nginx": nginx_served, "roost": edge_served, "roost, no request log": quiet_served}
        for served in targets.values():
            wrk("warm-up", served.port, 2, connections)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        for _ in range(runs):
            for name, served in targets.items():
                samples[name].append(cpu_per_request(name, served, seconds, connections))
    print(f"  {'':22} {'CPU us/request':>14} {'user':>6} {'sys':>6}   (medians; totals of each run)")
    for name, values in samples.items():
        total = statistics.median(u + s for u, s in values)
        user = statistics.median(u for u, _ in values)
        system = statistics.median(s for _, s in values)
        listed = " ".join(f"{u + s:.1f}" for u, s in values)
        print(f"  {name:22} {total:>14.1f} {user:>6.1f} {system:>6.1f}   ({listed})")


def median_result(name: str, results: list[Result]) -> Result:
    """One row from several runs of the same target: the median of each figure."""
    return Result(
        name,
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.requests for r in results),
    )


def rounds_of(
    title: str,
    targets: dict[str, int],
    rounds: int,
    seconds: int,
    connections: int,
    delay_ms: int = 0,
    scheme: str = "http",
) -> tuple[list[Result], float]:
    """`rounds` runs of each target, interleaved (direct, nginx, roost, direct, ...) so that a noisy
    spell on the host hits all three alike. Prints every round; returns one median row per target
    and the median of the rounds' roost/nginx throughput ratios (each round's pair shares its noise)."""
    runs: dict[str, list[Result]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, port in targets.items():
            runs[name].append(wrk(name, port, seconds, connections, delay_ms, scheme=scheme))
    print(f"\n{title}")
    print(f"  {'round':8} " + " ".join(f"{name + ' req/s':>13} {'p99':>6}" for name in runs) + "  roost/nginx")
    for index in range(rounds):
        row = [runs[name][index] for name in runs]
        ratio = runs["roost"][index].rps / runs["nginx"][index].rps
        print(f"  {index + 1:<8} " + " ".join(f"{r.rps:>13.0f} {r.p99_ms:>6.2f}" for r in row) + f"  {ratio:>11.2f}")
    ratios = [r.rps / n.rps for r, n in zip(runs["roost"], runs["nginx"], strict=True)]
    return [median_result(name, results) for name, results in runs.items()], statistics.median(ratios)


def edge_build() -> str:
    """How the edge under test runs: compiled with mypyc, or pure Python (and why)."""
    sys.path.insert(0, str(ROOT))
    import roost.edge
    import roost.edge.client  # imported to learn which build it loads

    return roost.edge.describe_build()


def run(seconds: int, connections: int, profile: bool, rounds: int) -> None:
    check_tools()
    print(f"{os.cpu_count()} CPUs; wrk -t2 -c{connections} -d{seconds}s, {rounds} interleaved rounds, medians")
    print(f"app: uvicorn (httptools, uvloop), 1 process; edge: {edge_build()}")
    profile_path = Path(tempfile.mkdtemp(prefix="roost-bench-")) / "edge.prof" if profile else None
    with uvicorn_app() as upstream, nginx(upstream) as nginx_served, roost_edge(upstream, profile_path) as edge_served:
        targets = {"direct": upstream, "nginx": nginx_served.port, "roost": edge_served.port}
        for port in targets.values():
            wrk("warm-up", port, 2, connections)
        peak_title = f"peak load ({connections} connections, no pause)"
        peak, paired = rounds_of(peak_title, targets, rounds, seconds, connections)
        half_rate = min(r.rps for r in peak) / 2
        delay_ms = max(1, round(connections * 1000 / half_rate))
        half_title = f"half load (offered ~{half_rate:.0f} req/s: {connections} connections, {delay_ms} ms apart)"
        half, _ = rounds_of(half_title, targets, rounds, seconds, connections, delay_ms)
    by_name = {r.name: r for r in peak}
    table(f"peak load, medians of {rounds} rounds", peak)
    print(f"  roost/nginx throughput {paired:.2f} (median of the rounds' ratios)")
    print(f"  roost/nginx throughput {by_name['roost'].rps / by_name['nginx'].rps:.2f} (ratio of the medians)")
    print(f"  roost/direct throughput {by_name['roost'].rps / by_name['direct'].rps:.2f}")
    print(f"  p99 roost - nginx {by_name['roost'].p99_ms - by_name['nginx'].p99_ms:+.2f} ms")
    table(f"half load, medians of {rounds} rounds", half)
    half_by = {r.name: r for r in half}
    print(f"  p99 roost - direct {half_by['roost'].p99_ms - half_by['direct'].p99_ms:+.2f} ms")
    print(f"  p99 nginx - direct {half_by['nginx'].p99_ms - half_by['direct'].p99_ms:+.2f} ms")
    if profile_path is not None:
        print_profile(profile_path)


def run_tls(seconds: int, connections: int, rounds: int) -> None:
    """HTTPS throughput of the edge's TLS door against nginx's, same certificate, same policy, same app."""
    check_tools()
    print(f"{os.cpu_count()} CPUs; wrk -t2 -c{connections} -d{seconds}s over HTTPS (keep-alive), {rounds} rounds")
    print(f"app: uvicorn, 1 process; edge: {edge_build()}; certificate: ECDSA P-256, TLS 1.2/1.3 both sides")
    folder = make_certificate()
    try:
        with (
            uvicorn_app() as upstream,
            nginx(upstream, folder) as nginx_served,
            roost_edge(upstream, None, tls=folder) as edge_served,
        ):
            targets = {"nginx": nginx_served.port, "roost": edge_served.port}
            for port in targets.values():
                wrk("warm-up", port, 2, connections, scheme="https")
            title = f"HTTPS peak load ({connections} connections, no pause)"
            peak, paired = rounds_of(title, targets, rounds, seconds, connections, scheme="https")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    by_name = {r.name: r for r in peak}
    table(f"HTTPS peak load, medians of {rounds} rounds", peak)
    print(f"  roost/nginx HTTPS throughput {paired:.2f} (median of the rounds' ratios)")
    print(f"  p99 roost - nginx {by_name['roost'].p99_ms - by_name['nginx'].p99_ms:+.2f} ms")


@contextlib.contextmanager
def app_as_instance(sock: socket.socket, uid: int) -> Iterator[Served]:
    """The app on `sock` (an instance port) under an app's `uid`, as Roost runs an instance."""
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    argv += [sys.executable, str(Path(__file__)), "--serve-app", str(sock.fileno())]
    port = sock.getsockname()[1]
    with process(argv, (sock.fileno(),)) as child:
        sock.close()
        wait_http(port, HOST)
        yield Served(port, child.pid)


class FirewallTable:
    """Roost's rules for the default ranges, as `roost serve` installs them, switched on and off."""

    def __init__(self, home: Path) -> None:
        sys.path.insert(0, str(ROOT))
        from roost.runtime.sandbox import SandboxSettings, firewall

        self.firewall = firewall
        binary = firewall.nft_binary()
        if os.geteuid() != 0 or binary is None:
            raise SystemExit("--firewall needs root and nft (apt-get install nftables)")
        self.nft = [binary]
        self.table = firewall.table_name(home)
        defaults = SandboxSettings()
        self.rules = firewall.Rules(defaults.uid_first, defaults.uid_last, defaults.ports, (7070,))

    def on(self) -> None:
        self.firewall.apply(self.firewall.ruleset(self.table, self.rules), self.nft)

    def off(self) -> None:
        self.firewall.apply(self.firewall.removal(self.table), self.nft)


def run_firewall(seconds: int, connections: int, rounds: int) -> None:
    """The edge's throughput and CPU per request with Roost's firewall table and without, alternating."""
    check_tools()
    sys.path.insert(0, str(ROOT))
    from roost.runtime.ports import PortBook
    from roost.runtime.sandbox import SandboxSettings

    defaults = SandboxSettings()
    print(f"{os.cpu_count()} CPUs; wrk -t2 -c{connections} -d{seconds}s against the edge, {rounds} rounds each way")
    print(f"edge: {edge_build()}; app as uid {defaults.uid_last} on an instance port of {defaults.ports.describe()}")
    home = Path(tempfile.mkdtemp(prefix="roost-bench-fw-"))
    rules = FirewallTable(home)
    runs: dict[str, list[Result]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}  # us of edge + app CPU per request
    try:
        with (
            app_as_instance(PortBook(defaults.ports).listener(), defaults.uid_last) as app_served,
            roost_edge(app_served.port, None) as edge,
        ):
            wrk("warm-up", edge.port, 2, connections)
            for index in range(rounds):
                for name in ("with", "without") if index % 2 == 0 else ("without", "with"):
                    if name == "with":
                        rules.on()
                    else:
                        rules.off()
                    before = sum(cpu_seconds(edge.pid) + cpu_seconds(app_served.pid))
                    runs[name].append(wrk(name, edge.port, seconds, connections))
                    after = sum(cpu_seconds(edge.pid) + cpu_seconds(app_served.pid))
                    cpu[name].append((after - before) / runs[name][-1].requests * 1e6)
    finally:
        rules.off()
        home.rmdir()
    print_firewall_rounds(runs, cpu)


def print_firewall_rounds(runs: dict[str, list[Result]], cpu: dict[str, list[float]]) -> None:
    print(f"\n  {'round':6} {'with req/s':>11} {'CPU us':>7} {'without req/s':>14} {'CPU us':>7}  ratio req/s  CPU")
    ratios, cpu_ratios = [], []
    for index, (on, off) in enumerate(zip(runs["with"], runs["without"], strict=True)):
        ratios.append(on.rps / off.rps)
        cpu_ratios.append(cpu["with"][index] / cpu["without"][index])
        pair = f"{on.rps:>11.0f} {cpu['with'][index]:>7.1f} {off.rps:>14.0f} {cpu['without'][index]:>7.1f}"
        print(f"  {index + 1:<6} {pair}  {ratios[-1]:>11.3f} {cpu_ratios[-1]:.3f}")
    table(
        f"edge with and without the firewall, medians of {len(ratios)} rounds",
        [median_result(name, results) for name, results in runs.items()],
    )
    print(f"  with/without throughput {statistics.median(ratios):.3f} (median of the rounds' ratios)")
    print(f"  with/without CPU per request (edge + app) {statistics.median(cpu_ratios):.3f} (median of the ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cpu-per-request", action="store_true", help="measure proxy CPU per request instead")
    parser.add_argument("--runs", type=int, default=3, help="with --cpu-per-request: runs per proxy")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each target; medians printed")
    parser.add_argument("--firewall", action="store_true", help="the edge with Roost's nftables table and without")
    parser.add_argument("--tls", action="store_true", help="HTTPS throughput: the edge's TLS door against nginx's")
    parser.add_argument("--tls-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-app", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-edge", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-request-log", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_app is not None:
        serve_app(args.serve_app)
    elif args.serve_edge is not None:
        serve_edge(args.serve_edge, args.upstream, args.profile_to, not args.no_request_log, args.tls_folder)
    elif args.cpu_per_request:
        run_cpu(args.seconds, args.connections, args.runs)
    elif args.firewall:
        run_firewall(args.seconds, args.connections, args.rounds)
    elif args.tls:
        run_tls(args.seconds, args.connections, args.rounds)
    else:
        run(args.seconds, args.connections, args.profile, args.rounds)


if __name__ == "__main__":
    main()

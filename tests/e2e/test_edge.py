"""The edge router end to end (issue 5's "Done when"): a WebSocket echo through the router, a
90/10 traffic split set with `roost traffic` that is sticky per client, custom domains, the
admin API (and a second client address) still served while one address floods the edge, and
1 GiB up and 1 GiB down through the daemon in bounded memory.

One daemon for the module: fastapi-hello pushed once, a tiny handler app pushed twice (its
answer names the version) for the split, and a streaming ASGI app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roost.edge import describe_build
from tests.e2e.apps import EXAMPLES, get, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, running

SPLIT_APP = "abtest"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's magic string
FRESH_CLIENTS = 300  # P(outside 4%..17% | p = 0.1) is about 1e-4
FLOOD_CONNECTIONS = 300  # more than the default per-address limit (256)
FLOOD_MIN_SECONDS = 3.0
FLOOD_MAX_SECONDS = 60.0
ADMIN_DEADLINE = 10.0
STREAM_APP = "stream"
GIB = 1 << 30
MIB = 1 << 20
LIMIT_GROWTH = 64 * MIB  # what the daemon's peak memory may grow by while 1 GiB passes each way
STREAM_FILES = {
    "roost.toml": (
        f'name = "{STREAM_APP}"\nentrypoint = "app:app"\n'
        '[limits]\nbody = "2G"\ntimeout = "300s"\ncpu = 1\ncpu_budget = "10s"\nmemory = "256M"\n'
    ),
    "app.py": """\
CHUNK = b"x" * (1 << 20)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "PUT":  # count the body as it comes
        seen = 0
        more = True
        while more:
            message = await receive()
            seen += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(seen).encode()
    else:  # GET /?N: N bytes, a mebibyte at a time
        body = b""
        size = int(scope["query_string"] or b"0")
    headers = [(b"content-length", b"%d" % (len(body) if body else size))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if body:
        await send({"type": "http.response.body", "body": body})
        return
    for _ in range(size // len(CHUNK)):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b"x" * (size % len(CHUNK))})
""",
}


def handler_app(version: str) -> dict[str, str]:
    return {
        "roost.toml": f'name = "{SPLIT_APP}"\nentrypoint = "handler:handler"\n',
        "handler.py": f"def handler(request):\n    return 'answer from {version}'\n",
    }


class Module:
    """What the module's tests share: the daemon and the split app's two deployments."""

    def __init__(self, daemon: Daemon, first: str, second: str) -> None:
        self.daemon = daemon
        self.first = first
        self.second = second


def deployment_ids(daemon: Daemon, app: str) -> list[str]:
    """Newest first."""
    result = daemon.cli("deployments", app, "--json")
    assert result.returncode == 0, result.stderr
    return [d["id"] for d in json.loads(result.stdout)]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    root = tmp_path_factory.mktemp("edge")
    home = root / "home"
    home.mkdir()
    with running(home) as daemon:
        pushed(daemon, EXAMPLES / "fastapi-hello")
        v1 = write_app(root, "v1", handler_app("v1"))
        v2 = write_app(root, "v2", handler_app("v2"))
        pushed(daemon, v1, "-m", "v1")
        pushed(daemon, v2, "-m", "v2", "--no-promote")
        second, first = deployment_ids(daemon, SPLIT_APP)[:2]
        pushed(daemon, write_app(root, STREAM_APP, STREAM_FILES))
        yield Module(daemon, first, second)


# --- WebSocket ---------------------------------------------------------------------------------


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head up to the blank line, and whatever arrived after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed before the end of the head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (FIN set, masked as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


class FrameReader:
    """Server frames from a socket (which are never masked), with bytes left over from the head."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.pending = pending

    def take(self, count: int) -> bytes:
        if len(self.pending) < count:
            self.pending += recv_exactly(self.sock, count - len(self.pending))
        taken, self.pending = self.pending[:count], self.pending[count:]
        return taken

    def frame(self) -> tuple[bool, int, bytes]:
        first, second = self.take(2)
        assert not second & 0x80, "a server must not mask its frames"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.take(8))
        return bool(first & 0x80), first & 0x0F, self.take(length)

    def message(self) -> tuple[int, bytes]:
        """One whole message (joining continuation frames)."""
        fin, opcode, payload = self.frame()
        while not fin:
            fin, more, chunk = self.frame()
            assert more == 0, f"expected a continuation frame, got opcode {more}"
            payload += chunk
        return opcode, payload


def test_websocket_echo_through_the_router(edge: Module) -> None:
    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET /ws HTTP/1.1\r\nHost: fastapi-hello.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", edge.daemon.edge_port), timeout=30) as sock:
        sock.sendall(request)
        head, rest = read_head(sock)
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1.1 101"), head
        fields = {name.strip().lower(): value.strip() for name, _, value in (x.partition(b":") for x in lines[1:])}
        assert fields.get(b"upgrade", b"").lower() == b"websocket", head
        expected = base64.b64encode(hashlib.sha1(key + WS_GUID, usedforsecurity=False).digest())
        assert fields.get(b"sec-websocket-accept") == expected, head
        frames = FrameReader(sock, rest)
        for text in ("hello through roost", "ünïcode ✓", "x" * 70_000):  # 7-, 16- and 64-bit lengths
            sock.sendall(masked_frame(0x1, text.encode()))
            opcode, payload = frames.message()
            assert opcode == 0x1
            assert payload.decode() == text
        sock.sendall(masked_frame(0x8, struct.pack("!H", 1000)))
        opcode, payload = frames.message()
        assert opcode == 0x8, "the app should answer a close with a close"


# --- Traffic split -----------------------------------------------------------------------------


def ask(client: httpx.Client, cookie: str | None = None) -> tuple[str, str | None]:
    """One request to the split app as a client with `cookie` (None: a new client).

    The client's cookie jar is emptied first, so only the cookie passed here is sent. Returns
    the version that answered and the split cookie the edge set, if any.
    """
    client.cookies.clear()
    headers = {"Host": f"{SPLIT_APP}.localhost"}
    if cookie is not None:
        headers["Cookie"] = cookie
    response = client.get("/", headers=headers)
    assert response.status_code == 200, response.text
    text = response.text
    assert text in ("answer from v1", "answer from v2"), text
    set_cookie = response.headers.get("set-cookie")
    return text.removeprefix("answer from "), set_cookie.split(";", 1)[0] if set_cookie else None


def test_traffic_split_90_10_is_sticky_and_promote_moves_everyone(edge: Module) -> None:
    daemon, first, second = edge.daemon, edge.first, edge.second
    split = daemon.cli("traffic", SPLIT_APP, f"{first}=90", f"{second}=10")
    assert split.returncode == 0, split.stderr
    shown = json.loads(daemon.cli("traffic", SPLIT_APP, "--json").stdout)
    assert {e["deployment"]: e["weight"] for e in shown} == {first: 90, second: 10}

    seen: Counter[str] = Counter()
    cookies: dict[str, str] = {}
    with httpx.Client(base_url=daemon.edge_url, timeout=30) as client:
        for _ in range(FRESH_CLIENTS):
            version, cookie = ask(client)
            seen[version] += 1
            assert cookie is not None, "a split answer must set the sticky cookie"
            assert cookie.split("=", 1)[1] == (first if version == "v1" else second), cookie
            cookies.setdefault(version, cookie)
        share = seen["v2"] / FRESH_CLIENTS
        assert 0.04 <= share <= 0.17, f"10% weight got {seen['v2']} of {FRESH_CLIENTS} new clients"

        for version, cookie in cookies.items():  # each side, 20 requests with its cookie
            assert [ask(client, cookie)[0] for _ in range(20)] == [version] * 20

        promoted = daemon.cli("promote", SPLIT_APP, second)
        assert promoted.returncode == 0, promoted.stderr
        shown = json.loads(daemon.cli("traffic", SPLIT_APP, "--json").stdout)
        assert {e["deployment"]: e["weight"] for e in shown if e["weight"]} == {second: 100}
        assert all(ask(client)[0] == "v2" for _ in range(50))
        assert ask(client, cookies["v1"])[0] == "v2", "a cookie for a deployment with weight 0 must not stick"


@pytest.mark.parametrize(
    ("weights", "names"),
    [
        (("nosuchdeployment=100",), "nosuchdeployment"),
        (("{first}=ninety", "{second}=10"), "ninety"),
        (("{first}",), "{first}"),
    ],
)
def test_traffic_refuses_unknown_deployments_and_bad_weights(
    edge: Module, weights: tuple[str, ...], names: str
) -> None:
    def fill(text: str) -> str:
        return text.format(first=edge.first, second=edge.second)

    before = edge.daemon.cli("traffic", SPLIT_APP, "--json").stdout
    result = edge.daemon.cli("traffic", SPLIT_APP, *map(fill, weights))
    assert result.returncode in (1, 2), (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()
    assert 1 <= len(message) <= 2, result.stderr  # the error, and perhaps a hint
    assert message[0].startswith("error: "), result.stderr
    assert fill(names) in message[0], result.stderr
    assert edge.daemon.cli("traffic", SPLIT_APP, "--json").stdout == before, "a refused split must change nothing"


# --- Custom domains ----------------------------------------------------------------------------


def test_custom_domain_add_list_remove(edge: Module) -> None:
    daemon = edge.daemon
    host = "shop.example.test"
    assert get(daemon, host).status_code == 404
    added = daemon.cli("domains", "fastapi-hello", "add", host)
    assert added.returncode == 0, added.stderr
    reached = get(daemon, host)  # the table is rebuilt before the API answers: no wait
    assert reached.status_code == 200, reached.text
    assert "from FastAPI" in reached.text
    assert get(daemon, f"www.{host}").status_code == 404, "a domain routes that host only"
    listed = daemon.cli("domains", "fastapi-hello", "list")
    assert listed.returncode == 0, listed.stderr
    assert host in listed.stdout.split()
    assert [d["host"] for d in json.loads(daemon.cli("domains", "fastapi-hello", "--json").stdout)] == [host]

    removed = daemon.cli("domains", "fastapi-hello", "remove", host, "--yes")
    assert removed.returncode == 0, removed.stderr
    gone = get(daemon, host)
    assert gone.status_code == 404
    assert "fastapi" not in gone.text.lower()
    assert host not in daemon.cli("domains", "fastapi-hello", "list").stdout


# --- Flood -------------------------------------------------------------------------------------


class Flood:
    """FLOOD_CONNECTIONS keep-alive connections from 127.0.0.1, each sending requests back to back
    (reconnecting when the edge closes it), in an asyncio loop on a thread, until stopped or
    FLOOD_MAX_SECONDS pass."""

    def __init__(self, port: int, host: str) -> None:
        self.port = port
        self.request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.stopped = threading.Event()
        self.timed_out = False
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        tasks = [asyncio.create_task(self._connection()) for _ in range(FLOOD_CONNECTIONS)]
        deadline = time.monotonic() + FLOOD_MAX_SECONDS
        while not self.stopped.is_set():
            if time.monotonic() > deadline:
                self.timed_out = True
                break
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.errors += 1
                await asyncio.sleep(0.01)
                continue
            try:
                while True:
                    writer.write(self.request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    self.statuses[int(head.split(b" ", 2)[1])] += 1
                    length = content_length(head)
                    if length is None or b"connection: close" in head.lower():
                        break  # the edge closes after this answer (a refusal): connect again
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self.errors += 1
                await asyncio.sleep(0.01)  # refused: retry soon, but leave the shared CPU to the daemon
            finally:
                writer.close()

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the flood did not stop"

    def total(self) -> int:
        return sum(self.statuses.values())


def content_length(head: bytes) -> int | None:
    """The head's Content-Length, None without one (the flood then drops the connection)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


def get_from(source: str, port: int, host: str, timeout: float) -> tuple[int, bytes]:
    """GET / with `Host: host` from the loopback address `source`: the status and the body
    (status 0 and the error when the connection was refused, reset or timed out)."""
    data = b""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as error:
            return 0, repr(error).encode()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return 0, data
    return int(head.split(b" ", 2)[1]), body


def test_admin_and_other_addresses_are_served_while_one_address_floods_the_edge(edge: Module) -> None:
    daemon = edge.daemon
    host = "fastapi-hello.localhost"
    with Flood(daemon.edge_port, host) as flood:
        wait_until("the flood to get answers", lambda: flood.total() >= FLOOD_CONNECTIONS, timeout=30, every=0.05)
        started, at_start = time.monotonic(), flood.total()
        listed = daemon.cli("list", "--json", timeout=2 * ADMIN_DEADLINE)
        health = httpx.get(f"{daemon.api_url}/healthz", timeout=ADMIN_DEADLINE)
        other = [get_from("127.0.0.2", daemon.edge_port, host, timeout=ADMIN_DEADLINE) for _ in range(3)]
        while time.monotonic() - started < FLOOD_MIN_SECONDS:  # then keep it up for the minimum time
            other.append(get_from("127.0.0.2", daemon.edge_port, host, timeout=ADMIN_DEADLINE))
        during = flood.total()
    assert not flood.timed_out, "the flood ended before the checks did: they did not run under load"
    assert during > at_start, f"the flood stalled during the checks: {flood.statuses}, {flood.errors} errors"
    assert listed.returncode == 0, listed.stderr
    assert "fastapi-hello" in {a["name"] for a in json.loads(listed.stdout)}
    assert health.status_code == 200
    assert health.json() == {"ok": True}
    for status, body in other:
        assert status == 200, body
        assert b"from FastAPI" in body
    wait_until("the flooding address to be served again", lambda: get(daemon, host).status_code == 200, timeout=30)


# --- streaming in bounded memory -----------------------------------------------------------------


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def stream_request(port: int, head: bytes, body_size: int = 0) -> tuple[bytes, int, bytes]:
    """Send `head` and `body_size` bytes of body, a MiB at a time; the answer's head, its body's
    size and the body's first 64 bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head)
        chunk = b"u" * MIB
        for _ in range(body_size // MIB):
            sock.sendall(chunk)
        answer_head, rest = read_head(sock)
        length = content_length(answer_head)
        assert length is not None, answer_head
        received = len(rest)
        start = rest[:64]
        while received < length:
            data = sock.recv(MIB)
            assert data, f"closed after {received} of {length} bytes"
            received += len(data)
            start = (start + data)[:64]
        return answer_head, received, start


def test_a_gibibyte_each_way_passes_through_the_daemon_in_bounded_memory(edge: Module) -> None:
    daemon = edge.daemon
    pid = daemon.proc.pid
    host = f"{STREAM_APP}.localhost"
    assert get(daemon, host, "/?5").text == "xxxxx"  # an instance is up before the peak is reset
    before = memory_kib(pid, "VmRSS")
    reset_peak(pid)
    up_head, _, counted = stream_request(
        daemon.edge_port, b"PUT / HTTP/1.1\r\nHost: %b\r\nContent-Length: %d\r\n\r\n" % (host.encode(), GIB), GIB
    )
    assert up_head.startswith(b"HTTP/1.1 200"), up_head
    down_head, down_size, _ = stream_request(
        daemon.edge_port, b"GET /?%d HTTP/1.1\r\nHost: %b\r\n\r\n" % (GIB, host.encode())
    )
    assert down_head.startswith(b"HTTP/1.1 200"), down_head
    assert down_size == GIB
    assert counted == str(GIB).encode()  # the app's answer: the bytes it received
    peak = memory_kib(pid, "VmHWM")
    print(f"daemon RSS {before} KiB before, peak {peak} KiB while 1 GiB went each way")
    assert (peak - before) * 1024 < LIMIT_GROWTH, f"the daemon grew from {before} KiB to a peak of {peak} KiB"


def test_the_daemon_says_which_edge_build_it_runs(edge: Module) -> None:
    """Compiled with mypyc when the install could, else pure Python and why: the same as here."""
    assert f"edge build {describe_build()}" in edge.daemon.output()

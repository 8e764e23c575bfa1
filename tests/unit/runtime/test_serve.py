"""Every kind of app serves through a slot: ASGI, WSGI, handler functions, command apps,
forked from a zygote or started fresh."""

import json
from pathlib import Path

import pytest

from roost.runtime import StartKind
from roost.runtime.sandbox import SandboxSettings
from tests.unit.runtime.conftest import Harness, get, without_preload


@pytest.mark.parametrize("preload", [True, False], ids=["fork", "fresh"])
async def test_an_asgi_app_serves_with_its_lifespan(harness: Harness, preload: bool) -> None:
    spec = harness.function("fastapi", entrypoint="main:app")
    spec = spec if preload else without_preload(spec)
    await harness.runtime.deploy(spec)
    if preload:  # a fork from a zygote still importing would be cold, not warm
        await harness.recorder.until(lambda: "zygote.started" in harness.recorder.kinds())
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is (StartKind.FORK if preload else StartKind.FRESH)
    status, _, body = await get(slot, "/where", headers={"X-Forwarded-Prefix": "/fastapi"})
    assert status == 200
    assert json.loads(body) == {"path": "/fastapi/where", "root_path": "/fastapi", "started": True}
    assert "lifespan startup" in [line.text for line in harness.logs.read("fastapi")]


async def test_a_raw_asgi_app_gets_lifespan_shutdown_on_stop(harness: Harness) -> None:
    spec = harness.function("rawasgi", entrypoint="app:app")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    instance = slot.instance
    status, _, body = await get(slot, "/hello")
    assert (status, body) == (200, b"/hello")
    await harness.runtime.stop_instance(instance, "test")
    lines = [(line.source, line.text) for line in harness.logs.read("rawasgi")]
    assert (instance, "raw startup") in lines
    assert (instance, "raw shutdown") in lines


async def test_a_wsgi_app_serves_with_script_name(harness: Harness) -> None:
    spec = harness.function("flask", entrypoint="app:app", env={"GREETING": "hi"})
    await harness.runtime.deploy(spec)
    status, _, body = await get(await harness.acquire(spec.deployment), "/")
    assert (status, body) == (200, b"hello from flask")
    slot = await harness.acquire(spec.deployment)
    status, _, body = await get(slot, "/json", headers={"X-Forwarded-Prefix": "/flask"})
    assert json.loads(body) == {"path": "/json", "script_root": "/flask", "greeting": "hi"}


@pytest.mark.parametrize(
    ("path", "status", "content_type", "body"),
    [
        ("/text?name=roost", 200, "text/plain; charset=utf-8", b"hello roost"),
        ("/bytes", 200, "application/octet-stream", b"\x00\x01"),
        ("/json", 200, "application/json", b'{"method": "GET", "header": "yes", "root": "/h"}'),
        ("/tuple", 418, "text/plain; charset=utf-8", b"teapot"),
        ("/none", 204, None, b""),
        ("/boom", 500, "text/plain; charset=utf-8", b"Internal Server Error\n"),
    ],
)
async def test_a_handler_function_serves_each_return_type(
    harness: Harness, path: str, status: int, content_type: str | None, body: bytes
) -> None:
    spec = harness.function("handler", entrypoint="handler:handler")
    await harness.runtime.deploy(spec)
    got_status, headers, got_body = await get(
        await harness.acquire(spec.deployment), path, headers={"X-Test": "yes", "X-Forwarded-Prefix": "/h"}
    )
    assert (got_status, headers.get("content-type"), got_body) == (status, content_type, body)
    if path == "/tuple":
        assert headers["x-kind"] == "teapot"


async def test_a_handler_reads_a_json_body_and_an_async_handler_serves(harness: Harness) -> None:
    spec = harness.function("handler", entrypoint="handler:handler")
    await harness.runtime.deploy(spec)
    status, _, body = await get(await harness.acquire(spec.deployment), "/echo", method="POST", body=b'{"a": [1]}')
    assert (status, json.loads(body)) == (201, {"a": [1]})
    spec = harness.function("handler", entrypoint="handler:async_handler")
    await harness.runtime.deploy(spec)
    status, _, body = await get(await harness.acquire(spec.deployment), "/x")
    assert (status, json.loads(body)) == (200, {"async": True, "path": "/x"})


async def test_a_command_app_serves_on_its_port(harness: Harness) -> None:
    spec = harness.function("command", command="python server.py")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FRESH
    port = slot.port
    status, _, body = await get(slot, "/")
    assert (status, body) == (200, f"command on {port}".encode())
    assert any(line.text == "command app listening" for line in harness.logs.read("command"))


LAUNCHER_ONLY = SandboxSettings(bwrap=False, separate_users=False)  # the launcher execs the shell itself


@pytest.mark.parametrize("harness", [None, LAUNCHER_ONLY], indirect=True, ids=["sandbox", "launcher-only"])
async def test_a_command_runs_as_a_shell_line_that_becomes_the_server(harness: Harness) -> None:
    """`sh -c 'exec ...'`: ${PORT} and the app's variables expand, and no shell stays in between:
    the server leads the process group Roost signals, and SIGTERM reaches it."""
    spec = harness.function("whoami", command="python server.py ${PORT} $GREETING", env={"GREETING": "hi there"})
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    instance, port = slot.instance, slot.port
    status, _, body = await get(slot, "/")
    me = json.loads(body)
    assert status == 200
    assert me["argv"] == ["server.py", str(port), "hi", "there"]
    assert me["pgid"] == me["pid"], "the server must lead its group (it was exec'd, not forked by a shell)"
    cmdline = Path(f"/proc/{me['pid']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:3] == [b"server.py", str(port).encode()]
    child = harness.runtime._pools[spec.deployment].instances[instance].child
    assert child is not None
    assert (child.leader or child.pid) == me["pid"], "the process Roost signals is the server itself"
    assert b"sh" not in Path(f"/proc/{me['ppid']}/comm").read_bytes().strip()
    await harness.runtime.stop_instance(instance, "test")
    assert f"whoami {me['pid']} got SIGTERM" in [line.text for line in harness.logs.read("whoami")]


async def test_python_http_server_on_port_serves(harness: Harness) -> None:
    spec = harness.function("command", command="python -m http.server $PORT")
    await harness.runtime.deploy(spec)
    status, _, body = await get(await harness.acquire(spec.deployment), "/server.py")
    assert status == 200
    assert b"command app listening" in body

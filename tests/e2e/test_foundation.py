"""The foundation end to end: a real `roost serve` driven through the CLI and HTTP."""

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.harness import Daemon, base_env, run_cli, running, spawn


def test_empty_list_over_the_socket_and_tcp(daemon: Daemon) -> None:
    result = daemon.cli("list")
    assert result.returncode == 0, result.stderr
    assert "NAME" in result.stdout
    assert "no apps yet" in result.stdout
    assert json.loads(daemon.cli("list", "--json").stdout) == []
    token = daemon.cli("token", "create", "tests").stdout.strip()
    over_tcp = daemon.cli("--token", token, "list", "--json", url=True)
    assert over_tcp.returncode == 0, over_tcp.stderr
    assert json.loads(over_tcp.stdout) == []
    env = {**base_env(daemon.home), "ROOST_URL": daemon.api_url, "ROOST_TOKEN": token}
    env["ROOST_HOME"] = str(daemon.home.parent / "elsewhere")  # no socket to fall back on: ROOST_URL it is
    by_env = subprocess.run(
        [sys.executable, "-m", "roost", "version", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["daemon"]["version"] == json.loads(by_env.stdout)["cli"]
    assert "daemon: roost " in daemon.cli("version").stdout


def test_create_info_remove_through_the_cli(daemon: Daemon) -> None:
    created = daemon.cli("create", "hello", "--mode", "service")
    assert created.returncode == 0, created.stderr
    listed = json.loads(daemon.cli("list", "--json").stdout)
    assert [(a["name"], a["mode"]) for a in listed] == [("hello", "service")]
    info = daemon.cli("info", "hello")
    assert info.returncode == 0
    assert "mode=service" in info.stdout
    assert "app.created" in info.stdout
    assert re.search(r"limits\.memory\s+128M\s+default", info.stdout), info.stdout
    removed = daemon.cli("remove", "hello", "--yes")
    assert removed.returncode == 0
    assert json.loads(daemon.cli("list", "--json").stdout) == []


def test_errors_are_one_line_with_a_hint_and_exit_codes(daemon: Daemon) -> None:
    daemon.cli("create", "hello")
    taken = daemon.cli("create", "hello")
    assert taken.returncode == 1
    assert "already exists" in taken.stderr
    assert "hint:" in taken.stderr
    assert "Traceback" not in taken.stderr
    missing = daemon.cli("info", "nope")
    assert missing.returncode == 1
    assert "no app named 'nope'" in missing.stderr
    bad_name = daemon.cli("create", "Bad_Name")
    assert bad_name.returncode == 2
    assert "not a valid app name" in bad_name.stderr
    usage = daemon.cli("info")
    assert usage.returncode == 2
    debug = daemon.cli("--debug", "info", "nope")
    assert "Traceback" in debug.stderr


def test_api_errors_are_json_with_status(daemon: Daemon) -> None:
    with daemon.api() as http:
        assert http.get("/healthz").json() == {"ok": True}
        assert http.get("/v1/version").json()["version"]
        assert "/v1/apps" in http.get("/openapi.json").json()["paths"]
        cases = [
            (http.get("/v1/apps/nope"), 404, "not_found"),
            (http.post("/v1/apps", json={"name": "Bad"}), 422, "invalid_request"),  # the schema's pattern
            (http.post("/v1/apps", json={"nom": "x"}), 422, "invalid_request"),
            (http.post("/v1/apps", json={"name": "ok", "settings": {"scale": {"maxx": 1}}}), 400, "config_invalid"),
            (http.get("/v1/nothing-here"), 404, "not_found"),
        ]
        assert http.post("/v1/apps", json={"name": "dup"}).status_code == 201
        cases.append((http.post("/v1/apps", json={"name": "dup"}), 409, "conflict"))
        for response, status, code in cases:
            assert response.status_code == status, response.text
            body = response.json()
            assert body["error"] == code
            assert body["message"]
            assert body["hint"]


def test_edge_placeholder_says_no_such_app(daemon: Daemon) -> None:
    response = httpx.get(daemon.edge_url + "/", headers={"Host": "hello.localhost"}, timeout=10)
    assert response.status_code == 404
    assert "no such app" in response.text


def test_edge_tells_a_client_at_its_ip_address_which_urls_answer(daemon: Daemon) -> None:
    port = daemon.edge_port
    response = httpx.get(f"http://127.0.0.1:{port}/hello/", timeout=10)
    assert response.status_code == 404
    assert f"apps are at http://APP.localhost:{port}/ and http://localhost:{port}/APP/" in response.text


def test_sigterm_and_sigint_stop_cleanly(home: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        daemon = spawn(home)
        try:
            daemon.wait_ready()
            daemon.signal(sig)
            assert daemon.wait_exit() == 0
            assert "Traceback" not in daemon.output()
            assert "stopped" in daemon.output()
            assert not (home / "roost.sock").exists()
        finally:
            daemon.kill_group()


def test_second_daemon_on_same_home_is_refused(daemon: Daemon) -> None:
    second = spawn(daemon.home)
    try:
        assert second.wait_exit() == 1
        output = second.output()
        assert f"pid {daemon.proc.pid}" in output
        assert "already running" in output
        assert "Traceback" not in output
    finally:
        second.kill_group()
    assert daemon.cli("list").returncode == 0


def test_taken_port_is_named(home: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        daemon = spawn(home, "--api-port", str(port))
        try:
            assert daemon.wait_exit() == 1
            assert f"port {port} on 127.0.0.1 is in use" in daemon.output()
            assert "--api-port" in daemon.output()
        finally:
            daemon.kill_group()
    finally:
        holder.close()


def test_sigkill_loses_no_created_app(home: Path) -> None:
    with running(home) as first:
        for name in ("one", "two", "three"):
            assert first.cli("create", name).returncode == 0
        first.signal(signal.SIGKILL)
        first.wait_exit()
    with running(home) as second:
        names = [a["name"] for a in json.loads(second.cli("list", "--json").stdout)]
        assert names == ["one", "three", "two"]


def test_unreachable_daemon_says_what_to_do(tmp_path: Path) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    result = run_cli(tmp_path, "--url", f"http://127.0.0.1:{port}", "list")
    assert result.returncode == 1
    assert f"cannot reach the daemon at http://127.0.0.1:{port}: is `roost serve` running?" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_roost_toml_names_the_key(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "roost.toml").write_text('[limits]\nmemroy = "64M"\n')
    result = run_cli(tmp_path, "check", str(app))
    assert result.returncode == 1
    assert "unknown key 'limits.memroy'" in result.stderr
    assert "memory" in result.stderr
    (app / "roost.toml").write_text('[limits]\nmemory = "64M"\n')
    ok = run_cli(tmp_path, "check", str(app))
    assert ok.returncode == 0
    assert "memory=64M" in ok.stdout


def test_python_dash_m_and_version(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "version")
    assert result.returncode == 0
    assert result.stdout.startswith("roost ")
    assert sys.version.split()[0] in result.stdout
    assert "daemon: cannot reach the daemon" in result.stdout  # no daemon: said, and still exit 0

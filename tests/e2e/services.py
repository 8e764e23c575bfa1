"""Real services the end-to-end tests start for apps that use them, each on a free loopback port
with its data in a folder of its own, stopped at the end: a redis-server (Celery's broker) and a
PostgreSQL (a Django app's database)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps import wait_until
from tests.e2e.ports import free_port

TIMEOUT_REDIS = 20.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # initdb will not run as root; Debian's package made this user


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[int]:
    """A private redis-server, stopped (TERM, then KILL) at the end. Its port, once it answers PING."""
    program = shutil.which("redis-server") or "/usr/bin/redis-server"
    assert Path(program).exists(), "redis-server is missing: `make test` installs it (apt-get install redis-server)"
    port = free_port()
    argv = [program, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
    argv += ["--appendonly", "no", "--daemonize", "no", "--logfile", str(folder / "redis.log")]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until("redis-server answering PING", lambda: redis_answers(port), timeout=TIMEOUT_REDIS, every=0.05)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def as_postgres(*argv: str) -> None:
    subprocess.run(["runuser", "-u", PG_USER, "--", *argv], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def running_postgres(database: str) -> Iterator[str]:
    """A real PostgreSQL with an empty `database`; its URL (user roost, no password, loopback only)."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="roost-e2e-pg-"))  # not under pytest's 0700 tmp: postgres must enter it
    shutil.chown(root, PG_USER, PG_USER)
    data, port = root / "data", free_port()
    try:
        as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "roost", "--no-sync")
        options = f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off"
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "roost", database)
        yield f"postgresql://roost@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            ["runuser", "-u", PG_USER, "--", str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)

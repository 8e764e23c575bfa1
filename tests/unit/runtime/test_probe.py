"""The build check: a throwaway fresh instance must answer HTTP on $PORT within the limit,
and says in words why not, with the app's own output."""

import re

import psutil

from tests.unit.runtime.conftest import Harness


async def test_an_app_that_answers_passes(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("fastapi", entrypoint="main:app"), 20)
    assert result.ok, result
    assert re.fullmatch(r"answered HTTP 200 in \d+\.\d\ds", result.message)
    assert "lifespan startup" in result.output


async def test_a_command_app_that_answers_passes(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("command", command="python server.py"), 20)
    assert result.ok, result
    assert "command app listening" in result.output


async def test_a_crash_at_import_fails_with_the_traceback(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("crash", entrypoint="main:app"), 20)
    assert not result.ok
    assert result.message == "exited with status 3 before answering: RuntimeError: boom at import"
    assert "RuntimeError: boom at import" in result.output
    assert "about to fail" in result.output


async def test_an_app_that_never_listens_fails_and_is_stopped(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("never", command="python server.py"), 1)
    assert not result.ok
    pattern = r"/bin/sh -c 'exec python server.py' \(PORT=(\d+)\) never listened on \$PORT \((\d+)\) within 1s"
    match = re.fullmatch(pattern, result.message)
    assert match and match[1] == match[2], result.message
    assert "not listening, on purpose" in result.output
    ours = str(harness.apps / "never")  # other runs on this host may have a server.py of their own
    processes = psutil.process_iter(["cmdline", "cwd"])
    assert not [p for p in processes if "server.py" in (p.info["cmdline"] or []) and p.info["cwd"] == ours]


async def test_a_missing_command_or_object_fails(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("command", command="no-such-program --port $PORT"), 5)
    assert not result.ok
    pattern = r"/bin/sh -c 'exec no-such-program --port \$PORT' \(PORT=\d+\) exited with status 127 before answering: "
    pattern += r"(/bin/)?sh: 1: exec: no-such-program: not found"
    assert re.fullmatch(pattern, result.message), result.message
    result = await harness.runtime.probe(harness.function("fastapi", entrypoint="main:nothing"), 10)
    assert not result.ok
    assert "AttributeError" in result.output


async def test_a_command_with_port_passes(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("command", command="python -m http.server $PORT"), 20)
    assert result.ok, result


async def test_a_signal_death_names_the_signal(harness: Harness) -> None:
    result = await harness.runtime.probe(harness.function("segv", entrypoint="main:app"), 20)
    assert not result.ok
    assert result.message == "killed by SIGSEGV before answering"
    assert "about to crash hard" in result.output


async def test_probe_output_goes_to_the_apps_log(harness: Harness) -> None:
    await harness.runtime.probe(harness.function("crash", entrypoint="main:app"), 10)
    assert any(line.source == "probe" and line.text == "about to fail" for line in harness.logs.read("crash"))

"""`make serve` in a fresh clone, from the command to "all examples live": this checkout's HEAD
against a reference commit (default `main`), in interleaved rounds; prints each run, the medians
and the ratio. Issue 20's target: <= 45 s with a warm package cache.

Each run clones the repository into a temporary folder, runs `make serve` there on free ports
with a home of its own, waits (with a deadline) for the line that says the examples are live,
then stops the daemon with SIGTERM and waits for it to stop its instances. The uv cache is
shared by the runs (the first run fills it, so rounds alternate the order); `--cold` gives each
run an empty pip and uv cache. The reference's `make serve` may not take SERVE_FLAGS (main's
does not): it then listens on 8080 and 7070, which must be free.

Run: .venv/bin/python bench/first_run.py [ROUNDS] [--reference REV] [--cold]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import free_port

REPO = Path(__file__).resolve().parents[1]
ROUNDS = next((int(arg) for arg in sys.argv[1:] if arg.isdigit()), 2)
REFERENCE = sys.argv[sys.argv.index("--reference") + 1] if "--reference" in sys.argv else "main"
COLD = "--cold" in sys.argv[1:]
LIVE = ("[examples] all ", "[examples] pushed")  # this branch's line, and the older script's
TIMEOUT = 900.0
STOP_GRACE = 60.0


def one_run(rev: str, scratch: Path, uv_cache: Path) -> float:
    """Seconds from `make serve` to the examples live, in a fresh clone of `rev`."""
    clone = scratch / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    env["ROOST_UV_CACHE"] = str(scratch / "uv-cache" if COLD else uv_cache)
    if COLD:
        env["PIP_CACHE_DIR"] = str(scratch / "pip-cache")
    ports = f"--port {free_port()} --api-port {free_port()}"
    argv = ["make", "serve", f"HOME_DIR={scratch / 'home'}", f"SERVE_FLAGS={ports}"]
    log = (scratch / "make.log").open("w+")
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return wait_live(proc, scratch / "make.log", started)
    finally:
        stop(proc)
        log.close()


def wait_live(proc: subprocess.Popen[bytes], log: Path, started: float) -> float:
    while time.monotonic() - started < TIMEOUT:
        if any(line.startswith(LIVE) for line in log.read_text(errors="replace").splitlines()):
            return time.monotonic() - started
        if proc.poll() is not None:
            raise RuntimeError(f"make serve exited early:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"the examples were not live within {TIMEOUT:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to make's group (the daemon stops its instances), SIGKILL if it will not stop."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def main() -> None:
    times: dict[str, list[float]] = {"HEAD": [], REFERENCE: []}
    with tempfile.TemporaryDirectory(prefix="roost-first-run-uv-") as uv_cache:
        for round_number in range(1, ROUNDS + 1):
            order = ("HEAD", REFERENCE) if round_number % 2 else (REFERENCE, "HEAD")  # ABBA: the first run warms uv
            for rev in order:
                with tempfile.TemporaryDirectory(prefix="roost-first-run-") as scratch:
                    seconds = one_run(rev, Path(scratch), Path(uv_cache))
                times[rev].append(seconds)
                print(f"round {round_number} {rev:>8}: {seconds:6.1f} s")
    head, ref = statistics.median(times["HEAD"]), statistics.median(times[REFERENCE])
    cache = "cold" if COLD else "warm"
    ratio = head / ref
    print(f"median ({cache} cache): HEAD {head:.1f} s, {REFERENCE} {ref:.1f} s, HEAD/{REFERENCE} = {ratio:.2f}")


if __name__ == "__main__":
    main()

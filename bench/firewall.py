"""What Roost's nftables table costs one loopback connection: connect, one byte each way, close,
from root (as the edge) to a listener on an instance port under an app's uid (as an instance),
`--rounds` times with the table and as often without it, alternating (the order flips each
round). Prints each round's medians and the median of the rounds' with/without ratios. The
cost per proxied request is this at most: the edge keeps connections to instances open.

Needs root and nft. Run: .venv/bin/python bench/firewall.py [--rounds 6] [--connections 1500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from roost.runtime.ports import PortBook
from roost.runtime.sandbox import SandboxSettings, firewall

SERVER = """
import socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    conn.recv(1)
    conn.sendall(b"x")
    conn.close()
"""


def round_trip_median(port: int, connections: int) -> float:
    """Microseconds: median of `connections` connect + one byte each way + close."""
    taken = []
    for _ in range(connections):
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"g")
            conn.recv(1)
        taken.append(time.perf_counter() - started)
    return statistics.median(taken) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=1500)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("not root: Roost installs no firewall then, so there is nothing to measure")
        return
    binary = firewall.nft_binary()
    if binary is None or shutil.which("setpriv") is None:
        raise SystemExit("needs nft and setpriv (apt-get install nftables util-linux)")
    defaults = SandboxSettings()
    home = Path(tempfile.mkdtemp(prefix="roost-bench-firewall-"))
    table = firewall.table_name(home)
    rules = firewall.Rules(defaults.uid_first, defaults.uid_last, defaults.ports, (7070,))
    sock = PortBook(defaults.ports).listener()
    port = sock.getsockname()[1]
    uid = defaults.uid_last
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", SERVER]
    server = subprocess.Popen([*argv, str(sock.fileno())], pass_fds=(sock.fileno(),), stdout=subprocess.PIPE, text=True)
    sock.close()
    medians: dict[str, list[float]] = {"with": [], "without": []}
    try:
        assert server.stdout is not None
        server.stdout.readline()
        print(f"{args.connections} connections to port {port} (uid {uid}) per run, {args.rounds} rounds each way")
        for index in range(args.rounds):
            for name in ("with", "without") if index % 2 == 0 else ("without", "with"):
                script = firewall.ruleset(table, rules) if name == "with" else firewall.removal(table)
                firewall.apply(script, [binary])
                medians[name].append(round_trip_median(port, args.connections))
            print(f"  round {index + 1}: with {medians['with'][-1]:.1f} us, without {medians['without'][-1]:.1f} us")
    finally:
        firewall.apply(firewall.removal(table), [binary])
        server.kill()
        server.wait()
        home.rmdir()
    ratios = [w / o for w, o in zip(medians["with"], medians["without"], strict=True)]
    print(f"with {statistics.median(medians['with']):.1f} us, without {statistics.median(medians['without']):.1f} us")
    print(
        f"with/without {statistics.median(ratios):.3f} (median of the rounds' ratios; each {min(ratios):.3f}-"
        f"{max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()

"""The firewall that keeps every way to an instance but the edge closed: one nftables table per
home (`inet roost_<hash of home>`, IPv4 and IPv6 alike), written whole and replaced atomically
at each start, deleted at a clean shutdown. It rejects TCP from the apps' uids to this host's
own addresses on the instance ports and the admin API's TCP port(s), and to every address on
the closed ports (a cluster's Ray ports, here and on the other machines), and drops TCP to the
instance ports arriving on any interface but `lo`. Sockets of builds (primary gid `build_gid`)
may open connections only to the DNS resolvers and the package index's addresses (sandbox/
buildnet.py); anything else is refused at once (TCP reset, ICMP unreachable) so the build fails fast.

Owns the rule text (pure) and the `nft` calls (blocking: call them in a thread). Never decides
which ports or uids: the daemon's settings do.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roost.runtime.ports import PortRange
from roost.runtime.sandbox.buildnet import BuildNet, Destination

TABLE_PREFIX = "roost_"
TIMEOUT_NFT = 10.0
OPENING = "tcp flags & (syn | ack) == syn"  # a connection's first packet: nothing connects without it


@dataclass(frozen=True, slots=True)
class Rules:
    """What the table closes. Example::

    Rules(uid_first=200000, uid_last=265535, ports=PortRange(20000, 29999), guarded=(7070,))
    """

    uid_first: int
    uid_last: int
    ports: PortRange
    guarded: tuple[int, ...] = ()  # other local TCP ports the apps must not reach (the admin API)
    closed: tuple[PortRange, ...] = ()  # TCP ports the apps (and builds) must not reach on any address (Ray's)
    build_gid: int | None = None  # sockets of this primary gid are builds: only `build_net` is open to them
    build_net: BuildNet = field(default_factory=lambda: BuildNet((), ()))


def table_name(home: Path) -> str:
    """`roost_<10 hex digits>`: one table per home, so two daemons never replace each other's."""
    return TABLE_PREFIX + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:10]


def ruleset(table: str, rules: Rules) -> str:
    """The `nft -f` script that creates or replaces `table` with `rules`, in one transaction.

    The first two lines make the delete succeed whether or not the table exists; `nft -f`
    applies the whole script or none of it, so there is no moment without the rules. Every
    packet on this host passes these chains, so each rule tests the cheapest thing first and
    compares ranges rather than looking up a set. Only a connection's opening SYN is matched:
    every other packet leaves a rule at its first test, and answers to connections this host
    opened (the edge's to an instance, an app's or a build's to the internet) pass even if
    their local port lies in the instance range."""
    ports = rules.ports.describe()
    uids = f"{rules.uid_first}-{rules.uid_last}"
    refused = [
        f"    {OPENING} tcp dport {dport} meta skuid {uids} fib daddr type local reject with tcp reset"
        for dport in [ports, *(str(p) for p in sorted(set(rules.guarded)))]
    ]
    refused += [  # anywhere: builds run as their app's uid, so this holds for them too
        f"    {OPENING} tcp dport {closed} meta skuid {uids} reject with tcp reset"
        for closed in sorted({r.describe() for r in rules.closed})
    ]
    return "\n".join(
        [
            f"table inet {table}",
            f"delete table inet {table}",
            f"table inet {table} {{",
            "  chain apps_out {",
            "    type filter hook output priority filter; policy accept;",
            *refused,
            "  }",
            *_builds_chain(rules),
            "  chain instances_in {",
            "    type filter hook input priority filter; policy accept;",
            f'    iif != "lo" {OPENING} tcp dport {ports} drop',
            "  }",
            "}",
            "",
        ]
    )


def _builds_chain(rules: Rules) -> list[str]:
    """The chain every packet a build's socket sends passes: answers of connections already let
    through, then DNS to the resolvers and TCP to the allowed destinations, then a refusal.
    Only packets with a socket of that gid jump to it: the kernel's own (IPv6 neighbour
    discovery, resets) have no socket and must never meet the refusal."""
    if rules.build_gid is None:
        return []
    dns = [
        f"    {_family(resolver)} daddr {resolver} {proto} dport 53 accept"
        for resolver in rules.build_net.resolvers
        for proto in ("udp", "tcp")
    ]
    return [
        "  chain builds_out {",
        "    type filter hook output priority filter; policy accept;",
        f"    meta skgid {rules.build_gid} jump build_net",
        "  }",
        "  chain build_net {",
        "    ct state established,related accept",
        *dns,
        *(_allowed(destination) for destination in rules.build_net.destinations),
        "    meta l4proto tcp reject with tcp reset",
        "    reject with icmpx type admin-prohibited",
        "  }",
    ]


def _allowed(destination: Destination) -> str:
    family = "ip6" if destination.is_ipv6 else "ip"
    port = "meta l4proto tcp" if destination.port is None else f"tcp dport {destination.port}"
    return f"    {family} daddr {destination.network} {port} accept"


def _family(address: str) -> str:
    return "ip6" if ":" in address else "ip"


def removal(table: str) -> str:
    """The `nft -f` script that deletes `table` if it exists."""
    return f"table inet {table}\ndelete table inet {table}\n"


class FirewallUnavailable(Exception):
    """The rules could not be installed; the message says why, for people."""


def nft_binary() -> str | None:
    return shutil.which("nft")


def apply(script: str, nft: Sequence[str]) -> None:
    """Run `nft -f -` on `script` (`nft` is the command: `[path]`, or a test's `ip netns exec ...`).
    Blocking. Raises FirewallUnavailable with nft's own words."""
    try:
        done = subprocess.run(  # noqa: S603 - an argv list, never a shell
            [*nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=TIMEOUT_NFT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallUnavailable(f"nft could not run: {exc}") from exc
    if done.returncode != 0:
        raise FirewallUnavailable(_first_line(done.stderr) or f"nft exited with status {done.returncode}")


def _first_line(text: str) -> str:
    lines: Sequence[str] = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""

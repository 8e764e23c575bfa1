"""`roost info`'s isolation tables: what each instance and build step really got, read back by the
daemon from the running process (`isolation` in the API), in one row each. Formatting only; the
full read-back is in `roost info --json`.
"""

from __future__ import annotations

from typing import Any

from roost.cli.output import console, show, table
from roost.units import format_size

SECRETS = ("home", "store", "secret key")  # labels the daemon probes; seeing one is a hole
COLUMNS = ("UID", "SECCOMP", "CGROUP", "FILES", "NETWORK", "/PROC")


def show_isolation(
    instances: list[dict[str, Any]], builds: list[dict[str, Any]], deployments: list[dict[str, Any]]
) -> None:
    """Two tables: live instances, then the build steps of the current deployments (those with
    traffic, else the newest; --json has every listed deployment's)."""
    current = {d["id"] for d in deployments if d["weight"]} or {d["id"] for d in deployments[:1]}
    builds = [step for step in builds if step["deployment"] in current]
    read = [i for i in instances if i.get("isolation")]
    if read:
        console.print()
        rows = table("INSTANCE", *COLUMNS)
        for instance in read:
            rows.add_row(instance["id"], *cells(instance["isolation"]))
        console.print("[bold]isolation[/] [dim](read back from each running process; all of it: --json)[/]")
        show(rows)
    if builds:
        console.print()
        rows = table("DEPLOYMENT", "BUILD STEP", *COLUMNS)
        for step in builds:
            rows.add_row(step["deployment"], step["step"], *cells(step["isolation"]))
        console.print("[bold]build isolation[/] [dim](read back from each step's process while it ran)[/]")
        show(rows)


def cells(isolation: dict[str, Any]) -> list[str]:
    """One row: uid, seccomp, cgroup limits, files, network and /proc, each a few words."""
    return [
        _uid(isolation.get("identity")),
        _seccomp(isolation.get("seccomp"), isolation.get("identity")),
        _cgroup(isolation.get("cgroup")),
        _files(isolation.get("filesystem")),
        _network(isolation.get("network")),
        _proc(isolation.get("proc")),
    ]


def _bad(text: str) -> str:
    return f"[red]{text}[/]"


def _uid(identity: dict[str, Any] | None) -> str:
    if not identity:
        return "?"
    uid = identity["uid"][1]
    return _bad(f"{uid} (root)") if uid == 0 else str(uid)


def _seccomp(seccomp: dict[str, Any] | None, identity: dict[str, Any] | None) -> str:
    if not seccomp:
        return "?"
    mode = seccomp["mode"]
    text = mode if mode != "disabled" else _bad("none")
    if identity and identity.get("no_new_privs"):
        text += ", no-new-privs"
    return text


def _cgroup(cgroup: dict[str, Any] | None) -> str:
    if not cgroup:
        return "?"
    if cgroup["version"] == "none":
        return _bad("none")
    memory = format_size(cgroup["memory_max"]) if cgroup["memory_max"] is not None else "-"
    cpu = f"{cgroup['cpu_max']:g}" if cgroup["cpu_max"] is not None else "-"
    pids = str(cgroup["pids_max"]) if cgroup["pids_max"] is not None else "-"
    text = f"{cgroup['version']} mem {memory} cpu {cpu} pids {pids}"
    return _bad(text) if cgroup["memory_max"] is None else text


def _files(filesystem: dict[str, Any] | None) -> str:
    """Own or shared mount namespace, and which of Roost's own paths the process can see."""
    if not filesystem:
        return "?"
    namespace = "own view" if filesystem["own_mount_namespace"] else "host view"
    exposed = [p["label"] for p in filesystem["paths"] if _is_open(p) and _is_private_path(p["label"])]
    if exposed:
        return _bad(f"{namespace}, sees {', '.join(exposed)}")
    code = [p for p in filesystem["paths"] if p["label"] in ("code", "build dir")]
    where = f", {code[0]['label']} {'rw' if code[0]['writable'] else 'ro'}" if code else ""
    closed = [p for p in filesystem["paths"] if _is_private_path(p["label"]) and p["seen"] == "host"]
    shared_tmp = [p for p in filesystem["paths"] if p["label"] == "tmp" and p["seen"] == "host" and p["writable"]]
    tmp = ", host /tmp" if shared_tmp else ""
    return f"{namespace}{where}{tmp}, home {'closed' if closed else 'hidden'}"


def _is_open(view: dict[str, Any]) -> bool:
    """The host's own file, and the process may read or write it."""
    return bool(view["seen"] == "host" and (view["readable"] or view["writable"]))


def _is_private_path(label: str) -> bool:
    return label in SECRETS or label.startswith("app ")


def _network(network: dict[str, Any] | None) -> str:
    if not network:
        return "?"
    if network["own_namespace"]:
        return f"own ({', '.join(network['interfaces']) or 'none'})"
    return "host, firewalled" if network["firewall_covers"] else _bad("host, no firewall")


def _proc(proc: dict[str, Any] | None) -> str:
    if not proc:
        return "?"
    return proc["hidepid"] if proc["hidepid"] != "off" else _bad("all visible")

"""docs/architecture.md's rules, checked on the source: imports point one way, inside packages
too; only the CLI and Roost's own small programs exit; the module table lists every module."""

import ast
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "roost"
LEAVES = ("roost.model", "roost.errors", "roost.units", "roost.tasks", "roost.clientaddr")
VERSION = ("roost",)  # `from roost import __version__`

# module prefix -> what it may import from roost (besides itself)
ALLOWED: dict[str, tuple[str, ...]] = {
    "roost.model": (),
    "roost.errors": (),
    "roost.units": (),
    "roost.tasks": (),
    "roost.clientaddr": (),
    "roost.config": (*LEAVES, "roost.gates", "roost.processes"),
    "roost.gates": LEAVES,
    "roost.processes": LEAVES,
    "roost.serve_settings": LEAVES,
    "roost.store": LEAVES,
    "roost.applog": LEAVES,
    "roost.requestlog": (*LEAVES, "roost.applog", "roost.edge.answers"),
    "roost.pack": (*LEAVES, "roost.config"),
    "roost.registry": LEAVES,
    "roost.builder": (*LEAVES, "roost.config", "roost.registry", "roost.applog"),
    "roost.runtime": (*LEAVES, "roost.applog"),
    "roost.edge": (*LEAVES, "roost.runtime.protocol"),
    "roost.autoscale": (*LEAVES, "roost.runtime.protocol", "roost.quotas"),
    "roost.quotas": LEAVES,
    "roost.homelock": LEAVES,
    "roost.listeners": LEAVES,
    "roost.certs": (*LEAVES, *VERSION),
    "roost.control": (
        *LEAVES,
        "roost.config",
        "roost.serve_settings",
        "roost.store",
        "roost.registry",
        "roost.builder",
        "roost.runtime.protocol",  # never LocalRuntime's parts: a cluster runtime must fit without control changing
        "roost.edge.routes",  # the route table control builds for the edge (control/routing.py)
        "roost.edge.tls",  # the TLS snapshot control builds for the edge (control/tls_sites.py)
        "roost.certs",
        "roost.autoscale",  # the scale specs control builds for the autoscaler
        "roost.applog",
        "roost.vault",
        "roost.cron",
        "roost.quotas",
        "roost.grants",
    ),
    "roost.grants": LEAVES,
    "roost.passwords": (*LEAVES, "roost.grants"),
    "roost.guess": LEAVES,
    "roost.vault": LEAVES,
    "roost.cron": LEAVES,
    "roost.metrics": (*LEAVES, "roost.runtime.protocol", "roost.edge.counters"),
    "roost.history": (*LEAVES, "roost.runtime.protocol", "roost.edge.counters"),
    "roost.api": (
        *LEAVES,
        *VERSION,
        "roost.control",
        "roost.config",
        "roost.serve_settings",
        "roost.applog",
        "roost.passwords",
        "roost.grants",
    ),
    "roost.cli": (
        *LEAVES,
        *VERSION,
        "roost.config",
        "roost.serve_settings",
        "roost.pack",
        "roost.applog",
        "roost.passwords",
        "roost.guess",
        "roost.quotas",
        "roost.grants",
        "roost.cluster",  # `roost node join` only (cli/cluster.py), inside the command
    ),
    "roost.cluster": (
        *LEAVES,
        "roost.listeners",
        "roost.homelock",  # `roost node join` locks its home as `roost serve` does
        "roost.applog",
        "roost.config",
        "roost.registry",
        "roost.builder",
        "roost.runtime",
        "roost.edge",
    ),
    "roost.daemon": ("roost",),
    "roost.__main__": ("roost.cli",),
    "roost": (),
}
DAEMON_IMPORTERS = {"roost.cli.serve"}
# Single-machine Roost never loads the cluster package (nor Ray): only `roost serve --cluster` (the
# daemon) and `roost node join` (cli/cluster.py) import it, and inside roost/cluster only gcs.py
# imports Ray.
CLUSTER_IMPORTERS = {"roost.daemon", "roost.cli.cluster"}
RAY_IMPORTERS = {"roost.cluster.gcs", "roost.cluster.raybridge"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def roost_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "roost")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "roost":
            found.add(node.module)
    return found


def rule_for(module: str) -> tuple[str, tuple[str, ...]]:
    best = max((prefix for prefix in ALLOWED if module == prefix or module.startswith(prefix + ".")), key=len)
    return best, ALLOWED[best]


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_every_module_has_a_rule() -> None:
    for path in ROOT.rglob("*.py"):
        module = module_name(path)
        assert any(is_within(module, p) for p in ALLOWED), f"{module} has no import rule in this test"


def violations(module: str, imports: set[str]) -> list[str]:
    """The imports of `module` that its rule does not allow."""
    own, allowed = rule_for(module)
    if own == "roost.daemon":
        return []
    bad = []
    for name in sorted(imports):
        if own != "roost" and is_within(name, own):
            continue
        if name == "roost" and "roost" in allowed:
            continue
        if any(is_within(name, a) for a in allowed if a != "roost"):
            continue
        bad.append(f"{module} imports {name}")
    return bad


def test_the_checker_catches_a_wrong_import() -> None:
    assert violations("roost.edge.proxy", {"roost.store"}) == ["roost.edge.proxy imports roost.store"]
    assert violations("roost.edge.proxy", {"roost.runtime.supervisor"})
    assert violations("roost.model", {"roost.errors"})
    assert not violations("roost.edge.proxy", {"roost.runtime.protocol", "roost.model", "roost.edge.parse"})


def test_control_sees_the_runtime_only_through_its_protocol() -> None:
    assert violations("roost.control.lifecycle", {"roost.runtime"}) == ["roost.control.lifecycle imports roost.runtime"]
    assert violations("roost.control.overview", {"roost.runtime.backoff"})
    assert violations("roost.control.core", {"roost.runtime.strays", "roost.runtime.protocol"}) == [
        "roost.control.core imports roost.runtime.strays"
    ]
    found = {
        name
        for path in sorted((ROOT / "control").rglob("*.py"))
        for name in roost_imports(path)
        if is_within(name, "roost.runtime")
    }
    assert found == {"roost.runtime.protocol"}, f"control reaches past the runtime protocol: {found}"


def test_imports_point_one_way() -> None:
    broken = []
    for path in sorted(ROOT.rglob("*.py")):
        broken.extend(violations(module_name(path), roost_imports(path)))
    assert not broken, "imports against DESIGN.md:\n" + "\n".join(broken)


def test_only_serve_imports_the_daemon() -> None:
    for path in ROOT.rglob("*.py"):
        module = module_name(path)
        if module in DAEMON_IMPORTERS:
            continue
        assert not any(is_within(n, "roost.daemon") for n in roost_imports(path)), f"{module} imports roost.daemon"


def test_only_cluster_commands_import_the_cluster_package() -> None:
    for path in ROOT.rglob("*.py"):
        module = module_name(path)
        if module in CLUSTER_IMPORTERS or is_within(module, "roost.cluster"):
            continue
        assert not any(is_within(n, "roost.cluster") for n in roost_imports(path)), f"{module} imports roost.cluster"


def ray_imports(source: str) -> list[int]:
    """The lines of `source` that import Ray (`import ray`, `from ray._raylet import ...`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        if any(name.split(".")[0] == "ray" for name in names):
            found.append(node.lineno)
    return found


def test_the_ray_checker_catches_an_import() -> None:
    assert ray_imports("import ray\n") == [1]
    assert ray_imports("def f():\n    from ray._raylet import GcsClient\n") == [2]
    assert ray_imports("import os, ray.util as u\n") == [1]
    assert not ray_imports("import rayon\nfrom roost import ray_thing\n# import ray\n")


def test_only_the_cluster_state_reader_imports_ray() -> None:
    importers = {module_name(path) for path in ROOT.rglob("*.py") if ray_imports(path.read_text())}
    assert importers == RAY_IMPORTERS, f"Ray is imported by {sorted(importers)}; only {sorted(RAY_IMPORTERS)} may"


def test_leaves_import_nothing_of_roost() -> None:
    for leaf in LEAVES:
        path = ROOT / f"{leaf.split('.')[1]}.py"
        assert roost_imports(path) == set()


def test_only_the_store_speaks_sql() -> None:
    for path in ROOT.rglob("*.py"):
        if module_name(path).startswith("roost.store"):
            continue
        assert "import sqlite3" not in path.read_text(), f"{path} imports sqlite3; only roost/store may"


# Inside the edge, imports (type-only ones too) point down this list: a module may import only
# those above it. Where a lower module calls a higher one back, it names a Protocol of its own
# (upstream.ResponseSink for the exchange, request.BodySink, exchange.ClientSide for the client
# connection, context.Connection, activator.Waiting) instead of importing the class.
EDGE_LAYERS = (
    "native",
    "answers",
    "edge_settings",
    "counters",
    "deadline",
    "split",
    "routes",
    "guard",
    "tls",
    "tunnel",
    "request",
    "wire",
    "response",
    "upstream",
    "activator",
    "context",
    "admission",
    "exchange",
    "client",
    "handshake",
    "server",
)
EDGE = "roost.edge"


def edge_imports(path: Path) -> set[str]:
    """The edge modules `path` imports, `from roost.edge import wire` included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == EDGE:
            found.update(f"{EDGE}.{alias.name}" for alias in node.names if alias.name in EDGE_LAYERS)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(EDGE + "."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(EDGE + "."))
    return found


def edge_violations(module: str, imports: set[str]) -> list[str]:
    """The edge imports of `module` that do not point down EDGE_LAYERS."""
    if module == EDGE:
        return []  # the package's __init__ exports from any of them
    rank = EDGE_LAYERS.index(module.rpartition(".")[2])
    bad = []
    for name in sorted(imports):
        below = name.rpartition(".")[2]
        if below not in EDGE_LAYERS or EDGE_LAYERS.index(below) >= rank:
            bad.append(f"{module} imports {name}")
    return bad


def test_every_edge_module_has_a_layer() -> None:
    for path in (ROOT / "edge").glob("*.py"):
        assert path.stem == "__init__" or path.stem in EDGE_LAYERS, f"roost/edge/{path.name} is not in EDGE_LAYERS"


def test_the_edge_checker_catches_a_call_back_by_class() -> None:
    assert edge_violations("roost.edge.upstream", {"roost.edge.exchange"}) == [
        "roost.edge.upstream imports roost.edge.exchange"
    ]
    assert edge_violations("roost.edge.exchange", {"roost.edge.client"})
    assert edge_violations("roost.edge.request", {"roost.edge.exchange"})
    assert edge_violations("roost.edge.context", {"roost.edge.client"})
    assert edge_violations("roost.edge.wire", {"roost.edge.wire"})
    assert not edge_violations("roost.edge.client", {"roost.edge.exchange", "roost.edge.wire"})


def test_edge_imports_point_one_way() -> None:
    broken = []
    for path in sorted((ROOT / "edge").glob("*.py")):
        broken.extend(edge_violations(module_name(path), edge_imports(path)))
    assert not broken, "edge imports against EDGE_LAYERS:\n" + "\n".join(broken)


# Names that don't collide: a module one letter away from another (`zygote.py`/`zygotes.py`) or a
# class name defined twice (two `Request`s) makes a reader, a traceback or an import guess which.


def plural_pairs(paths: Iterable[Path]) -> list[str]:
    """The module and package names among `paths` that differ only by a trailing "s"."""
    by_name: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        name = path.parent.name if path.stem == "__init__" else path.stem
        by_name[name].add(str(path.parent if path.stem == "__init__" else path))
    return [
        f"{' '.join(sorted(by_name[name]))} vs {' '.join(sorted(by_name[name + 's']))}"
        for name in sorted(by_name)
        if name + "s" in by_name
    ]


def classes_defined_twice(sources: Mapping[str, str]) -> list[str]:
    """The class names defined (at any depth) in more than one place of `sources` (module -> text)."""
    where: dict[str, list[str]] = defaultdict(list)
    for module, text in sources.items():
        for node in ast.walk(ast.parse(text, module)):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(module)
    return [f"class {name} in {', '.join(modules)}" for name, modules in sorted(where.items()) if len(modules) > 1]


def test_the_name_checkers_catch_a_collision() -> None:
    assert plural_pairs([Path("roost/runtime/zygote.py"), Path("roost/runtime/zygotes.py")]) == [
        "roost/runtime/zygote.py vs roost/runtime/zygotes.py"
    ]
    assert plural_pairs([Path("roost/cli/app.py"), Path("roost/apps/__init__.py")])
    assert not plural_pairs([Path("roost/api/deploys.py"), Path("roost/cli/deploys.py"), Path("roost/status.py")])
    two = {"roost.a": "class Request:\n    pass\n", "roost.b": "def f():\n    class Request: ...\n"}
    assert classes_defined_twice(two) == ["class Request in roost.a, roost.b"]
    assert not classes_defined_twice({"roost.a": "class Request: ...\n", "roost.b": "Request = 1\n"})


def test_no_two_names_of_roost_differ_by_a_trailing_s() -> None:
    pairs = plural_pairs(sorted(path.relative_to(ROOT.parent) for path in ROOT.rglob("*.py")))
    assert not pairs, "names one letter apart; name each for what it is:\n" + "\n".join(pairs)


# Collisions allowed, each with exactly the places it may have and why. A third place fails.
TWICE_FOR_NOW: set[str] = set()


def test_no_class_name_is_defined_twice() -> None:
    sources = {module_name(path): path.read_text() for path in sorted(ROOT.rglob("*.py"))}
    twice = [found for found in classes_defined_twice(sources) if found not in TWICE_FOR_NOW]
    assert not twice, "one class name, one class; rename one of them:\n" + "\n".join(twice)


def module_path(module: str) -> Path:
    base = ROOT.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(module: str) -> bool:
    return module_path(module).is_file()


def imported_modules(path: Path) -> set[str]:
    """The modules of Roost that `path` imports, `from roost.api import apps` read as `roost.api.apps`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "roost")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "roost":
            names = [f"{node.module}.{a.name}" for a in node.names]
            found.update(name for name in names if is_module(name))
            if not all(is_module(name) for name in names):
                found.add(node.module)
    return found


def test_nothing_imports_relatively() -> None:
    """A relative import would slip past every rule here, which read absolute names."""
    relative = [
        f"{module_name(path)}:{node.lineno}"
        for path in sorted(ROOT.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not relative, "relative imports (write `from roost.x import y`):\n" + "\n".join(relative)


# Roost's own small programs: each runs as a separate process where Roost is absent (the runner
# lives in the app's venv) or must not be loaded (the launcher and enter run as `python -I -S`
# right before an exec). They are also the only places besides the CLI that may exit.
SELF_CONTAINED = ("roost.runtime.runner", "roost.runtime.sandbox.launcher", "roost.builder.enter")


def test_self_contained_programs_import_nothing_of_roost() -> None:
    for module in SELF_CONTAINED:
        assert is_module(module), f"{module} is in SELF_CONTAINED but does not exist (renamed?)"
        found = imported_modules(module_path(module)) | roost_imports(module_path(module))
        assert not found, f"{module} runs as its own process without Roost, yet imports {sorted(found)}"


# Rules inside packages. INSIDE_ONLY: modules under `who` may import, of `scope`, only `allowed`
# (and themselves). INSIDE_NEVER: modules under `who` never import `target`, except `exempt`.
INSIDE_ONLY: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "roost.runtime.sandbox",
        "roost.runtime",
        ("roost.runtime.protocol", "roost.runtime.isolation", "roost.runtime.ports"),
        "confining a process never depends on how the runtime keeps instances",
    ),
    (
        "roost.runtime.protocol",
        "roost.runtime",
        ("roost.runtime.isolation",),
        "a cluster runtime imports the protocol without loading LocalRuntime's parts",
    ),
    *(
        (f"roost.runtime.{pure}", "roost.runtime", (), "a pure decision takes everything as arguments")
        for pure in ("backoff", "budget", "capacity", "cause", "isolation")
    ),
)
API_ROUTES = ("access", "apps", "audit", "deploys", "env", "live", "nodes", "ops", "quotas", "ui")
STORE_TABLES = ("aliases", "audit", "domains", "instance_tables", "quotas", "secrets", "tokens")
INSIDE_NEVER: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "roost.runtime",
        "roost.runtime.supervisor",
        ("roost.runtime",),
        "LocalRuntime is the facade over the runtime's parts; a part never reaches back up to it",
    ),
    *(
        (f"roost.api.{route}", f"roost.api.{other}", (), "route modules share deps/params/schemas, never each other")
        for route in API_ROUTES
        for other in API_ROUTES
        if other != route
    ),
    *(
        (f"roost.store.{table}", f"roost.store.{other}", (), "table modules share db and records, never each other")
        for table in STORE_TABLES
        for other in STORE_TABLES
        if other != table
    ),
)


def inside_violations(module: str, imports: set[str]) -> list[str]:
    """The imports of `module` that break a rule inside its package, each with the rule's reason."""
    bad = []
    for who, scope, allowed, why in INSIDE_ONLY:
        if is_within(module, who):
            own = (who, *allowed)
            bad += [
                f"{module} imports {name}: {why}"
                for name in sorted(imports)
                if is_within(name, scope) and not any(is_within(name, a) for a in own)
            ]
    for who, target, exempt, why in INSIDE_NEVER:
        if is_within(module, who) and module not in exempt and module != target:
            bad += [f"{module} imports {name}: {why}" for name in sorted(imports) if is_within(name, target)]
    return bad


def test_inside_rules_name_modules_that_exist() -> None:
    named = {who for who, *_ in INSIDE_ONLY} | {who for who, *_ in INSIDE_NEVER} | {t for _, t, *_ in INSIDE_NEVER}
    stale = sorted(name for name in named if not is_module(name))
    assert not stale, f"rules inside packages name modules that do not exist (renamed?): {stale}"


def test_the_inside_checker_catches_a_wrong_import() -> None:
    assert inside_violations("roost.runtime.sandbox.confine", {"roost.runtime.supervisor"}) == [
        "roost.runtime.sandbox.confine imports roost.runtime.supervisor: "
        "confining a process never depends on how the runtime keeps instances",
        "roost.runtime.sandbox.confine imports roost.runtime.supervisor: "
        "LocalRuntime is the facade over the runtime's parts; a part never reaches back up to it",
    ]
    assert inside_violations("roost.runtime.sandbox.readback", {"roost.runtime.keeper"})
    assert inside_violations("roost.runtime.protocol", {"roost.runtime.pool"})
    assert inside_violations("roost.runtime.backoff", {"roost.runtime.tuning"})
    assert inside_violations("roost.runtime.keeper", {"roost.runtime.supervisor"})
    assert inside_violations("roost.api.apps", {"roost.api.deploys"})
    assert inside_violations("roost.store.tokens", {"roost.store.secrets"})
    assert not inside_violations("roost.runtime", {"roost.runtime.supervisor"})
    assert not inside_violations(
        "roost.runtime.sandbox.sandbox", {"roost.runtime.ports", "roost.runtime.sandbox.bwrap"}
    )
    assert not inside_violations("roost.api.asgi", {"roost.api.apps", "roost.api.deploys"})
    assert not inside_violations("roost.api.apps", {"roost.api.deps", "roost.api.schemas"})


def test_rules_inside_packages_hold() -> None:
    broken = []
    for path in sorted(ROOT.rglob("*.py")):
        broken.extend(inside_violations(module_name(path), imported_modules(path)))
    assert not broken, "imports against the rules inside packages:\n" + "\n".join(broken)


# Who may end the process: the CLI, and Roost's own small programs (their exit status is their answer).
# Programs of their own that do use Roost: the head's Ray driver leaves with os._exit when the daemon goes.
OWN_PROGRAMS = ("roost.cluster.raybridge",)
EXITERS = ("roost.cli", *SELF_CONTAINED, *OWN_PROGRAMS)
EXIT_FUNCTIONS = {"sys": {"exit"}, "os": {"_exit"}}
EXIT_BUILTINS = {"exit", "quit"}


def exit_names(tree: ast.AST) -> tuple[dict[str, str], dict[str, str]]:
    """The local names of sys and os (name -> module), and of the exit functions (name -> what it is)."""
    modules: dict[str, str] = {}
    functions = {name: name for name in EXIT_BUILTINS}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({a.asname or a.name: a.name for a in node.names if a.name in EXIT_FUNCTIONS})
        elif isinstance(node, ast.ImportFrom) and node.module in EXIT_FUNCTIONS and node.level == 0:
            exported = EXIT_FUNCTIONS[node.module]
            functions.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names if a.name in exported})
    return modules, functions


def exit_call(call: ast.Call, modules: dict[str, str], functions: dict[str, str]) -> str | None:
    """What `call` is, if it ends the process."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in functions:
        return f"{functions[func.id]}()"
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        module = modules.get(func.value.id)
        if module is not None and func.attr in EXIT_FUNCTIONS[module]:
            return f"{module}.{func.attr}()"
    return None


def raises_system_exit(node: ast.Raise) -> bool:
    raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return isinstance(raised, ast.Name) and raised.id == "SystemExit"


def exits(source: str) -> list[str]:
    """Where `source` ends the process: calls of sys.exit, os._exit, exit(), quit() (under any
    name they were imported as) and `raise SystemExit`, as `line: what`."""
    tree = ast.parse(source)
    modules, functions = exit_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (what := exit_call(node, modules, functions)):
            found.append((node.lineno, f"{node.lineno}: {what}"))
        elif isinstance(node, ast.Raise) and raises_system_exit(node):
            found.append((node.lineno, f"{node.lineno}: raise SystemExit"))
    return [where for _, where in sorted(found)]


def test_the_exit_checker_reads_calls_not_text() -> None:
    assert exits("import sys\nsys.exit(1)") == ["2: sys.exit()"]
    assert exits("import os as o\no._exit(0)") == ["2: os._exit()"]
    assert exits("from sys import exit as leave\nleave(3)") == ["2: sys.exit()"]
    assert exits("exit()\nquit(1)") == ["1: exit()", "2: quit()"]
    assert exits("raise SystemExit(2)\n") == ["1: raise SystemExit"]
    assert exits("raise SystemExit\n") == ["1: raise SystemExit"]
    assert not exits("# sys.exit(1)\nhint = 'sys.exit'\n")
    assert not exits("stack.exit()\nimport sys\nsys.exitfunc()\n")
    assert not exits("try:\n    pass\nexcept SystemExit:\n    pass\n")


def test_only_the_cli_and_roosts_own_programs_exit() -> None:
    broken = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        if any(is_within(module, allowed) for allowed in EXITERS):
            continue
        broken += [f"{path.relative_to(ROOT.parent)}:{where}" for where in exits(path.read_text())]
    assert not broken, "only roost/cli and " + ", ".join(EXITERS[1:]) + " may exit:\n" + "\n".join(broken)


ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"
TABLE_HEADING = "## Modules"


def table_rows(markdown: str) -> list[tuple[str, str]]:
    """The (module path, what it owns) rows of the table under TABLE_HEADING."""
    _, found, rest = markdown.partition(f"\n{TABLE_HEADING}\n")
    assert found, f"docs/architecture.md has no `{TABLE_HEADING}` section with the module table"
    section = rest.split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(roost/\S+\.py)`", cells[0]) if line.startswith("|") else None
        if match:
            rows.append((match.group(1), cells[1] if len(cells) > 1 else ""))
    return rows


def table_problems(rows: list[tuple[str, str]], modules: set[str]) -> list[str]:
    """What is wrong between the table's rows and the modules on disk, one line each, saying what to do."""
    named = [path for path, _ in rows]
    problems = [f"no row for {path}: add one, | `{path}` | what it owns |" for path in sorted(modules - set(named))]
    problems += [
        f"row for {path}, which is not in roost/ (renamed or removed?): rename or drop it"
        for path in sorted(set(named) - modules)
    ]
    problems += [f"{path} has more than one row" for path in sorted({p for p in named if named.count(p) > 1})]
    problems += [f"the row for {path} does not say what it owns" for path, owns in rows if not owns]
    return problems


def test_the_table_checker_names_what_is_missing_and_stale() -> None:
    rows = table_rows(
        "# x\n\n## Modules\n\n| module | owns |\n| --- | --- |\n"
        "| `roost/a.py` | a |\n| `roost/old.py` | gone |\n| `roost/c.py` |  |\n\n## After\n| `roost/z.py` | z |\n"
    )
    assert rows == [("roost/a.py", "a"), ("roost/old.py", "gone"), ("roost/c.py", "")]
    assert table_problems(rows, {"roost/a.py", "roost/b.py", "roost/c.py"}) == [
        "no row for roost/b.py: add one, | `roost/b.py` | what it owns |",
        "row for roost/old.py, which is not in roost/ (renamed or removed?): rename or drop it",
        "the row for roost/c.py does not say what it owns",
    ]
    assert table_problems([("roost/a.py", "a"), ("roost/a.py", "a")], {"roost/a.py"}) == [
        "roost/a.py has more than one row"
    ]


def test_the_module_table_lists_every_module() -> None:
    modules = {str(path.relative_to(ROOT.parent)) for path in ROOT.rglob("*.py")}
    problems = table_problems(table_rows(ARCHITECTURE.read_text()), modules)
    assert not problems, "docs/architecture.md's module table is out of date:\n" + "\n".join(problems)


IMPORTS_HEADING = "## Import rules"


def first_table(section: str) -> list[str]:
    """The lines of the first markdown table in `section`, its head and rule included."""
    lines = section.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def import_table(markdown: str) -> dict[str, set[str]]:
    """The import rules table of docs/architecture.md: package -> what it may import, as ALLOWED spells it."""
    _, found, rest = markdown.partition(f"\n{IMPORTS_HEADING}\n")
    assert found, f"docs/architecture.md has no `{IMPORTS_HEADING}` section"
    rules: dict[str, set[str]] = {}
    for line in first_table(rest.split("\n## ", 1)[0])[2:]:
        who, may, *_ = (cell.strip() for cell in line.strip().strip("|").split("|"))
        allowed = {name if name == "roost" else f"roost.{name}" for name in re.findall(r"`([\w.]+)`", may)}
        allowed |= set(LEAVES) if re.match(r"(the )?leaves", may) else set()
        allowed |= {"roost"} if may == "anything" else set()
        rules.update({f"roost.{name}": allowed for name in re.findall(r"`([\w.]+)`", who)})
    return rules


def import_table_problems(table: dict[str, set[str]], allowed: dict[str, tuple[str, ...]]) -> list[str]:
    """Where the doc's import table and the test's ALLOWED differ, one line each."""
    problems = []
    for p in sorted(table.keys() & allowed.keys()):
        only_doc, only_test = sorted(table[p] - set(allowed[p])), sorted(set(allowed[p]) - table[p])
        if only_doc:
            problems.append(f"{p}: only the doc allows {only_doc}")
        if only_test:
            problems.append(f"{p}: only ALLOWED allows {only_test}")
    problems += [
        f"{p} has a rule in ALLOWED but no row in the doc" for p in sorted(allowed.keys() - table.keys() - {"roost"})
    ]
    problems += [f"{p} has a row in the doc but no rule in ALLOWED" for p in sorted(table.keys() - allowed.keys())]
    return problems


def test_the_import_table_checker_catches_a_difference() -> None:
    doc = (
        "x\n## Import rules\n\nintro\n\n| package | may import | why |\n| --- | --- | --- |\n"
        "| leaves: `model` | nothing of Roost | . |\n| `edge`, `autoscale` | leaves, `runtime.protocol` | . |\n"
        "| `api` | `roost`, `control` | . |\n| `daemon` | anything | . |\n\nafter\n"
    )
    table = import_table(doc)
    edge = {*LEAVES, "roost.runtime.protocol"}
    assert table == {
        "roost.model": set(),
        "roost.edge": edge,
        "roost.autoscale": edge,
        "roost.api": {"roost", "roost.control"},
        "roost.daemon": {"roost"},
    }
    rules = {
        "roost.model": (),
        "roost.edge": (*LEAVES, "roost.store"),
        "roost.autoscale": tuple(edge),
        "roost.cron": (),
    }
    assert import_table_problems(table, rules) == [
        "roost.edge: only the doc allows ['roost.runtime.protocol']",
        "roost.edge: only ALLOWED allows ['roost.store']",
        "roost.cron has a rule in ALLOWED but no row in the doc",
        "roost.api has a row in the doc but no rule in ALLOWED",
        "roost.daemon has a row in the doc but no rule in ALLOWED",
    ]


def test_the_import_table_is_the_rule() -> None:
    problems = import_table_problems(import_table(ARCHITECTURE.read_text()), ALLOWED)
    assert not problems, "docs/architecture.md's import rules and ALLOWED disagree:\n" + "\n".join(problems)

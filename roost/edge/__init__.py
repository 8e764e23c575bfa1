"""Edge router package: the HTTP/1.1 data plane in front of every app.

Others use `Edge` (serve, swap routes, count, close), `EdgeSettings`, `Answer`, the
routing snapshot types `RouteTable`/`AppRoute`, and the pure `resolve` and
`pick` for tests and tools, and `describe_build` (compiled with mypyc, or
pure Python and why; see native.py). Nothing here spawns processes or reads the store.
"""

# First: importing native.py decides whether the compiled modules below may be used.
from roost.edge.native import describe as describe_build

# isort: split
from roost.edge.answers import Answer
from roost.edge.counters import LATENCY_BUCKETS, EdgeCounters
from roost.edge.edge_settings import EdgeSettings
from roost.edge.routes import AppRoute, Resolution, RouteTable, resolve
from roost.edge.server import Edge
from roost.edge.split import pick

__all__ = [
    "LATENCY_BUCKETS",
    "Answer",
    "AppRoute",
    "Edge",
    "EdgeCounters",
    "EdgeSettings",
    "Resolution",
    "RouteTable",
    "describe_build",
    "pick",
    "resolve",
]

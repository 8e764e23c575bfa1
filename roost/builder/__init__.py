"""The builder: safe unpack, uv installs into a venv cache keyed by the dependency files, bytecode.
What others may use is exported here. Imports the leaves, the registry and applog only.
"""

from roost.builder.builder import Builder, BuildOutput, BuildRequest, BuildStep, step_line
from roost.builder.deps import Dependencies, DependencyKind, find_dependencies, venv_key
from roost.builder.enclosure import Enclosure, home_id
from roost.builder.unpack import LIMIT_MEMBERS, LIMIT_UNPACKED_BYTES, UnpackStats, unpack_archive

__all__ = [
    "LIMIT_MEMBERS",
    "LIMIT_UNPACKED_BYTES",
    "BuildOutput",
    "BuildRequest",
    "BuildStep",
    "Builder",
    "Dependencies",
    "DependencyKind",
    "Enclosure",
    "UnpackStats",
    "find_dependencies",
    "home_id",
    "step_line",
    "unpack_archive",
    "venv_key",
]

"""Whether Ray is installed beside Roost: the cluster's commands need it, nothing else does; and
whether Ray Client is (then Ray's head opens its client server, whose port Roost must pin)."""

from __future__ import annotations

import importlib.util

from roost.errors import ConfigError


def require_ray(command: str) -> None:
    """Raise ConfigError, saying how to install it, when this Python has no Ray. Imports nothing."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            f"`{command}` needs Ray, which is not installed beside Roost",
            hint="pip install 'roost[cluster]' (into the same environment as Roost)",
        )


def has_ray_client() -> bool:
    """Whether Ray Client's dependency (grpcio, from `ray[client]` or `ray[default]`) is installed,
    as Ray itself decides. Imports nothing."""
    return importlib.util.find_spec("grpc") is not None

"""Admin API package: `create_api(control)` is its whole public surface."""

from roost.api.app import create_api

__all__ = ["create_api"]

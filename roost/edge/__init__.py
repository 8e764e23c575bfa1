"""Edge router package: the HTTP data plane in front of every app."""

from roost.edge.placeholder import PlaceholderProtocol

__all__ = ["PlaceholderProtocol"]

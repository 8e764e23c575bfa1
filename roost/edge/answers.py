"""What the edge tells its owner about each answer it finished (for the request log).

A leaf of the edge: plain values, built only when someone listens (`Edge.on_answer`).
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.model import DeploymentId, InstanceId


@dataclass(frozen=True, slots=True)
class Answer:
    """One request the edge answered for a deployment: its line in the app's request log."""

    deployment: DeploymentId
    method: bytes
    target: bytes  # as the client sent it, the app's path prefix included
    status: int
    seconds: float  # from the request's head to the answer's end
    start_kind: bytes  # X-Roost-Start: b"hot", b"warm" or b"cold"
    instance: InstanceId | None  # None when no instance took it (the edge answered itself)

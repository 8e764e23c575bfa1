"""Traffic split: the pure `pick(traffic, cookie, random)`, the sticky cookie, and `choose`,
which puts the two together for one request.

A client keeps the deployment its cookie names while that deployment still
has weight; weight 0 takes no new clients. Never does I/O; the caller passes
the random number so tests (and replays) are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from roost.model import DeploymentId

COOKIE_PREFIX = "roost_split_"
COOKIE_MAX_AGE = 30 * 24 * 3600  # an A/B test outlives a browser session


def pick(
    traffic: Sequence[tuple[DeploymentId, int]], cookie_value: str | None, random_value: float
) -> DeploymentId | None:
    """The deployment for one request, or None when no deployment has weight.

    `random_value` is in [0, 1). Example: with ``(("a", 90), ("b", 10))`` a
    value of 0.95 picks "b", and cookie "b" keeps picking "b" while b's weight > 0.
    """
    total = 0
    for deployment, weight in traffic:
        if weight > 0:
            total += weight
            if deployment == cookie_value:
                return deployment
    if total <= 0:
        return None
    point = random_value * total
    for deployment, weight in traffic:
        if weight > 0:
            point -= weight
            if point < 0:
                return deployment
    return next(d for d, w in reversed(traffic) if w > 0)  # random_value rounding up to 1.0


def is_split(traffic: Sequence[tuple[DeploymentId, int]]) -> bool:
    """True when more than one deployment takes new clients: only then is a cookie set."""
    return sum(1 for _, weight in traffic if weight > 0) > 1


def cookie_name(app: str) -> str:
    return COOKIE_PREFIX + app


def read_cookie(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header value, if present."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def set_cookie(app: str, deployment: DeploymentId, path: str) -> str:
    """The Set-Cookie value that keeps a client on `deployment` (path "/<app>" for path routes)."""
    return f"{cookie_name(app)}={deployment}; Path={path or '/'}; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax"


def choose(
    app: str,
    traffic: Sequence[tuple[DeploymentId, int]],
    cookies: list[bytes] | None,
    prefix: bytes,
    random: Callable[[], float],
) -> tuple[DeploymentId | None, bytes | None]:
    """One request's deployment under `traffic`, and the Set-Cookie value to send with it (None
    when the client's cookie already says so, or traffic is not split). `cookies` are the
    request's Cookie headers; `random` is drawn only when traffic is split."""
    if len(traffic) == 1:
        return (traffic[0][0] if traffic[0][1] > 0 else None), None
    if not is_split(traffic):
        return pick(traffic, None, 0.0), None
    name = cookie_name(app)
    current = None
    for header in cookies or ():
        current = read_cookie(header.decode("latin-1"), name) or current
    chosen = pick(traffic, current, random())
    if chosen is not None and chosen != current:
        return chosen, set_cookie(app, chosen, prefix.decode("latin-1")).encode("latin-1")
    return chosen, None

"""The edge's knobs: timeouts, size limits and the DDoS defences, all on by default.

Plain data. Defaults are generous enough for real traffic and small enough
that one client cannot take the daemon down.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Settings of one `Edge`. Times in seconds, sizes in bytes; a rate of 0 turns rate limiting off."""

    timeout_header: float = 10.0  # from the first byte (or accept) to the end of the head: slowloris
    timeout_body: float = 15.0  # between two reads of a request body: 408 beyond (nginx's client_body_timeout)
    timeout_handshake: float = 10.0  # a TLS handshake, counted in the connection caps from accept
    timeout_keepalive: float = 60.0  # idle time between requests on a client connection
    timeout_activate: float = 30.0  # longest wait in the activator queue for a slot
    timeout_connect: float = 5.0  # connecting to an instance
    timeout_upstream_idle: float = 4.0  # pooled upstream connection; below uvicorn's 5 s keep-alive
    grace_recycle: float = 5.0  # after a 504, time the instance gets to finish before it is recycled
    grace_linger: float = 2.0  # reading and discarding after an error reply, so the client sees it
    limit_request_line: int = 8 * 1024  # 414 beyond
    limit_headers_bytes: int = 16 * 1024  # 431 beyond
    limit_headers_count: int = 100  # 431 beyond
    limit_queue: int = 1000  # waiting requests per deployment; 503 beyond (load shedding)
    limit_connections: int = 10_000  # open client connections in all
    limit_connections_per_client: int = 256  # open connections per client address (IPv6: per /64)
    limit_upstream_idle: int = 128  # idle pooled connections kept per instance
    limit_body_buffer: int = 64 * 1024  # request body read before a slot is taken, and ahead of the upstream
    rate_per_client: float = 1000.0  # requests per second per client address (token bucket refill)
    rate_burst: int = 2000  # bucket size: requests a client may send at once
    trust_proxy: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-* and X-Request-Id are believed
    server_header: str = "roost"  # replaces the app's Server header; "" passes the app's through
    # In a cluster: X-Roost-Node on every answer an instance of this machine gave ("n1; region=eu");
    # "" adds none (one machine).
    node: str = ""
    region: str = ""  # this edge's region: where the demand it sees comes from, unless a peer says otherwise

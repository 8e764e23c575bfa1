"""The routing table and the pure `resolve(table, host, path)` that reads it.

Owns the mapping from a request's Host and path to an app and, for previews,
one deployment. Never does I/O and never looks at traffic weights (see split).

    resolve(table, "hello.localhost:8080", "/x")       -> hello, production, "/x"
    resolve(table, "ab12cd34--hello.localhost", "/")   -> hello, deployment ab12cd34
    resolve(table, "feature-x--hello.localhost", "/")  -> hello, the deployment alias feature-x names
    resolve(table, "localhost", "/hello/x?q=1")        -> hello, "/x?q=1", prefix "/hello"
    resolve(table, "shop.example.org", "/")            -> the app owning that custom domain
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import unquote

from roost.model import AppName, DeploymentId


@dataclass(frozen=True, slots=True)
class AppRoute:
    """What the edge needs to know about one app: a snapshot, rebuilt on every change.

    `traffic` is production's (deployment, weight) list; `deployments` the ready
    ones a preview host may name, by id or by a branch alias (`aliases`: alias ->
    deployment); `private_paths` answer 404 from outside.
    `timeout_request` bounds the wait for the answer's head; once it streams,
    `timeout_stream_idle` (between reads) and `timeout_stream` (in all) apply.
    `body_too_large` is the 413 page's sentence, naming the limit and its setting.
    """

    name: str
    traffic: tuple[tuple[DeploymentId, int], ...]
    deployments: frozenset[DeploymentId]
    stopped: bool
    timeout_request: float
    limit_body: int
    entrypoint: bool
    private_paths: frozenset[str] = frozenset()
    timeout_stream_idle: float = 60.0
    timeout_stream: float = 3600.0
    body_too_large: str = "request body too large"
    aliases: Mapping[str, DeploymentId] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[AppRoute], tuple[object, ...]]:
        """Pickled by its constructor: compiled (mypyc), a frozen dataclass cannot be unpickled by
        setting its fields, and a cluster's head sends route tables to the other machines."""
        return (AppRoute, tuple(getattr(self, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every app by name, the base domain, and custom domain (lower case) -> app name."""

    domain: str
    apps: Mapping[AppName, AppRoute] = field(default_factory=dict)
    hosts: Mapping[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[RouteTable], tuple[object, ...]]:
        """As `AppRoute.__reduce__`."""
        return (RouteTable, (self.domain, self.apps, self.hosts))


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where one request goes. `deployment` is None for production (the split picks)."""

    app: AppRoute
    deployment: DeploymentId | None
    path: str  # the target to send upstream, query included
    prefix: str  # "/<app>" for path routes, else ""


def no_deployment(app: AppRoute) -> str:
    """The 503 page of an app that takes no production traffic: never had a working
    deployment (its first push failed, or is building), or has ready ones but none promoted.

    >>> no_deployment(AppRoute("hello", (), frozenset(), False, 5.0, 1024, True)).split(": ")[0]
    "'hello' has no working deployment yet (its push failed or is still building)"
    """
    if app.deployments:
        return "this app has no deployment taking traffic"
    name = app.name
    return (
        f"'{name}' has no working deployment yet (its push failed or is still building): "
        f"`roost logs {name}` says why; fix the app and `roost push` again"
    )


def not_found(table: RouteTable, host: str) -> str:
    """The 404 page when no app matched: on a Host that is not this edge's domain (an IP
    address, a name the DNS points here but nobody added), it says which URLs do answer.

    >>> not_found(RouteTable("localhost"), "127.0.0.1:8080")
    'no such app: no app answers to the host 127.0.0.1; apps are at http://APP.localhost:8080/ and http://localhost:8080/APP/'
    """
    name, domain = host_name(host), table.domain.lower()
    if name == domain or name.endswith("." + domain) or name in table.hosts:
        return "no such app"
    port = host.strip()[len(name) :] if host.strip().lower().startswith(name) else ""
    port = port if port.startswith(":") and port[1:].isdigit() else ""
    return (
        f"no such app: no app answers to the host {name}; "
        f"apps are at http://APP.{domain}{port}/ and http://{domain}{port}/APP/"
    )


def host_name(host: str) -> str:
    """The lower-case name in a Host value, without port or trailing dot ("[::1]:80" -> "[::1]")."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(".")


def resolve(table: RouteTable, host: str, path: str) -> Resolution | None:
    """The app (and preview deployment) for `host` and `path`, or None for a plain 404.

    `host` is the raw Host value (any case, any port); `path` the origin-form
    target, query included. A private path is None too: outside callers must
    not learn that it exists.
    """
    return resolve_path(table, match_host(table, host), path)


HostMatch = tuple[AppRoute, DeploymentId | None] | str | None
BARE_DOMAIN = "bare-domain"  # match_host's answer for the bare domain: the path names the app


def match_host(table: RouteTable, host: str) -> HostMatch:
    """The Host part of `resolve`: (app, preview deployment or None), BARE_DOMAIN, or None."""
    name = host_name(host)
    domain = table.domain.lower()
    if name in table.hosts:
        app = table.apps.get(AppName(table.hosts[name]))
        return None if app is None else (app, None)
    if name == domain:
        return BARE_DOMAIN
    if not name.endswith("." + domain):
        return None
    label = name[: -len(domain) - 1]
    if "." in label:
        return None
    deployment, sep, app_name = label.partition("--")
    app = table.apps.get(AppName(app_name if sep else label))
    if app is None:
        return None
    if not sep:
        return app, None
    return preview(app, deployment)


def preview(app: AppRoute, label: str) -> tuple[AppRoute, DeploymentId] | None:
    """The ready deployment a preview label names: a deployment id, else a branch alias."""
    if label in app.deployments:
        return app, DeploymentId(label)
    aliased = app.aliases.get(label)
    return (app, aliased) if aliased is not None and aliased in app.deployments else None


def resolve_path(table: RouteTable, matched: HostMatch, path: str, internal: bool = False) -> Resolution | None:
    """The path part of `resolve`, given what `match_host` found; `internal` (Roost's own
    cron requests) may reach private paths."""
    if matched is None:
        return None
    if isinstance(matched, str):
        found = _path_route(table, path)
        if found is None:
            return None
    else:
        found = Resolution(matched[0], matched[1], path, "")
    if not internal and found.app.private_paths and is_private(found.app.private_paths, found.path):
        return None
    return found


def _path_route(table: RouteTable, path: str) -> Resolution | None:
    """`/<app>/rest?query` on the bare domain: the app sees `/rest?query`."""
    if not path.startswith("/"):
        return None
    end = len(path)
    for stop in ("/", "?", "#"):
        index = path.find(stop, 1)
        if 0 < index < end:
            end = index
    app = table.apps.get(AppName(path[1:end]))
    if app is None:
        return None
    rest = path[end:]
    if not rest.startswith("/"):
        rest = "/" + rest
    return Resolution(app, None, rest, path[:end])


def normal_path(path: str) -> str:
    """The path an app would see: no query, percent-decoded, dot segments and repeated slashes gone."""
    for stop in ("?", "#"):
        path = path.split(stop, 1)[0]
    path = unquote(path).replace("\\", "/")
    path = posixpath.normpath("/" + path)
    return "/" + path.lstrip("/")


def is_private(private_paths: frozenset[str], path: str) -> bool:
    """True if `path` is, once normalised, one of the private paths or below one."""
    wanted = normal_path(path)
    for private in private_paths:
        base = normal_path(private)
        if wanted == base or wanted.startswith(base.rstrip("/") + "/"):
            return True
    return False

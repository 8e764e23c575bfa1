"""Admission decides, before any slot: the client's rate, the route, the app's own limits and
the split's pick. Each refusal is the status and sentence the client will read."""

from __future__ import annotations

import random

from roost.edge.activator import Activator
from roost.edge.admission import Admitted, Refused, admit
from roost.edge.context import EdgeContext
from roost.edge.edge_settings import EdgeSettings
from roost.edge.request import Request
from roost.edge.routes import AppRoute, RouteTable
from roost.model import AppName, DeploymentId

LIVE, OTHER = DeploymentId("d-live"), DeploymentId("d-other")


def context(stopped: bool = False, rate: float = 0.0) -> EdgeContext:
    settings = EdgeSettings(rate_per_client=rate, rate_burst=1)
    ctx = EdgeContext(settings, Activator(object(), 1, 1.0), (), random.Random(7))  # type: ignore[arg-type]  # noqa: S311 - a split draw, not a secret
    route = AppRoute("shop", ((LIVE, 100),), frozenset({LIVE, OTHER}), stopped, 5.0, 100, True)
    ctx.set_routes(RouteTable("example.test", {AppName("shop"): route}))
    return ctx


def request(host: bytes, target: bytes = b"/", length: int | None = None, pinned: bytes | None = None) -> Request:
    req = Request(internal=pinned is not None)
    req.method, req.target, req.host, req.content_length, req.pinned = b"GET", target, host, length, pinned
    return req


def test_a_routed_request_goes_to_the_split_s_pick() -> None:
    admitted = admit(context(), request(b"shop.example.test", b"/cart"), "1.2.3.4", 0.0)
    assert isinstance(admitted, Admitted)
    assert (admitted.app.name, admitted.deployment, admitted.path, admitted.prefix) == ("shop", LIVE, b"/cart", b"")


def test_a_path_route_strips_the_app_s_prefix() -> None:
    admitted = admit(context(), request(b"example.test", b"/shop/cart"), "1.2.3.4", 0.0)
    assert isinstance(admitted, Admitted)
    assert (admitted.deployment, admitted.path, admitted.prefix) == (LIVE, b"/cart", b"/shop")


def test_roost_s_own_request_names_its_deployment() -> None:
    admitted = admit(context(), request(b"shop.example.test", pinned=b"d-other"), "internal", 0.0)
    assert isinstance(admitted, Admitted)
    assert admitted.deployment == OTHER


def test_refusals_say_why() -> None:
    nowhere = admit(context(), request(b"nope.example.test"), "1.2.3.4", 0.0)
    assert isinstance(nowhere, Refused)
    assert (nowhere.status, nowhere.message, nowhere.app) == (404, "no such app", None)
    stopped = admit(context(stopped=True), request(b"shop.example.test"), "1.2.3.4", 0.0)
    assert isinstance(stopped, Refused)
    assert (stopped.status, stopped.message) == (503, "this app is stopped")
    too_big = admit(context(), request(b"shop.example.test", length=101), "1.2.3.4", 0.0)
    assert isinstance(too_big, Refused)
    assert too_big.status == 413
    assert too_big.app is not None
    assert too_big.message == too_big.app.body_too_large


def test_a_client_over_its_rate_is_told_when_to_retry() -> None:
    ctx = context(rate=1.0)
    assert isinstance(admit(ctx, request(b"shop.example.test"), "1.2.3.4", 10.0), Admitted)
    refused = admit(ctx, request(b"shop.example.test"), "1.2.3.4", 10.0)
    assert isinstance(refused, Refused)
    assert (refused.status, refused.retry_after) == (429, 1)
    assert isinstance(admit(ctx, request(b"shop.example.test"), "5.6.7.8", 10.0), Admitted)

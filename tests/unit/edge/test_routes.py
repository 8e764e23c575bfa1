"""resolve(table, host, path): the pure routing decision."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from roost.edge import resolve
from roost.edge.routes import host_name, no_deployment, normal_path, not_found
from roost.model import DeploymentId
from tests.unit.edge.harness import route, table

A, B, C = DeploymentId("aaaaaaaa"), DeploymentId("bbbbbbbb"), DeploymentId("cccccccc")
TABLE = table(
    route("hello", [(A, 90), (B, 10)], previews=(C,)),
    route("shop", [(C, 100)], private=frozenset({"/_roost/cron/"})),
    domain="apps.example.com",
    hosts={"www.shop.test": "shop", "gone.test": "removed"},
)


@pytest.mark.parametrize(
    ("host", "path", "app", "deployment", "upstream", "prefix"),
    [
        ("hello.apps.example.com", "/x?y=1", "hello", None, "/x?y=1", ""),
        ("HELLO.Apps.Example.COM:8080", "/", "hello", None, "/", ""),
        ("hello.apps.example.com.", "/", "hello", None, "/", ""),
        ("cccccccc--hello.apps.example.com", "/p", "hello", C, "/p", ""),
        ("aaaaaaaa--hello.apps.example.com", "/", "hello", A, "/", ""),
        ("apps.example.com", "/hello/x/y?z", "hello", None, "/x/y?z", "/hello"),
        ("apps.example.com:80", "/hello", "hello", None, "/", "/hello"),
        ("apps.example.com", "/hello?q=1", "hello", None, "/?q=1", "/hello"),
        ("www.shop.test", "/cart", "shop", None, "/cart", ""),
        ("WWW.SHOP.TEST:443", "/", "shop", None, "/", ""),
        ("shop.apps.example.com", "/_roost/cronjob", "shop", None, "/_roost/cronjob", ""),
    ],
)
def test_routes_that_resolve(
    host: str, path: str, app: str, deployment: str | None, upstream: str, prefix: str
) -> None:
    found = resolve(TABLE, host, path)
    assert found is not None
    assert (found.app.name, found.deployment, found.path, found.prefix) == (app, deployment, upstream, prefix)


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("nope.apps.example.com", "/"),  # unknown app
        ("example.com", "/"),  # another domain
        ("evil-apps.example.com", "/"),  # suffix without the dot
        ("x.hello.apps.example.com", "/"),  # two labels
        ("zzzzzzzz--hello.apps.example.com", "/"),  # a deployment of no one
        ("aaaaaaaa--shop.apps.example.com", "/"),  # hello's deployment under shop's name
        ("apps.example.com", "/"),  # the bare domain alone
        ("apps.example.com", "/nope/"),  # a path naming no app
        ("apps.example.com", "*"),
        ("gone.test", "/"),  # a custom domain of a removed app
        ("shop.apps.example.com", "/_roost/cron/run"),  # private
        ("shop.apps.example.com", "/_roost/%63ron/run"),  # private, percent-encoded
        ("shop.apps.example.com", "//_roost/./cron/"),  # private, dot segments
        ("apps.example.com", "/shop/_roost/cron/"),  # private behind a path route
        ("", "/"),
    ],
)
def test_routes_that_do_not(host: str, path: str) -> None:
    assert resolve(TABLE, host, path) is None


def test_a_production_deployment_has_a_preview_too() -> None:
    found = resolve(TABLE, "cccccccc--shop.apps.example.com", "/")
    assert found is not None and found.deployment == C


@pytest.mark.parametrize(
    ("raw", "name"), [("A.b:80", "a.b"), ("[::1]:8080", "[::1]"), ("x.", "x"), (" h ", "h"), ("h:", "h")]
)
def test_host_name(raw: str, name: str) -> None:
    assert host_name(raw) == name


@pytest.mark.parametrize(
    ("path", "normal"), [("/a/./b/../c", "/a/c"), ("//x//y/", "/x/y"), ("/%2e%2e/etc", "/etc"), ("a\\b", "/a/b")]
)
def test_normal_path(path: str, normal: str) -> None:
    assert normal_path(path) == normal


def test_an_app_without_traffic_says_whether_it_ever_worked() -> None:
    never = route("fresh", [])
    assert no_deployment(never) == (
        "'fresh' has no working deployment yet (its push failed or is still building): "
        "`roost logs fresh` says why; fix the app and `roost push` again"
    )
    unpromoted = route("held", [], previews=(A,))
    assert no_deployment(unpromoted) == "this app has no deployment taking traffic"


def test_a_branch_alias_names_the_deployment_it_serves() -> None:
    hello = route("hello", [(A, 100)], previews=(B,))
    aliased = table(
        dataclasses.replace(hello, aliases={"feature-x": B, "stale": C, "aaaaaaaa": B}), domain="apps.example.com"
    )
    found = resolve(aliased, "Feature-X--hello.apps.example.com:8080", "/p?q=1")
    assert found is not None
    assert (found.app.name, found.deployment, found.path) == ("hello", B, "/p?q=1")
    assert resolve(aliased, "stale--hello.apps.example.com", "/") is None  # its deployment is not ready
    assert resolve(aliased, "nope--hello.apps.example.com", "/") is None
    by_id = resolve(aliased, "aaaaaaaa--hello.apps.example.com", "/")  # a deployment id wins over an alias
    assert by_id is not None and by_id.deployment == A


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("127.0.0.1:8080", "no app answers to the host 127.0.0.1; apps are at http://APP.localhost:8080/"),
        ("[::1]:8080", "no app answers to the host [::1]; apps are at http://APP.localhost:8080/"),
        ("Shop.Other.COM", "no app answers to the host shop.other.com; apps are at http://APP.localhost/"),
    ],
)
def test_a_host_that_is_not_the_domain_is_told_which_urls_answer(host: str, says: str) -> None:
    message = not_found(table(), host)
    assert message.startswith("no such app: " + says), message
    assert message.endswith("/APP/"), message


@pytest.mark.parametrize("host", ["localhost:8080", "nope.localhost", "ab12cd34--hello.localhost"])
def test_a_miss_under_the_domain_stays_short(host: str) -> None:
    assert not_found(table(), host) == "no such app"


def test_a_route_table_crosses_to_another_machine_whole() -> None:
    """A cluster's head pickles its route table to every machine; compiled with mypyc, a frozen
    dataclass would not unpickle field by field."""
    app = route("hello", [(DeploymentId("d1234567"), 100)])
    routes = table(
        dataclasses.replace(app, aliases={"feature-x": DeploymentId("d2345678")}), hosts={"a.example": "hello"}
    )
    assert pickle.loads(pickle.dumps(routes)) == routes  # noqa: S301 - our own bytes

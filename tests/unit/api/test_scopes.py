"""The route table: every route declares what it needs, and the decision and refusal read right."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from roost.api import create_api
from roost.api.asgi import served_routes
from roost.api.auth import Identity
from roost.api.scopes import NEEDS, SIGNED_IN, check_routes, refusal, refused, route_keys, token_grants
from roost.errors import Forbidden, UsageError
from roost.grants import ADMIN, APP_PATTERN, NOTHING, Grants, Role

API = create_api(None)  # type: ignore[arg-type]  # routes and schema need no Control
OPENAPI = API.openapi()
DEPLOYER_SHOP = Grants.of(Role.DEPLOYER, ["shop-*"])
VIEWER_SHOP = Grants.of(Role.VIEWER, ["shop-*"])


def test_every_route_in_the_openapi_declares_a_need() -> None:
    documented = {(method.upper(), path) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert len(documented) > 30
    assert documented - NEEDS.keys() == set()


def test_every_route_the_app_serves_declares_a_need_and_none_is_stale() -> None:
    served = {key for route in served_routes(API) for key in route_keys(route)}
    assert ("GET", "/metrics") in served  # not in the OpenAPI, still guarded
    assert served - NEEDS.keys() == set()
    assert NEEDS.keys() - served == set()


def test_a_route_without_a_need_stops_the_api_from_starting() -> None:
    api = create_api(None)  # type: ignore[arg-type]

    @api.get("/v1/forgotten")
    async def forgotten() -> None:
        return None

    with pytest.raises(RuntimeError, match="GET /v1/forgotten has no entry"):
        check_routes(served_routes(api))


def test_the_schema_states_the_pattern_rule() -> None:
    apps = OPENAPI["components"]["schemas"]["TokenIn"]["properties"]["apps"]["items"]
    assert apps["pattern"] == APP_PATTERN


def test_starlette_routes_may_need_no_more_than_a_login() -> None:
    assert all(NEEDS[key] == SIGNED_IN for route in FastAPI().routes for key in route_keys(route))


# (method, path, app, grants) -> the role refused, None when allowed
CASES = [
    ("POST", "/v1/apps/{name}/deployments", "shop-a", DEPLOYER_SHOP, None),
    ("POST", "/v1/apps/{name}/deployments", "blog", DEPLOYER_SHOP, Role.DEPLOYER),
    ("POST", "/v1/apps/{name}/deployments", "shop-a", VIEWER_SHOP, Role.DEPLOYER),
    ("PUT", "/v1/apps/{name}/traffic", "shop-a", DEPLOYER_SHOP, None),
    ("POST", "/v1/apps/{name}/env", "shop-a", VIEWER_SHOP, Role.DEPLOYER),
    ("GET", "/v1/apps/{name}/logs", "shop-a", VIEWER_SHOP, None),
    ("GET", "/v1/apps/{name}/logs", "blog", VIEWER_SHOP, Role.VIEWER),
    ("GET", "/v1/apps/{name}", "shop-a", VIEWER_SHOP, None),
    ("GET", "/v1/apps", None, VIEWER_SHOP, None),
    ("GET", "/v1/apps", None, NOTHING, Role.VIEWER),
    ("POST", "/v1/apps", "shop-new", DEPLOYER_SHOP, None),
    ("POST", "/v1/apps", "blog", DEPLOYER_SHOP, Role.DEPLOYER),
    ("PUT", "/v1/blobs/{digest}", None, DEPLOYER_SHOP, None),
    ("PUT", "/v1/blobs/{digest}", None, VIEWER_SHOP, Role.DEPLOYER),
    ("DELETE", "/v1/apps/{name}", "shop-a", DEPLOYER_SHOP, Role.ADMIN),
    ("POST", "/v1/apps/{name}/domains", "shop-a", DEPLOYER_SHOP, Role.ADMIN),
    ("POST", "/v1/gc", None, DEPLOYER_SHOP, Role.ADMIN),
    ("GET", "/v1/tokens", None, DEPLOYER_SHOP, Role.ADMIN),
    ("DELETE", "/v1/tokens/{name}", None, DEPLOYER_SHOP, Role.ADMIN),
    ("GET", "/metrics", None, VIEWER_SHOP, Role.ADMIN),
    ("POST", "/v1/gc", None, ADMIN, None),
    ("DELETE", "/v1/apps/{name}", "blog", ADMIN, None),
    ("GET", "/v1/version", None, NOTHING, None),
]


@pytest.mark.parametrize(("method", "path", "app", "grants", "expected"), CASES)
def test_the_table_decides(method: str, path: str, app: str | None, grants: Grants, expected: Role | None) -> None:
    assert refused(NEEDS[(method, path)], grants, app, revealing=False) is expected


def test_revealing_secrets_needs_deployer_on_that_app() -> None:
    need = NEEDS[("GET", "/v1/apps/{name}/env")]
    assert refused(need, VIEWER_SHOP, "shop-a", revealing=False) is None
    assert refused(need, VIEWER_SHOP, "shop-a", revealing=True) is Role.DEPLOYER
    assert refused(need, DEPLOYER_SHOP, "shop-a", revealing=True) is None
    assert refused(need, DEPLOYER_SHOP, "blog", revealing=True) is Role.DEPLOYER
    assert refused(need, ADMIN, "blog", revealing=True) is None


def test_a_refusal_names_the_role_the_app_and_what_the_caller_has() -> None:
    error = refusal(Identity("ci", "token", "10.0.0.1", VIEWER_SHOP), Role.DEPLOYER, "blog")
    assert isinstance(error, Forbidden)
    assert error.status == 403
    assert error.message == 'needs role deployer on app "blog"; token "ci" has viewer on shop-*'
    assert "roost token create NAME --role deployer --app blog" in error.hint
    user = refusal(Identity("alice", "password", "10.0.0.1", NOTHING), Role.VIEWER, "blog")
    assert user.message == 'needs role viewer on app "blog"; user "alice" has no role'
    assert user.hint.endswith("roost user grant alice viewer blog")
    admin = refusal(Identity("ci", "token", "10.0.0.1", DEPLOYER_SHOP), Role.ADMIN, None)
    assert admin.message == 'needs role admin; token "ci" has deployer on shop-*'


def test_only_admins_choose_a_tokens_grants_and_users_get_their_own() -> None:
    admin = Identity("local", "socket", "unix-socket")
    assert token_grants(admin, None, own=False) == (ADMIN, None)
    assert token_grants(admin, DEPLOYER_SHOP, own=False) == (DEPLOYER_SHOP, None)
    alice = Identity("alice", "password", "10.0.0.1", VIEWER_SHOP)
    assert token_grants(alice, None, own=True) == (VIEWER_SHOP, "alice")
    with pytest.raises(Forbidden, match="needs role admin"):
        token_grants(alice, None, own=False)
    with pytest.raises(UsageError):
        token_grants(alice, ADMIN, own=True)
    ci = Identity("ci", "token", "10.0.0.1", DEPLOYER_SHOP)
    with pytest.raises(Forbidden, match="needs role admin"):
        token_grants(ci, DEPLOYER_SHOP, own=False)
    with pytest.raises(UsageError):
        token_grants(ci, None, own=True)

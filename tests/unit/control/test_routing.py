"""What control hands the edge and the autoscaler: the route table and the production scale specs."""

from __future__ import annotations

from pathlib import Path

from roost.control.routing import build_route_table, production_scale_specs
from roost.model import AppConfig, AppName, DeploymentId, DeploymentStatus, DesiredState, Mode, TrafficEntry
from roost.serve_settings import ServeSettings
from roost.store import Store

OLD, NEW, BUILDING = DeploymentId("aaaaaaaa"), DeploymentId("bbbbbbbb"), DeploymentId("cccccccc")
WEB, OFF = AppName("web"), AppName("off")


async def canary_store(home: Path) -> Store:
    """App `web`: 90% on OLD, 10% on NEW, a third deployment still building; `roost scale` max=7.
    App `off`: stopped, one ready deployment with all traffic."""
    store = await Store.open(home / "roost.db")
    web, off = WEB, OFF
    await store.create_app(web, Mode.SERVICE, AppConfig())
    for deployment in (OLD, NEW, BUILDING):
        await store.create_deployment(web, deployment, "sha256:0", deployment, AppConfig())
        if deployment != BUILDING:
            await store.finish_deployment(deployment, DeploymentStatus.READY, 1.0)
    await store.set_traffic(web, [TrafficEntry(OLD, 90), TrafficEntry(NEW, 10)], "traffic", "canary")
    await store.set_overrides(web, {"scale": {"max": 7}})
    await store.domains.add_domain("shop.example.com", web)
    await store.create_app(off, Mode.SERVICE, AppConfig())
    await store.create_deployment(off, DeploymentId("dddddddd"), "sha256:0", "off", AppConfig())
    await store.finish_deployment(DeploymentId("dddddddd"), DeploymentStatus.READY, 1.0)
    await store.set_traffic(off, [TrafficEntry(DeploymentId("dddddddd"), 100)], "traffic", "all")
    await store.update_app(off, desired=DesiredState.STOPPED)
    return store


async def test_the_route_table_carries_the_split_the_ready_deployments_and_the_domains(tmp_path: Path) -> None:
    store = await canary_store(tmp_path)
    try:
        table = await build_route_table(store, "roost.test")
    finally:
        await store.close()
    web = table.apps[WEB]
    assert web.traffic == ((OLD, 90), (NEW, 10))
    assert web.deployments == frozenset({OLD, NEW})  # not the one still building
    assert not web.stopped and table.apps[OFF].stopped
    assert table.domain == "roost.test"
    assert table.hosts == {"shop.example.com": "web"}


async def test_scale_specs_cover_every_serving_deployment_of_running_apps_with_overrides(tmp_path: Path) -> None:
    store = await canary_store(tmp_path)
    settings = ServeSettings(home=tmp_path, scale_window=42.0)
    try:
        specs = await production_scale_specs(store, settings)
    finally:
        await store.close()
    assert set(specs) == {OLD, NEW}  # the stopped app's deployment is not watched
    assert {spec.max for spec in specs.values()} == {7}
    assert {spec.window_stable for spec in specs.values()} == {42.0}

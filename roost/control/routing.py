"""What the edge and the autoscaler are handed, computed from the store: the route table
(which deployments serve which hosts, with each app's limits) and the scale specs of the
deployments that serve production. The daemon passes them on after every change."""

from __future__ import annotations

from roost.autoscale import ScaleSpec
from roost.config import body_too_large, with_overrides
from roost.edge.routes import AppRoute, RouteTable
from roost.model import Deployment, DeploymentId, DeploymentStatus, DesiredState, Traffic
from roost.serve_settings import ServeSettings
from roost.store import Store


async def deployment_apps(store: Store) -> dict[DeploymentId, str]:
    """Each deployment's app, for those who know only the deployment (request log, metrics, events)."""
    return {d.id: d.app for d in await store.list_deployments()}


async def build_route_table(store: Store, domain: str) -> RouteTable:
    """A routing snapshot of the store: the edge never reads SQLite itself."""
    traffic = await store.all_traffic()
    aliases = await store.aliases.every()
    ready: dict[str, dict[DeploymentId, Deployment]] = {}
    for deployment in await store.list_deployments():
        if deployment.status is DeploymentStatus.READY:
            ready.setdefault(deployment.app, {})[deployment.id] = deployment
    routes = {}
    for app in await store.list_apps():
        entries = traffic.get(app.name, [])
        deployments = ready.get(app.name, {})
        top = Traffic.of(entries).production
        config = with_overrides(deployments[top].config, app.overrides) if top in deployments else app.config
        routes[app.name] = AppRoute(
            name=app.name,
            traffic=tuple((entry.deployment, entry.weight) for entry in entries),
            deployments=frozenset(deployments),
            stopped=app.desired is DesiredState.STOPPED,
            timeout_request=config.limits.timeout,
            timeout_stream_idle=config.limits.stream_idle,
            timeout_stream=config.limits.stream_max,
            limit_body=config.limits.body,
            body_too_large=body_too_large(config.limits.body),
            entrypoint=config.command is None,
            private_paths=frozenset(job.path for job in config.crons if not job.public),
            aliases=aliases.get(app.name, {}),
        )
    return RouteTable(domain=domain, apps=routes, hosts=await store.domains.list_domains())


async def production_scale_specs(store: Store, settings: ServeSettings) -> dict[DeploymentId, ScaleSpec]:
    """What the autoscaler watches: every deployment with production traffic of a running app."""
    specs: dict[DeploymentId, ScaleSpec] = {}
    traffic = await store.all_traffic()
    for app in await store.list_apps():
        if app.desired is DesiredState.STOPPED:
            continue
        for deployment in Traffic.of(traffic.get(app.name, [])).serving:
            config = with_overrides((await store.get_deployment(app.name, deployment)).config, app.overrides)
            specs[deployment] = ScaleSpec.of(
                config.scale,
                config.mode,
                app=app.name,
                memory=config.limits.memory,
                window_stable=settings.scale_window,
                window_panic=settings.scale_panic_window,
                scale_down_delay=settings.scale_down_delay,
            )
    return specs

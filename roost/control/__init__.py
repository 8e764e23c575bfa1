"""Use cases: the one place where a change spans the store, registry, builder and runtime.

Each use case writes the store first, then announces the change (the daemon
wires announcements to the router). Never parses HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from roost.applog import LogBook
from roost.builder import Builder
from roost.control.access import TOKEN_NAME_PATTERN, AccessUseCases, TokenInfo
from roost.control.aliases import AliasUseCases, check_alias
from roost.control.audit import AuditTrail
from roost.control.buildlog import BuildLogs
from roost.control.core import (
    HOST_MAX_LENGTH,
    HOST_PATTERN,
    Announcer,
    AppDetails,
    AppUseCases,
    Listener,
    Urls,
    check_app_name,
)
from roost.control.deploys import BuildPlace, DeployUseCases
from roost.control.env import RESERVED as RESERVED_ENV_NAMES
from roost.control.env import EnvUseCases
from roost.control.isolation import BUILD_ISOLATION
from roost.control.lifecycle import LifecycleUseCases
from roost.control.overview import AppSummary, OverviewUseCases
from roost.control.processes import ProcessUseCases
from roost.control.quotas import QuotaState, QuotaUseCases
from roost.control.retention import DEFAULT_KEEP, GcReport, RetentionUseCases
from roost.control.secrets import Secrets
from roost.cron import CronRunner
from roost.quotas import PATTERN_RULE as QUOTA_PATTERN_RULE
from roost.quotas import QUOTA_PATTERN
from roost.registry import DIGEST_PATTERN, Registry
from roost.runtime.protocol import Isolation, Runtime, describe_isolation
from roost.store import AuditEntry, AuditQuery, Store
from roost.tasks import TaskSet
from roost.vault import Vault

log = logging.getLogger("roost.control")


class Control:
    """Every use case of Roost, over one store, registry, builder and runtime.

    A facade: it owns one object per use-case group, wired here with exactly what each
    needs, and hands the API, CLI and daemon their methods; the logic lives in the groups."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        builder: Builder,
        runtime: Runtime,
        logs: LogBook,
        home: Path,
        urls: Urls,
        timeout_build_check: float = 30.0,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.store = store
        self.registry = registry
        self.logs = logs
        self.home = home
        self.urls = urls
        self.announcer = Announcer()
        self.tasks = TaskSet(log, "background task")
        place = BuildPlace(home / "deployments", timeout_build_check)
        self.buildlogs = BuildLogs(logs, place.deployments_root)
        secrets = Secrets(store, Vault(home / "secret.key"))
        self.lifecycle = LifecycleUseCases(store, builder, runtime, secrets, self.announcer, self.tasks)
        self.quotas = QuotaUseCases(store, runtime, self.lifecycle.reconcile)
        self.audit = AuditTrail(store)
        self.apps = AppUseCases(store, runtime, logs, self.announcer, self.quotas, place.deployments_root)
        self.aliases = AliasUseCases(store, self.announcer)
        self.retention = RetentionUseCases(store, registry, builder, self.lifecycle, self.announcer, self.aliases, keep)
        self.deploys = DeployUseCases(
            store,
            registry,
            builder,
            runtime,
            self.buildlogs,
            secrets,
            self.lifecycle,
            self.retention,
            self.announcer,
            self.tasks,
            place,
            self.aliases,
        )
        self.env = EnvUseCases(store, secrets, self.lifecycle)
        self.access = AccessUseCases(store)
        self.overview = OverviewUseCases(store, runtime, self.apps, urls)
        self.processes = ProcessUseCases(store, self.lifecycle.reconcile)  # the API calls it as is

        # The methods the API, CLI and daemon call, each defined once in its group.
        self.create_app = self.apps.create_app
        self.app_details = self.apps.app_details
        self.remove_app = self.apps.remove_app
        self.events = self.apps.events
        self.read_logs = self.apps.read_logs
        self.add_domain = self.apps.add_domain
        self.remove_domain = self.apps.remove_domain
        self.push = self.deploys.push
        self.deployment = self.deploys.deployment
        self.deployments = self.deploys.deployments
        self.promote = self.deploys.promote
        self.promote_alias = self.deploys.promote_alias
        self.rollback = self.deploys.rollback
        self.set_traffic = self.deploys.set_traffic
        self.set_scale = self.lifecycle.set_scale
        self.stop_app = self.lifecycle.stop_app
        self.start_app = self.lifecycle.start_app
        self.restart_app = self.lifecycle.restart_app
        self.cron_status = self.lifecycle.cron_status
        self.recover = self.lifecycle.recover
        self.set_env = self.env.set_env
        self.unset_env = self.env.unset_env
        self.list_env = self.env.list_env
        self.gc = self.retention.gc
        self.create_token = self.access.create_token
        self.revoke_token = self.access.revoke_token
        self.list_tokens = self.access.list_tokens
        self.token_info = self.access.token_info
        self.summaries = self.overview.summaries

    @property
    def cron(self) -> CronRunner | None:
        return self.lifecycle.cron

    @cron.setter
    def cron(self, runner: CronRunner | None) -> None:
        self.lifecycle.cron = runner

    def on_change(self, listener: Listener) -> None:
        """Call `listener(app)` after every change to an app's desired state."""
        self.announcer.on_change(listener)

    def run_in_background(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """Run background work, keeping its handle so shutdown can cancel it; a crash is logged."""
        self.tasks.start(work, name=name)

    async def cancel_background(self) -> None:
        await self.tasks.cancel_all()


__all__ = [
    "BUILD_ISOLATION",
    "DIGEST_PATTERN",
    "HOST_MAX_LENGTH",
    "HOST_PATTERN",
    "QUOTA_PATTERN",
    "QUOTA_PATTERN_RULE",
    "RESERVED_ENV_NAMES",
    "TOKEN_NAME_PATTERN",
    "AppDetails",
    "AppSummary",
    "AuditEntry",
    "AuditQuery",
    "AuditTrail",
    "Control",
    "GcReport",
    "Isolation",
    "QuotaState",
    "QuotaUseCases",
    "TokenInfo",
    "Urls",
    "check_alias",
    "check_app_name",
    "describe_isolation",
]

"""Use cases: the one place where a change spans the store, registry, builder and runtime.

Each use case writes the store first, then announces the change (the daemon
wires announcements to the router). Never parses HTTP.
"""

from __future__ import annotations

from pathlib import Path

from roost.applog import LogBook
from roost.build import Builder
from roost.control.access import TOKEN_NAME_PATTERN, AccessUseCases, TokenInfo
from roost.control.audit import AuditTrail
from roost.control.buildlog import BuildLogs
from roost.control.core import HOST_MAX_LENGTH, HOST_PATTERN, AppDetails, Urls, check_app_name
from roost.control.env import RESERVED as RESERVED_ENV_NAMES
from roost.control.isolation import BUILD_ISOLATION
from roost.control.overview import AppSummary, OverviewUseCases
from roost.control.quotas import QuotaState, QuotaUseCases
from roost.control.retention import GcReport, RetentionUseCases
from roost.model import DeploymentId
from roost.quotas import PATTERN_RULE as QUOTA_PATTERN_RULE
from roost.quotas import QUOTA_PATTERN
from roost.registry import DIGEST_PATTERN, Registry
from roost.runtime.protocol import DeploymentSpec, Isolation, Runtime, describe_isolation
from roost.store import AuditEntry, AuditQuery, Store
from roost.vault import Vault


class Control(RetentionUseCases, AccessUseCases, OverviewUseCases):
    """Every use case of Roost, over one store, registry, builder and runtime."""

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
        keep: int = 10,
    ) -> None:
        super().__init__(store, registry, builder, runtime, logs, home, urls, timeout_build_check)
        self.keep_default = keep
        self.buildlogs = BuildLogs(logs, self.deployments_root)
        self._registered: dict[DeploymentId, DeploymentSpec] = {}
        self._production: dict[DeploymentId, bool] = {}
        self.vault = Vault(home / "secret.key")
        self.quotas = QuotaUseCases(store, runtime, self.reconcile)
        self.audit = AuditTrail(store)


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
    "check_app_name",
    "describe_isolation",
]

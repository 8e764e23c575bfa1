"""Rows to model records. Pure functions; the only place that knows column names."""

from __future__ import annotations

import json
import sqlite3

from roost.model import (
    App,
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    DeploymentStatus,
    DesiredState,
    Event,
    InstanceId,
    InstanceRecord,
    InstanceState,
    Mode,
)


def app_from_row(row: sqlite3.Row) -> App:
    return App(
        name=AppName(row["name"]),
        mode=Mode(row["mode"]),
        desired=DesiredState(row["desired"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        config=AppConfig.from_dict(json.loads(row["config"])),
        overrides=json.loads(row["overrides"]),
    )


def deployment_from_row(row: sqlite3.Row) -> Deployment:
    return Deployment(
        id=DeploymentId(row["id"]),
        app=AppName(row["app"]),
        status=DeploymentStatus(row["status"]),
        digest=row["digest"],
        message=row["message"],
        created_at=row["created_at"],
        build_seconds=row["build_seconds"],
        config=AppConfig.from_dict(json.loads(row["config"])),
        error=row["error"],
        code_dir=row["code_dir"],
        venv_dir=row["venv_dir"],
        sources=json.loads(row["sources"]),
    )


def event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        at=row["at"],
        app=AppName(row["app"]) if row["app"] is not None else None,
        kind=row["kind"],
        message=row["message"],
        data=json.loads(row["data"]),
    )


def instance_from_row(row: sqlite3.Row) -> InstanceRecord:
    return InstanceRecord(
        id=InstanceId(row["id"]),
        app=AppName(row["app"]),
        deployment=DeploymentId(row["deployment"]),
        pid=row["pid"],
        pgid=row["pgid"],
        state=InstanceState(row["state"]),
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
        reason=row["reason"],
    )

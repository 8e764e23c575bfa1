"""The request log: one line in the app's log per answer the edge finished (`roost logs`).

Fed by `Edge.on_answer` on the edge's path, so it only formats and appends; it never blocks on
anything but the log file's own append, and a failed write costs the line, never the answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from roost.applog import REQUEST_SOURCE, LogBook, RequestLine
from roost.edge.answers import Answer
from roost.model import DeploymentId

log = logging.getLogger("roost.requestlog")


class AnswerLog:
    """The edge's answer hook: one line in the app's log per request.

    The deployment-to-app map is read through `apps_of`, which the daemon refreshes with the routes."""

    def __init__(self, logs: LogBook, apps_of: Callable[[], Mapping[DeploymentId, str]]) -> None:
        self.logs = logs
        self.apps_of = apps_of

    def __call__(self, answer: Answer) -> None:
        app = self.apps_of().get(answer.deployment)
        if app is None:
            return
        line = RequestLine(
            answer.method.decode("latin-1"),
            answer.target.decode("latin-1").partition("?")[0],  # a query string may carry secrets
            answer.status,
            answer.seconds,
            answer.start_kind.decode() if answer.instance else "-",
            answer.instance or "-",
        )
        try:
            self.logs.write(app, answer.deployment, REQUEST_SOURCE, line.text())
        except OSError as exc:  # a full disk costs the log line, never the answer (the edge called us)
            log.debug("request log line for %s not written: %s", app, exc)

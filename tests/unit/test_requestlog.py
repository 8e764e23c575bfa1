"""The request log: one line per answer in the app's own log, never a query string, nothing for
a deployment no app owns."""

from __future__ import annotations

from pathlib import Path

from roost.applog import LogBook, RequestLine
from roost.edge.answers import Answer
from roost.model import DeploymentId, InstanceId
from roost.requestlog import AnswerLog

SHOP = DeploymentId("d-shop")


def answer(deployment: DeploymentId, target: bytes, instance: InstanceId | None) -> Answer:
    return Answer(deployment, b"GET", target, 200, 0.0031, b"warm", instance)


def test_an_answer_becomes_one_request_line_without_its_query(tmp_path: Path) -> None:
    logs = LogBook(tmp_path)
    hook = AnswerLog(logs, lambda: {SHOP: "shop"})
    hook(answer(SHOP, b"/cart?token=secret", InstanceId("i-1")))
    hook(answer(SHOP, b"/", None))
    lines = [RequestLine.parse(line.text) for line in logs.read("shop")]
    logs.close()
    assert lines == [
        RequestLine("GET", "/cart", 200, 0.0031, "warm", "i-1"),
        RequestLine("GET", "/", 200, 0.0031, "-", "-"),
    ]


def test_an_answer_for_no_known_app_writes_nothing(tmp_path: Path) -> None:
    logs = LogBook(tmp_path)
    AnswerLog(logs, lambda: {SHOP: "shop"})(answer(DeploymentId("d-gone"), b"/", None))
    assert logs.read("shop") == []
    logs.close()

"""Issue 22's whole story through a real `roost serve`: a Django + Celery app with a release step
deploys with one `roost push` (the release migrates a real PostgreSQL, a Celery worker consumes
from a real Redis), its jobs run, a bad migration never reaches production, and a branch preview
gets a stable URL while production keeps its code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps import get, push, pushed, wait_until
from tests.e2e.djangoapp import BROKEN_MIGRATION, django_app
from tests.e2e.harness import Daemon, module_daemon
from tests.e2e.services import running_postgres, running_redis

daemon = module_daemon("django-celery")

CELERY = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migsite.settings")
app = Celery("migsite", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True
app.autodiscover_tasks(["greetings"])
"""
PACKAGE = """
from migsite.celery import app as celery_app

__all__ = ["celery_app"]
"""
TASKS = """
from celery import shared_task

from greetings.models import Greeting


@shared_task
def greet(text):
    Greeting.objects.create(text=text)
    return Greeting.objects.count()
"""
URLS = """
from django.http import HttpResponse, JsonResponse
from django.urls import path

from greetings.models import Greeting
from greetings.tasks import greet
from migsite.celery import app

GREETING = "{greeting}"


def index(request):
    return HttpResponse(GREETING + ": " + ", ".join(g.text for g in Greeting.objects.order_by("id")))


def enqueue(request):
    return JsonResponse({{"id": greet.delay(request.GET["text"]).id}})


def result(request):
    outcome = app.AsyncResult(request.GET["id"])
    return JsonResponse({{"ready": outcome.ready(), "value": outcome.result if outcome.ready() else None}})


urlpatterns = [path("", index), path("enqueue", enqueue), path("result", result)]
"""
WORKER = "celery -A migsite worker --pool solo --without-heartbeat --without-gossip --without-mingle -l info"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real Redis (the broker) and a real PostgreSQL (the database): their URLs."""
    with running_redis(tmp_path_factory.mktemp("redis")) as port, running_postgres("shop") as database:
        yield f"redis://127.0.0.1:{port}/0", database


def shop(root: Path, greeting: str) -> Path:
    return django_app(
        root,
        "shop",
        toml=f'[processes.worker]\ncommand = "{WORKER}"\nready_after = "2s"\n',
        requirements="celery[redis]>=5.3\n",
        files={
            "migsite": {"__init__.py": PACKAGE, "celery.py": CELERY, "urls.py": URLS.format(greeting=greeting)},
            "greetings": {"tasks.py": TASKS},
        },
    )


def job_done(daemon: Daemon, text: str) -> int:
    """Enqueue a job through the web process; the number of greetings once the worker did it."""
    task = get(daemon, "shop.localhost", f"/enqueue?text={text}").json()["id"]

    def result() -> int | None:
        answer = get(daemon, "shop.localhost", f"/result?id={task}").json()
        return int(answer["value"]) if answer["ready"] else None

    return wait_until(f"the worker to store {text!r}", result, timeout=60)


def test_a_django_celery_app_with_a_release_step(daemon: Daemon, services: tuple[str, str], tmp_path: Path) -> None:
    redis, database = services
    assert daemon.cli("create", "shop").returncode == 0
    for setting in (f"DATABASE_URL={database}", f"REDIS_URL={redis}"):  # secrets, there for the release too
        assert daemon.cli("env", "shop", "set", setting).returncode == 0
    app = shop(tmp_path, "v1")

    # One push: build, release (migrate), the web's build check, the worker's, then production.
    out = pushed(daemon, app)
    assert out.index("Applying greetings.0001_initial... OK") < out.index("production traffic goes to"), out
    assert get(daemon, "shop.localhost").text == "v1: hello from a migration"
    assert job_done(daemon, "from-celery") == 2  # done by the worker, not the web process
    assert get(daemon, "shop.localhost").text == "v1: hello from a migration, from-celery"
    worker_log = daemon.cli("logs", "shop", "--process", "worker").stdout
    assert "greetings.tasks.greet" in worker_log and "succeeded" in worker_log, worker_log

    # A bad migration fails its push; production, its worker and its data stay as they were.
    broken = app / "greetings" / "migrations" / "0002_broken.py"
    broken.write_text(BROKEN_MIGRATION)
    code, out, err = push(daemon, app)
    assert code != 0 and 'relation "no_such_table" does not exist' in out + err, out + err
    assert get(daemon, "shop.localhost").text == "v1: hello from a migration, from-celery"
    assert job_done(daemon, "after-the-bad-one") == 3

    # A branch preview: a stable URL with the branch's code; production keeps v1 until a promote.
    broken.unlink()
    (tmp_path / "branch").mkdir()
    preview = shop(tmp_path / "branch", "v2")
    result = daemon.cli("push", str(preview), "--no-promote", "--alias", "feature/Warmer-Greeting", "--json")
    assert result.returncode == 0, result.stderr
    pushed_json = json.loads(result.stdout)
    assert pushed_json["alias"] == "feature-warmer-greeting" and pushed_json["promoted"] is False, pushed_json
    host = "feature-warmer-greeting--shop.localhost"
    assert pushed_json["alias_url"].split("//")[1].startswith(host), pushed_json
    assert get(daemon, host).text.startswith("v2: hello from a migration")
    assert get(daemon, "shop.localhost").text.startswith("v1: ")
    again = daemon.cli("push", str(preview), "--no-promote", "--alias", "feature/Warmer-Greeting", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["id"] != pushed_json["id"]
    assert get(daemon, host).text.startswith("v2: ")  # the same URL, now the newer push

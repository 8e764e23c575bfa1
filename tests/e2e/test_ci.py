"""Deploys from CI end to end: the roost commands of contrib/github-actions.yml, run as a CI job
runs them (the installed CLI as a subprocess, in the app's folder, with only ROOST_URL and a
deployer's ROOST_TOKEN), against one real `roost serve` over TCP. A branch preview gets a stable
URL that follows the branch and survives a restart, production stays put until the branch is
promoted, a failed build exits 1 with JSON that says why; and the workflow file runs exactly the
commands tested here."""

from __future__ import annotations

import json
import shlex
import string
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.e2e.apps import write_app
from tests.e2e.harness import REPO, Daemon, base_env, spawn

WORKFLOW = REPO / "contrib" / "github-actions.yml"
# The commands of each job of the workflow, as the shell sees them (quotes gone, variables not
# yet expanded). The tests below run these strings; test_the_workflow_runs_the_tested_commands
# holds the workflow file to them.
PREVIEW = "roost push --wait --json --no-promote --alias $BRANCH -m $GITHUB_SHA"
PRODUCTION = "roost push --wait --json -m $GITHUB_SHA"
PROMOTE = "roost promote --alias $BRANCH"
CLEANUP = "roost alias remove $BRANCH"
TESTED = {"preview": [PREVIEW], "production": [PRODUCTION], "promote": [PROMOTE], "cleanup": [CLEANUP]}
SHELL_STOPS = {"|", ">", ">>", "&&", "||", ";"}  # what ends a roost command on a `run:` line
APP = "ci-shop"
CI_TIMEOUT = 600  # a push: build and build check on a busy two-core machine


def handler(says: str, at_import: str = "", keep: int = 10) -> dict[str, str]:
    """A handler app named APP whose page says `says`; `at_import` runs when it is imported."""
    code = f"{at_import}\n\ndef handler(request):\n    return {says!r}\n"
    toml = f'name = "{APP}"\nentrypoint = "handler:handler"\nkeep = {keep}\n'
    return {"roost.toml": toml, "handler.py": code}


@dataclass
class Site:
    """The daemon, the app's checkout, and the environment a CI job has (no socket, no home)."""

    daemon: Daemon
    checkout: Path
    env: dict[str, str]

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.checkout / name).write_text(text)

    def run(self, command: str, **variables: str) -> subprocess.CompletedProcess[str]:
        """Run one of the workflow's roost commands as its job would, with its variables set."""
        values = {"GITHUB_SHA": "0123abcd" * 5, **variables}
        argv = [string.Template(word).substitute(values) for word in shlex.split(command)]
        assert argv[0] == "roost"
        roost = Path(sys.executable).with_name("roost")  # the console script pip installed
        return subprocess.run(
            [str(roost), *argv[1:]],
            env={**self.env, **values},
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=CI_TIMEOUT,
        )

    def ran(self, command: str, **variables: str) -> dict[str, Any]:
        """`run`, insisting on exit 0; the one JSON document it printed, if any."""
        done = self.run(command, **variables)
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}\n{self.daemon.output()[-4000:]}"
        return json.loads(done.stdout) if "--json" in command else {}

    def page(self, url: str) -> httpx.Response:
        """GET a URL Roost printed, through the edge, with its host in the Host header."""
        host = urlsplit(url).netloc
        return httpx.get(f"{self.daemon.edge_url}/", headers={"Host": host}, timeout=30)

    def production(self) -> str:
        return self.page(f"http://{APP}.localhost/").text

    def restart(self) -> None:
        """Stop the daemon (SIGTERM) and start another on the same home, as a server reboot would."""
        self.daemon.stop()
        self.daemon = spawn(self.daemon.home)
        self.daemon.wait_ready()
        self.env["ROOST_URL"] = self.daemon.api_url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ci")
    home = root / "home"
    home.mkdir()
    site = Site(spawn(home), write_app(root, "checkout", handler("v1 from main")), base_env(root / "runner"))
    try:
        site.daemon.wait_ready()
        made = site.daemon.cli("token", "create", "github-ci", "--role", "deployer", "--app", "ci-*")
        assert made.returncode == 0, made.stderr
        # a CI runner's environment: no daemon home, no socket to fall back on
        site.env.update(ROOST_URL=site.daemon.api_url, ROOST_TOKEN=made.stdout.strip())
        yield site
    finally:
        site.daemon.stop()


def test_a_branch_preview_follows_the_branch_survives_a_restart_and_is_promoted(site: Site) -> None:
    first = site.ran(PRODUCTION)
    assert (first["status"], first["promoted"], first["alias"]) == ("ready", True, None)
    assert site.page(first["url"]).text == "v1 from main"

    site.write(handler("v2 from the branch"))
    preview = site.ran(PREVIEW, BRANCH="feature/Login_Page")
    assert (preview["status"], preview["promoted"], preview["alias"]) == ("ready", False, "feature-login-page")
    assert urlsplit(preview["alias_url"]).netloc.startswith(f"feature-login-page--{APP}.localhost:")
    assert site.page(preview["alias_url"]).text == "v2 from the branch"
    assert site.production() == "v1 from main"

    site.write(handler("v3 from the branch"))
    moved = site.ran(PREVIEW, BRANCH="feature/Login_Page")
    assert moved["alias_url"] == preview["alias_url"] and moved["id"] != preview["id"]
    assert site.page(preview["alias_url"]).text == "v3 from the branch"
    assert site.page(preview["preview_url"]).text == "v2 from the branch"  # each deployment keeps its own
    assert site.production() == "v1 from main"

    site.restart()
    listed = site.ran(f"roost alias list {APP} --json")
    assert [(a["name"], a["deployment"]) for a in listed] == [("feature-login-page", moved["id"])]
    assert site.page(listed[0]["url"]).text == "v3 from the branch"

    site.ran(PROMOTE, BRANCH="feature/Login_Page")
    assert site.production() == "v3 from the branch"

    site.ran(CLEANUP, BRANCH="feature/Login_Page")
    assert site.page(listed[0]["url"]).status_code == 404
    assert site.production() == "v3 from the branch"  # removing the alias keeps its deployment
    assert site.ran(f"roost alias list {APP} --json") == []


def test_a_failed_branch_build_exits_1_with_json_and_moves_nothing(site: Site) -> None:
    site.write(handler("fix, first try"))
    good = site.ran(PREVIEW, BRANCH="fix-1")
    production = site.production()

    site.write(handler("never served", at_import="raise RuntimeError('the branch broke the import')"))
    failed = site.run(PREVIEW, BRANCH="fix-1")
    assert failed.returncode == 1, failed.stderr
    outcome = json.loads(failed.stdout)  # stdout is the JSON document alone; the build log went to stderr
    assert (outcome["status"], outcome["promoted"], outcome["alias_url"]) == ("failed", False, None)
    assert outcome["error"].startswith("build check failed")
    assert any("the branch broke the import" in line for line in outcome["log_tail"]), outcome["log_tail"]
    assert "production still serves" in outcome["hint"]
    assert "error: deployment" in failed.stderr and "==> build check" in failed.stderr
    assert site.page(good["alias_url"]).text == "fix, first try"
    assert site.production() == production
    summary = report(outcome)
    assert "failed: build check failed" in summary and "the branch broke the import" in summary


def test_the_json_summary_step_of_the_workflow_reads_a_real_push(site: Site) -> None:
    site.write(handler("summary"))
    assert "is live at http://summary--ci-shop.localhost:" in report(site.ran(PREVIEW, BRANCH="summary"))


def test_retention_keeps_the_deployment_an_alias_serves(site: Site) -> None:
    site.write(handler("kept by its alias", keep=1))
    kept = site.ran(PREVIEW, BRANCH="kept")
    for attempt in ("main, again", "main, once more"):
        site.write(handler(attempt, keep=1))
        site.ran(PRODUCTION)
    assert site.production() == "main, once more"
    assert site.page(kept["alias_url"]).text == "kept by its alias"
    statuses = {d["id"]: d["status"] for d in site.ran(f"roost deployments {APP} --json")}
    assert statuses[kept["id"]] == "ready"
    assert "pruned" in statuses.values()  # keep = 1 did prune the others


def report(outcome: dict[str, Any]) -> str:
    """What the workflow's "Say where it is" step writes for this `roost push --json` output."""
    script = next(
        step["run"] for step in workflow()["jobs"]["preview"]["steps"] if step.get("name") == "Say where it is"
    )
    body = script.split("<<'EOF'\n", 1)[1].rsplit("EOF", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", body.replace('open("deploy.json")', "open(0)")],
        input=json.dumps(outcome),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def roost_commands(run: str) -> list[str]:
    """The roost commands of a `run:` script, each cut at the first shell operator, quotes removed."""
    found = []
    for line in run.splitlines():
        words = shlex.split(line, comments=True) if line.lstrip().startswith("roost ") else []
        if words:
            end = next((i for i, word in enumerate(words) if word in SHELL_STOPS), len(words))
            found.append(" ".join(words[:end]))
    return found


def test_the_workflow_runs_the_tested_commands() -> None:
    jobs = workflow()["jobs"]
    ran = {
        name: [c for step in job["steps"] for c in roost_commands(step.get("run", ""))] for name, job in jobs.items()
    }
    assert ran == TESTED
    triggers = workflow()[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push", "delete", "workflow_dispatch"}
    text = WORKFLOW.read_text()
    for secret in ("secrets.ROOST_URL", "secrets.ROOST_TOKEN"):
        assert secret in text
    for job in jobs.values():
        installs = [step["run"] for step in job["steps"] if "pip install" in step.get("run", "")]
        assert installs == ['pip install "$ROOST_PACKAGE"']

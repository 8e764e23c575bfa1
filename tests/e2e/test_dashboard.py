"""The dashboard in a real browser: Debian's chromium, driven by Selenium through /usr/bin/chromedriver,
against one real `roost serve` with a real app (two deployments). Log in, see the app, watch an
instance appear on a request, read its log line, see a chart move, split traffic 50/50 and roll
back from the page; and, with plain HTTP, refuse a change without the CSRF token and a session
after logout. Screenshots of every page (desktop and 375 px) go to $ROOST_ARTIFACTS (default
/tmp/roost-ui-shots); the path is printed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.apps import get, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, module_daemon

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("ROOST_ARTIFACTS", "/tmp/roost-ui-shots"))
USER, PASSWORD = "dash-admin", "correct horse battery"
APP = "dash-hello"
WAIT = 30.0
REQUESTS_CHART = 'svg[data-chart="requests"]'
HANDLER = """
def handler(request):
    print(f"dashboard saw {request.path}", flush=True)
    return "hello from the dashboard test"
"""

daemon = module_daemon("dashboard")


@pytest.fixture(scope="module")
def deployments(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two ready deployments of APP (the second in production), a user who may log in, an env value."""
    root = tmp_path_factory.mktemp("dashboard-apps")
    app = write_app(
        root, APP, {"roost.toml": f'name = "{APP}"\nentrypoint = "handler:handler"\n', "handler.py": HANDLER}
    )
    pushed(daemon, app, "-m", "first")
    (app / "handler.py").write_text(HANDLER.replace("hello from", "hello again from"))
    pushed(daemon, app, "-m", "second")
    listed = json.loads(daemon.cli("deployments", APP, "--json").stdout)
    made = daemon.cli("password", USER, "--stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    env = daemon.cli("env", APP, "set", "DASH_SECRET=s3cret-value")
    assert env.returncode == 0, env.stderr
    first, second = (d["id"] for d in sorted(listed, key=lambda d: d["created_at"]))
    return first, second


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("chromium and chromium-driver are not installed: `make test` installs them (apt-get)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.add_argument("--headless=new")
    # The tests run as root, and Chromium's own sandbox refuses to start as root; the page it
    # loads is ours, served by the daemon under test.
    options.add_argument("--no-sandbox")
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--window-size=1280,900")
    # The driver path is explicit, so Selenium Manager never looks for (or downloads) a driver.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, what: str, probe: Any, timeout: float = WAIT) -> Any:
    """Poll `probe` until truthy; an element the page redrew meanwhile is looked up again."""
    wait = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(lambda d: probe(d), message=f"waiting for {what}")


def shoot(driver: WebDriver, name: str, dark: bool = False) -> None:
    """`name`-desktop.png (1280 px wide, the whole page) and `name`-375-N.png (a phone's width,
    the whole page in slices of a few screens, so each stays readable); with `dark`, also
    `name`-dark-desktop.png and `name`-dark-375-N.png in the system's dark scheme."""
    if dark:
        scheme = [{"name": "prefers-color-scheme", "value": "dark"}]
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": scheme})
        try:
            shoot(driver, f"{name}-dark")
        finally:
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    for width in (1280, 375):
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        driver.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        slice_height = height if width > 600 else 1200
        for index, top in enumerate(range(0, height, slice_height), start=1):
            clip = {"x": 0, "y": top, "width": width, "height": min(slice_height, height - top), "scale": 1}
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
            file = f"{name}-desktop.png" if width > 600 else f"{name}-375-{index}.png"
            (ARTIFACTS / file).write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def text_of(driver: WebDriver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def peak(driver: WebDriver, css: str) -> float:
    """The highest point a chart draws (its series summed), as the page wrote it on the SVG."""
    return float(driver.find_element(By.CSS_SELECTOR, css).get_attribute("data-peak") or 0)


def confirm(driver: WebDriver) -> None:
    wait_for(
        driver, "the confirmation dialog", lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is not None
    )
    driver.find_element(By.ID, "confirm-ok").click()


def traffic(daemon: Daemon) -> dict[str, int]:
    with daemon.api() as api:
        return {t["deployment"]: t["weight"] for t in api.get(f"/v1/apps/{APP}").json()["traffic"] if t["weight"]}


def session_cookie(driver: WebDriver) -> str:
    cookie = driver.get_cookie("roost_session")
    assert cookie is not None, "no session cookie after login"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    return str(cookie["value"])


def test_login_then_the_overview_lists_the_app(
    daemon: Daemon, deployments: tuple[str, str], browser: WebDriver
) -> None:
    browser.get(f"{daemon.api_url}/ui/")
    wait_for(browser, "the login form", lambda d: d.find_elements(By.ID, "login-user"))
    shoot(browser, "1-login")
    browser.find_element(By.ID, "login-user").send_keys(USER)
    browser.find_element(By.ID, "login-password").send_keys("wrong password")
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, "the refusal", lambda d: "wrong credentials" in text_of(d, "#login-error"))
    assert browser.get_cookie("roost_session") is None
    password = browser.find_element(By.ID, "login-password")
    password.clear()
    password.send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    row = f'tr[data-app="{APP}"]'
    wait_for(browser, "the app's row", lambda d: d.find_elements(By.CSS_SELECTOR, row))
    wait_for(browser, "its production", lambda d: deployments[1] in text_of(d, f'{row} [data-key="production"]'))
    assert text_of(browser, f'{row} [data-key="state"]') in ("sleeping", "running")
    assert USER in text_of(browser, "#who-name")
    shoot(browser, "2-overview", dark=True)


def test_a_request_shows_an_instance_a_log_line_and_moves_a_chart(
    daemon: Daemon, deployments: tuple[str, str], browser: WebDriver
) -> None:
    browser.find_element(By.LINK_TEXT, APP).click()
    wait_for(browser, "the app page's charts", lambda d: d.find_elements(By.CSS_SELECTOR, 'svg[data-chart="requests"]'))
    wait_for(browser, "the instances table", lambda d: d.find_elements(By.CSS_SELECTOR, "#instances-body > *"))
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-instance]")  # a function sleeps until asked
    assert peak(browser, REQUESTS_CHART) == 0  # no request yet
    marker = f"/marker-{time.monotonic_ns()}"
    assert get(daemon, f"{APP}.localhost", marker).status_code == 200
    wait_for(browser, "an instance row", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-instance]"))
    wait_for(browser, "the instance ready", lambda d: "ready" in text_of(d, "tr[data-instance]"))
    wait_for(browser, "the app's log line", lambda d: f"dashboard saw {marker}" in text_of(d, "#log"))
    wait_for(browser, "the request's log line", lambda d: f"GET {marker} 200" in text_of(d, "#log"))
    wait_for(browser, "the requests chart to move", lambda d: peak(d, REQUESTS_CHART) > 0)
    wait_for(
        browser, "the event of the start", lambda d: d.find_elements(By.CSS_SELECTOR, 'li[data-kind="instance.ready"]')
    )
    browser.find_element(By.CSS_SELECTOR, f'tr[data-deployment="{deployments[1]}"] [data-build-log]').click()
    wait_for(browser, "the build log", lambda d: f"deployment {deployments[1]} is ready" in text_of(d, "#build-log"))
    browser.find_element(By.ID, "env-reveal").click()
    wait_for(browser, "the revealed value", lambda d: "s3cret-value" in text_of(d, "#env-body"))
    browser.find_element(By.ID, "env-name").send_keys("DASH_GREETING")
    browser.find_element(By.ID, "env-value").send_keys("from-the-page")
    browser.find_element(By.ID, "env-set").click()
    wait_for(browser, "the new variable", lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-env="DASH_GREETING"]'))
    with daemon.api() as api:
        values = {v["name"]: v["value"] for v in api.get(f"/v1/apps/{APP}/env", params={"reveal": "true"}).json()}
    assert values["DASH_GREETING"] == "from-the-page"
    shoot(browser, "3-app", dark=True)


def test_split_fifty_fifty_then_roll_back(daemon: Daemon, deployments: tuple[str, str], browser: WebDriver) -> None:
    first, second = deployments
    wait_for(browser, "the split editor", lambda d: d.find_elements(By.ID, "split-even"))
    browser.find_element(By.ID, "split-even").click()
    assert "Total 100 %" in text_of(browser, "#split-total")
    browser.find_element(By.ID, "split-save").click()
    confirm(browser)
    wait_until("a 50/50 split", lambda: traffic(daemon) == {first: 50, second: 50}, timeout=WAIT)
    wait_for(browser, "the page's 50 %", lambda d: text_of(d, f'tr[data-deployment="{first}"]').count("50 %") == 1)
    shoot(browser, "4-split")
    browser.find_element(By.ID, "rollback").click()
    confirm(browser)
    back = wait_until("one deployment at 100 %", lambda: (t := traffic(daemon)) and list(t.values()) == [100] and t)
    (target,) = back
    wait_for(browser, "the page's 100 %", lambda d: "100 %" in text_of(d, f'tr[data-deployment="{target}"]'))
    wait_for(
        browser, "the rollback's event", lambda d: d.find_elements(By.CSS_SELECTOR, 'li[data-kind="deploy.rollback"]')
    )


def test_a_change_needs_the_csrf_token_and_logout_ends_the_session(daemon: Daemon, browser: WebDriver) -> None:
    cookie = {"roost_session": session_cookie(browser)}
    csrf = browser.execute_script("return state.csrf")
    url = f"{daemon.api_url}/v1/apps/{APP}/restart"
    refused = httpx.post(url, cookies=cookie, timeout=WAIT)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden", refused.text
    assert httpx.post(url, cookies=cookie, headers={"X-CSRF-Token": "not-it"}, timeout=WAIT).status_code == 403
    assert httpx.post(url, cookies=cookie, headers={"X-CSRF-Token": csrf}, timeout=WAIT).status_code == 204
    with daemon.api() as api:
        audit = api.get("/v1/audit", params={"app": APP, "limit": 100}).json()
    mine = [(e["action"], e["path"], e["status"]) for e in audit if e["user"] == USER]
    assert ("POST", f"/v1/apps/{APP}/restart", 403) in mine  # the refused change is audited
    assert ("POST", f"/v1/apps/{APP}/restart", 204) in mine
    assert ("GET", f"/v1/apps/{APP}/env?reveal=true", 200) in mine, mine  # the page's reveal
    with daemon.api() as api:
        logins = api.get("/v1/audit", params={"action": "session.login", "user": USER}).json()
    assert [(e["kind"], e["address"], e["status"]) for e in logins] == [("password", "127.0.0.1", 200)]
    assert httpx.get(f"{daemon.api_url}/v1/apps", cookies=cookie, timeout=WAIT).status_code == 200
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, "the login form again", lambda d: d.find_elements(By.ID, "login-user"))
    after = httpx.get(f"{daemon.api_url}/v1/apps", cookies=cookie, timeout=WAIT)
    assert after.status_code == 401, after.text
    assert "www-authenticate" not in after.headers  # a browser would pop up its login box


def test_a_token_session_has_the_tokens_role_and_ends_with_it(daemon: Daemon, deployments: tuple[str, str]) -> None:
    made = daemon.cli("token", "create", "dash-viewer", "--role", "viewer", "--app", APP, "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    with httpx.Client(base_url=daemon.api_url, timeout=WAIT) as client:
        assert client.post("/ui/login", json={"token": token + "x"}).status_code == 401
        answer = client.post("/ui/login", json={"token": token})
        assert "Secure" not in answer.headers["set-cookie"]  # plain HTTP here: a Secure cookie would never come back
        me = answer.json()
        assert (me["name"], me["kind"], me["admin"]) == ("dash-viewer", "token", False)
        assert client.get(f"/v1/apps/{APP}").status_code == 200
        headers = {"X-CSRF-Token": me["csrf"]}
        refused = client.post(f"/v1/apps/{APP}/restart", headers=headers)
        assert refused.status_code == 403 and "needs role deployer" in refused.json()["message"], refused.text
        assert client.get(f"/v1/apps/{APP}/env", params={"reveal": "true"}).status_code == 403
        assert client.get("/v1/audit").status_code == 403  # admin only, as for the token itself
        other = client.post("/ui/login", json={"token": token}, headers={"Origin": "http://evil.example"})
        assert other.status_code == 403  # a login posted by another site's page
        assert daemon.cli("token", "revoke", "dash-viewer", "--yes").returncode == 0
        gone = client.get(f"/v1/apps/{APP}")
        assert gone.status_code == 401, gone.text  # the revoked token's session ends with it


def test_roost_ui_prints_a_link_that_works_once(daemon: Daemon, browser: WebDriver) -> None:
    result = daemon.cli("ui")
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    assert link.startswith(f"{daemon.api_url}/ui/link?secret="), link
    browser.get(link)
    wait_for(browser, "the overview via the link", lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-app="{APP}"]'))
    assert text_of(browser, "#who-name").startswith("local")
    with daemon.api() as api:
        logins = api.get("/v1/audit", params={"action": "session.login", "user": "local"}).json()
    assert [e["kind"] for e in logins] == ["link"]
    again = httpx.get(link, timeout=WAIT, follow_redirects=False)
    assert again.status_code == 401, again.text
    over_tcp = daemon.cli("ui", url=True)
    assert over_tcp.returncode != 0


def test_the_app_page_follows_a_pushs_build_as_it_happens(daemon: Daemon, browser: WebDriver, tmp_path: Path) -> None:
    browser.find_element(By.LINK_TEXT, APP).click()
    wait_for(browser, "the app page's events", lambda d: d.find_elements(By.CSS_SELECTOR, "#events li"))
    app = write_app(
        tmp_path, APP, {"roost.toml": f'name = "{APP}"\nentrypoint = "handler:handler"\n', "handler.py": HANDLER}
    )
    out = pushed(daemon, app, "--no-promote", "-m", "third")  # production and its traffic stay as they are
    newest = max(json.loads(daemon.cli("deployments", APP, "--json").stdout), key=lambda d: d["created_at"])["id"]
    assert newest in out
    wait_for(browser, "the push's build log", lambda d: f"Deployment {newest}:" in text_of(d, "#build-which"))
    wait_for(browser, "its end", lambda d: f"deployment {newest} is ready" in text_of(d, "#build-log"))


def test_the_page_runs_only_its_own_code(daemon: Daemon) -> None:
    page = httpx.get(f"{daemon.api_url}/ui/", timeout=WAIT)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    for asset in ("app.js", "style.css"):
        assert httpx.get(f"{daemon.api_url}/ui/assets/{asset}", timeout=WAIT).status_code == 200


def test_the_login_page_is_throttled_like_every_password(daemon: Daemon) -> None:
    """Last in this file: it locks the loopback address's password logins for a while."""
    answers: list[int] = []
    with httpx.Client(base_url=daemon.api_url, timeout=WAIT) as client:
        for attempt in range(12):
            answer = client.post("/ui/login", json={"user": "dash-guesser", "password": f"guess-{attempt}"})
            answers.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) > 0, answer.headers
                assert answer.json()["error"] == "limit_exceeded"
                break
            assert "set-cookie" not in answer.headers
    assert answers[-1] == 429 and set(answers[:-1]) == {401}, answers

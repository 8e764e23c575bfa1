"""The admin API's login throttle through a real `roost serve`: a throttle may refuse, never hang,
and one source of failures must not lock out a valid credential."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roost.api.throttle import ThrottlePolicy
from tests.e2e.harness import Daemon, run_cli, running

PASSWORD = "correct horse battery"
OPERATOR_PASSWORD = "the operator's own password"
LOCKOUT = ThrottlePolicy().lockout_after
LOCKOUT_SECONDS = 2
ANSWER_WITHIN = 30.0  # a throttled answer takes a few seconds; no answer in this long is a hang


def set_password(home: Path, user: str, password: str) -> None:
    result = run_cli(home, "password", user, "--stdin", stdin=password + "\n")
    assert result.returncode == 0, result.stderr


def client(source: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from `source` (any 127/8 address is the host's own)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=ANSWER_WITHIN)


@pytest.fixture
def short_lockout(home: Path) -> Iterator[Daemon]:
    set_password(home, "admin", PASSWORD)
    set_password(home, "operator", OPERATOR_PASSWORD)
    with running(home, "--login-lockout", f"{LOCKOUT_SECONDS}s") as daemon:
        yield daemon


def guess(http: httpx.Client, url: str, times: int, user: str = "admin") -> list[int]:
    return [http.get(url, auth=(user, f"wrong-{index}")).status_code for index in range(times)]


def test_a_valid_password_is_answered_once_the_lockout_ends(short_lockout: Daemon) -> None:
    """Defect 1: 8 failures, then a lockout (2s here) shorter than the failure window (15 min):
    the old throttle called the address 'busy' with nothing in flight and the login waited forever."""
    url = f"{short_lockout.api_url}/v1/apps"
    with client() as http:
        assert guess(http, url, LOCKOUT) == [401] * LOCKOUT
        time.sleep(LOCKOUT_SECONDS)  # the lockout is a duration: let it pass
        assert http.get(url, auth=("admin", PASSWORD)).status_code == 200
        assert http.get(url, auth=("admin", "wrong-after")).status_code == 401


def test_failures_from_an_address_lock_no_valid_credential_out(short_lockout: Daemon) -> None:
    """Defect 2: an app on the operator's address sends bad tokens and bad passwords for `admin`.
    The operator's token, the operator's password and admin's right password all still get in."""
    url = f"{short_lockout.api_url}/v1/apps"
    with short_lockout.api() as local:
        created = local.post("/v1/tokens", json={"name": "operator-cli"})
        assert created.status_code == 201, created.text
        token = created.json()["token"]
    with client() as http:
        bad_tokens = [http.get(url, headers={"Authorization": f"Bearer roost_guess{i}"}).status_code for i in range(9)]
        assert bad_tokens == [401] * 9
        assert guess(http, url, LOCKOUT + 1)[-1] == 429
        started = time.monotonic()
        assert http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        token_seconds = time.monotonic() - started
        assert http.get(url, auth=("operator", OPERATOR_PASSWORD)).status_code == 200
        assert http.get(url, auth=("admin", PASSWORD)).status_code == 200
    assert token_seconds < ThrottlePolicy().delay_locked  # the token did not even wait for the throttle
    with client("127.0.0.9") as elsewhere:  # another address, another name: untouched
        assert elsewhere.get(url, auth=("operator", "wrong-once")).status_code == 401


def test_a_name_under_attack_from_many_addresses_is_locked_everywhere(short_lockout: Daemon) -> None:
    """Per name as well as per address: spreading guesses over addresses does not escape."""
    url = f"{short_lockout.api_url}/v1/apps"
    statuses = []
    for index in range(LOCKOUT + 1):
        with client(f"127.0.3.{index + 1}") as http:
            statuses += guess(http, url, 1)
    assert statuses[:LOCKOUT] == [401] * LOCKOUT
    assert statuses[LOCKOUT] == 429

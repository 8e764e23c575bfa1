"""The admin API opens beyond loopback only when someone could log in, or with --insecure."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.api.exposure import check_exposure, is_loopback_host
from roost.errors import ConfigError
from roost.passwords import PasswordFile
from roost.serve_settings import ServeSettings


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)]
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_an_open_api_with_nobody_to_log_in_is_refused(tmp_path: Path) -> None:
    settings = ServeSettings(home=tmp_path, api_host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"refusing to expose the admin API on 0\.0\.0\.0") as caught:
        check_exposure(settings, has_tokens=False)
    assert "roost password admin" in caught.value.hint


def test_a_token_a_user_loopback_or_insecure_lets_it_open(tmp_path: Path) -> None:
    wide = ServeSettings(home=tmp_path, api_host="0.0.0.0")
    check_exposure(wide, has_tokens=True)
    check_exposure(ServeSettings(home=tmp_path, api_host="127.0.0.1"), has_tokens=False)
    check_exposure(ServeSettings(home=tmp_path, api_host="0.0.0.0", insecure=True), has_tokens=False)
    PasswordFile(wide.passwords_path).set("admin", "a long enough password")
    check_exposure(wide, has_tokens=False)

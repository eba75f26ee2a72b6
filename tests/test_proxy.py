"""TRUSTED_PROXY_COUNT: behind N proxies, X-Forwarded-For decides the rate-limit address (issue 11, 15)."""

from __future__ import annotations

import pytest

from referral_api import create_app, dbmigrate
from referral_api.config import ConfigError, Settings
from referral_api.db import database

PROXY = "10.0.0.2"


def _statuses(tmp_path, proxies: int) -> list[int]:
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'p.sqlite3'}", "instance_path": str(tmp_path),
                      "trusted_proxy_count": proxies, "TESTING": True,
                      "AUTH_RATELIMIT_TOKEN_PER_ADDRESS": "2/minute"})
    dbmigrate.upgrade(database(app))
    http = app.test_client()
    try:
        # Three callers behind one proxy, two requests each.
        return [http.post("/oauth/token", data={"grant_type": "client_credentials"},
                          headers={"X-Forwarded-For": f"198.51.100.{caller}"},
                          environ_base={"REMOTE_ADDR": PROXY}).status_code
                for caller in (1, 2, 3) for _ in range(2)]
    finally:
        database(app).engine.dispose()


def test_behind_one_trusted_proxy_each_forwarded_address_has_its_own_limit(tmp_path):
    assert _statuses(tmp_path, 1) == [401] * 6


def test_without_trusted_proxies_the_forwarded_header_is_ignored(tmp_path):
    assert _statuses(tmp_path, 0) == [401, 401, 429, 429, 429, 429]


@pytest.mark.parametrize("raw", ["-1", "two", "1.5"])
def test_trusted_proxy_count_is_checked_at_start(raw):
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_COUNT"):
        Settings.from_env({"TRUSTED_PROXY_COUNT": raw})


def test_trusted_proxy_count_defaults_to_zero():
    assert Settings.from_env({}).trusted_proxy_count == 0

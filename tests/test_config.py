"""Settings are read from the environment and checked at start with a message naming the variable."""

from __future__ import annotations

import pytest

from referral_api.config import ConfigError, Environment, Settings


def test_defaults():
    s = Settings.from_env({})
    assert s.env is Environment.DEVELOPMENT
    assert s.access_token_ttl == 900 and s.report_min_cell == 11 and s.ratelimit_storage_uri == "memory://"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ACCESS_TOKEN_TTL": "soon"}, "ACCESS_TOKEN_TTL"),
        ({"ACCESS_TOKEN_TTL": "0"}, "ACCESS_TOKEN_TTL"),
        ({"REPORT_MIN_CELL": "-3"}, "REPORT_MIN_CELL"),
        ({"REFERRAL_API_ENV": "staging"}, "REFERRAL_API_ENV"),
        ({"WEBHOOKS_ALLOW_HTTP_LOOPBACK": "perhaps"}, "WEBHOOKS_ALLOW_HTTP_LOOPBACK"),
        ({"DATABASE_URL": "just-a-name"}, "DATABASE_URL"),
        ({"RATELIMIT_STORAGE_URI": "mongodb://x"}, "RATELIMIT_STORAGE_URI"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


PROD = {"REFERRAL_API_ENV": "production", "DATABASE_URL": "postgresql://db/x",
        "REFERRAL_API_ISSUER": "https://api.mgec.mn",
        "REFERRAL_API_MASTER_KEY": "mk1:" + "A" * 43 + "=", "REFERRAL_API_INDEX_KEY": "A" * 43 + "="}


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"REFERRAL_API_DEBUG": "1"}, "REFERRAL_API_DEBUG"),
        ({"WEBHOOKS_ALLOW_HTTP_LOOPBACK": "true"}, "WEBHOOKS_ALLOW_HTTP_LOOPBACK"),
        ({"WEBHOOKS_TEST_VISIBILITY_MODULE": "tests.hook"}, "WEBHOOKS_TEST_VISIBILITY_MODULE"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REFERRAL_API_ISSUER": "http://api.mgec.mn"}, "REFERRAL_API_ISSUER"),
    ],
)
def test_production_refuses_unsafe_settings(extra, variable):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({**PROD, **extra})


def test_production_refuses_to_store_documents_inside_the_installed_package(tmp_path):
    """Unset, DOCUMENTS_PATH is the instance folder's `documents`, by default beside the installed package
    (site-packages): read-only under the systemd units, replaced by the next release."""
    with pytest.raises(ConfigError, match="DOCUMENTS_PATH must be set") as refused:
        Settings.from_env(PROD)
    assert "/var/lib/referral-api/documents" in str(refused.value)
    chosen = Settings.from_env({**PROD, "DOCUMENTS_PATH": str(tmp_path / "documents")})
    assert chosen.documents_path == str(tmp_path / "documents")
    # An instance folder of the operator's choosing holds them too.
    assert Settings.from_env({**PROD, "REFERRAL_API_INSTANCE_PATH": str(tmp_path)}).documents_path == ""
    # Development (`make run`) keeps its default, the instance folder's `documents`.
    assert Settings.from_env({}).documents_path == ""


def test_webhook_settings():
    s = Settings.from_env({"WEBHOOK_SECRET_OVERLAP_HOURS": "48", "WEBHOOKS_CLAIM_SECONDS": "30"})
    assert (s.webhook_secret_overlap_hours, s.webhooks_claim_seconds) == (48, 30)
    assert Settings.from_env({}).webhook_secret_overlap_hours == 24
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET_OVERLAP_HOURS"):
        Settings.from_env({"WEBHOOK_SECRET_OVERLAP_HOURS": "0"})


def test_postgres_url_uses_psycopg3_driver():
    assert Settings.from_env({"DATABASE_URL": "postgresql://h/db"}).database_url == "postgresql+psycopg://h/db"


def test_describe_hides_secrets():
    s = Settings.from_env({"DATABASE_URL": "postgresql://u:hunter2@h/db"})
    assert "hunter2" not in str(s.describe())


def test_rate_limits_are_settings_and_the_flask_config_overrides_them(tmp_path):
    from limits import parse

    from referral_api import create_app
    from referral_api.auth.limits import _items

    s = Settings.from_env({"AUTH_RATELIMIT_TOKEN_PER_CLIENT": "600/minute;30/second"})
    assert s.ratelimit_token_per_client == "600/minute;30/second"
    assert Settings.from_env({}).ratelimit_token_per_address == "120/minute"
    with pytest.raises(ConfigError, match="AUTH_RATELIMIT_LOGIN_PER_ADDRESS"):
        Settings.from_env({"AUTH_RATELIMIT_LOGIN_PER_ADDRESS": "many"})
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'x.sqlite3'}", "instance_path": str(tmp_path),
                      "ratelimit_token_per_client": "7/minute",
                      "AUTH_RATELIMIT_TOKEN_PER_ADDRESS": "9/minute"})
    assert _items("AUTH_RATELIMIT_TOKEN_PER_CLIENT", app.config) == (parse("7/minute"),)
    assert _items("AUTH_RATELIMIT_TOKEN_PER_ADDRESS", app.config) == (parse("9/minute"),)
    assert _items("AUTH_RATELIMIT_TOKEN_FAILURES_PER_ADDRESS", app.config) == (parse("30/minute"),)

"""`referral-api backup` hands pg_dump the whole connection of DATABASE_URL / KEYSTORE_URL: its TLS
settings included (a dump travels as the service's connections do), and nothing silently dropped."""

from __future__ import annotations

import pytest

from referral_api.backup import dump, libpq_env
from referral_api.errors import DomainError
from tests.conftest import throwaway_database

URL = "postgresql+psycopg://referral_app:a-secret-pw@keys.internal:5432/referral_keys"


def test_the_tls_settings_of_the_url_reach_libpq():
    env = libpq_env(URL + "?sslmode=verify-full&sslrootcert=/etc/referral-api/db-ca.pem&connect_timeout=5")
    assert env == {"PGHOST": "keys.internal", "PGPORT": "5432", "PGUSER": "referral_app",
                   "PGPASSWORD": "a-secret-pw", "PGDATABASE": "referral_keys", "PGSSLMODE": "verify-full",
                   "PGSSLROOTCERT": "/etc/referral-api/db-ca.pem", "PGCONNECT_TIMEOUT": "5"}


def test_a_socket_folder_given_as_the_host_parameter_is_the_host():
    env = libpq_env("postgresql://referral_app@/referral?host=/run/postgresql")
    assert env["PGHOST"] == "/run/postgresql" and env["PGDATABASE"] == "referral"


@pytest.mark.parametrize("query", ["?sslmod=verify-full", "?sslmode=require&sslmode=disable"])
def test_a_parameter_pg_dump_cannot_take_is_refused_by_name_not_dropped(query):
    with pytest.raises(DomainError) as refused:
        libpq_env(URL + query)
    assert ("sslmod" in str(refused.value)) and "a-secret-pw" not in str(refused.value)


@pytest.mark.postgres_only
def test_pg_dump_is_held_to_the_urls_sslmode(backend, tmp_path):
    """A root certificate that does not exist, with verify-full: the dump must fail (before the fix it
    went through, unchecked, under libpq's default `prefer`)."""
    with throwaway_database(backend, tmp_path) as url:
        assert dump(url, tmp_path / "plain.dump")["bytes"] > 0
        held = url + ("&" if "?" in url else "?") + f"sslmode=verify-full&sslrootcert={tmp_path / 'none.pem'}"
        with pytest.raises(DomainError) as failed:
            dump(held, tmp_path / "held.dump")
        assert "pg_dump of held.dump failed" in str(failed.value)

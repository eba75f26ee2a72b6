"""Crypto-shredding reaches backups: a pg_dump taken before `retention run` cannot be decrypted for
the erased records once their data keys are gone from the separate key store (KEYSTORE_URL)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.cli import cli
from referral_api.db import database
from referral_api.errors import DataErased
from referral_api.referrals.models import Referral
from tests import world as world_module
from tests.conftest import throwaway_database
from tests.referral_data import referral_body


def _pg_args(tool: str, url: str) -> list[str]:
    u = sa.make_url(url)
    return [
        tool,
        "-h",
        u.host or "127.0.0.1",
        "-p",
        str(u.port or 5432),
        "-U",
        u.username or "postgres",
        "--no-password",
    ]


def _app(main: str, keys: str, instance: str):
    return create_app(
        {"database_url": main, "keystore_url": keys, "instance_path": instance, "TESTING": True}
    )


@pytest.mark.postgres_only
def test_a_dump_taken_before_the_run_cannot_be_decrypted_for_erased_records(backend, tmp_path):
    pg_dump, psql = shutil.which("pg_dump"), shutil.which("psql")
    if pg_dump is None or psql is None:
        pytest.skip("pg_dump and psql are needed")
    instance = str(tmp_path / "instance")
    with (
        throwaway_database(backend, tmp_path) as main,
        throwaway_database(backend, tmp_path) as keys,
        throwaway_database(backend, tmp_path) as restored,
    ):
        app = _app(main, keys, instance)
        dbmigrate.upgrade(database(app))
        assert app.test_cli_runner().invoke(cli, ["keys", "init"]).exit_code == 0
        client = app.test_client()
        with app.app_context():
            session = database(app).sessionmaker()
            world = world_module.build(client, session)
            ids = []
            for n in range(2):
                body = referral_body(external_reference=f"DUMP-{n}")
                sent = client.post("/api/v1/referrals", json=body, headers=world.headers("police"))
                assert sent.status_code == 201, sent.get_json()
                rid = sent.get_json()["id"]
                client.post(f"/api/v1/referrals/{rid}/review", json={}, headers=world.headers("coordinator"))
                rejected = client.post(
                    f"/api/v1/referrals/{rid}/reject",
                    json={"reason": "other", "note": "n"},
                    headers=world.headers("coordinator"),
                )
                assert rejected.status_code == 200, rejected.get_json()
                ids.append(uuid.UUID(rid))
            old, young = ids
            now = datetime.now(UTC)
            session.execute(
                sa.update(Referral)
                .where(Referral.id == old)
                .values(status_changed_at=now - timedelta(days=200))
            )
            session.commit()
            session.close()

        u = sa.make_url(main)
        dump = subprocess.run(
            [*_pg_args(pg_dump, main), "--inserts", u.database], check=True, capture_output=True, timeout=60
        ).stdout
        assert b"DUMP-0" in dump and b"Dorj" not in dump  # the dump holds the records, sealed

        ran = app.test_cli_runner().invoke(cli, ["retention", "run", "--json"])
        assert ran.exit_code == 0, ran.output

        subprocess.run(
            [*_pg_args(psql, restored), "-q", "-v", "ON_ERROR_STOP=1", "-d", sa.make_url(restored).database],
            input=dump,
            check=True,
            capture_output=True,
            timeout=60,
        )
        from_backup = _app(restored, keys, instance)
        with from_backup.app_context():
            session = database(from_backup).sessionmaker()
            erased = session.get(Referral, old)
            assert erased.erased_at is None  # the backup predates the run: it still holds the ciphertext
            with pytest.raises(DataErased):
                _ = erased.family_name
            assert session.get(Referral, young).family_name == "Dorj"  # a record not due still decrypts
            session.close()
        for a in (app, from_backup):
            database(a).engine.dispose()

"""The restore drill (issue 19): `referral-api backup` dumps the records and, apart, the key store; both
restore into fresh databases where the audit chain verifies and a referral reads as before; and the
records restored with a key store from after a retention run keep the erased person unreadable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from referral_api import create_app
from referral_api.backup import libpq_env
from referral_api.db import database
from tests.conftest import throwaway_database
from tests.test_serve import BIN, _env

pytestmark = pytest.mark.slow


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "referral-api"), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def _restore(dump: Path, url: str) -> None:
    """As docs/deploy.md says: pg_restore into a fresh, empty database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | libpq_env(url)
    subprocess.run([shutil.which("pg_restore") or "pg_restore", "--no-owner", "--exit-on-error",
                    "--dbname", env.pop("PGDATABASE"), str(dump)], env=env, check=True, capture_output=True,
                   timeout=300)


class Service:
    """The app on a pair of databases, over its HTTP interface: MGEC reads (the staff view), the police
    act on their own referral."""

    def __init__(self, records: str, keys: str, instance: Path, clients: dict) -> None:
        self.app = create_app({"database_url": records, "keystore_url": keys, "instance_path": str(instance),
                               "TESTING": True})
        self.http = self.app.test_client()
        self.headers = {}
        for kind in ("mgec", "police"):
            client = clients[kind]
            token = self.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=(client["client_id"], client["client_secret"]))
            assert token.status_code == 200, token.json
            self.headers[kind] = {"Authorization": "Bearer " + token.json["access_token"]}

    def get(self, path: str):
        return self.http.get(path, headers=self.headers["mgec"])

    def close(self) -> None:
        database(self.app).engine.dispose()


@pytest.mark.postgres_only
def test_backup_restores_with_its_keys_and_erasures_survive_a_later_key_store(backend, tmp_path):
    with ExitStack() as stack:
        urls = [stack.enter_context(throwaway_database(backend, tmp_path)) for _ in range(6)]
        records, keys, records_a, keys_a, records_b, keys_b = urls
        env = _env(tmp_path, DATABASE_URL=records, KEYSTORE_URL=keys)
        _cli(env, "db", "upgrade")
        _cli(env, "keys", "init")
        clients = json.loads(_cli(env, "demo", "seed", "--json").stdout)["clients"]

        live = Service(records, keys, tmp_path, clients)
        police = live.http.get("/api/v1/referrals?limit=50", headers=live.headers["police"]).json["items"]
        withdrawn = next(r["id"] for r in police if r["status"] == "submitted")
        assert live.http.post(f"/api/v1/referrals/{withdrawn}/withdraw", json={"note": "Drill."},
                              headers=live.headers["police"]).status_code == 200
        kept = [r["id"] for r in live.get("/api/v1/referrals?limit=50").json["items"] if r["id"] != withdrawn]
        before = live.get(f"/api/v1/referrals/{withdrawn}").json
        name = before["person"]["given_name"]
        live.close()

        manifest = json.loads(_cli(env, "backup", "--out", str(tmp_path / "b1"), "--json").stdout)
        assert manifest["records"]["bytes"] > 0 and manifest["keystore"]["bytes"] > 0
        assert oct((tmp_path / "b1" / "keystore.dump").stat().st_mode & 0o777) == "0o600"
        later = (datetime.now(UTC) + timedelta(days=200)).isoformat()
        erased = json.loads(_cli(env, "retention", "run", "--now", later, "--json").stdout)
        assert before["reference"] in erased["referrals"]
        _cli(env, "backup", "--out", str(tmp_path / "b2"))

        # Drill 1: both dumps of one backup into fresh databases.
        _restore(tmp_path / "b1" / "records.dump", records_a)
        _restore(tmp_path / "b1" / "keystore.dump", keys_a)
        env_a = _env(tmp_path, DATABASE_URL=records_a, KEYSTORE_URL=keys_a)
        verified = json.loads(_cli(env_a, "audit", "verify", "--json").stdout)
        assert verified["ok"] is True and verified["checked"] > 0
        restored = Service(records_a, keys_a, tmp_path, clients)
        again = restored.get(f"/api/v1/referrals/{withdrawn}")
        assert again.status_code == 200 and again.json["person"] == before["person"]
        restored.close()

        # Drill 2: the records of before the retention run with the key store of after it.
        _restore(tmp_path / "b1" / "records.dump", records_b)
        _restore(tmp_path / "b2" / "keystore.dump", keys_b)
        mixed = Service(records_b, keys_b, tmp_path, clients)
        gone = mixed.get(f"/api/v1/referrals/{withdrawn}")
        assert gone.status_code == 410 and gone.json["type"].endswith("data_erased")
        assert name not in gone.get_data(as_text=True)
        for other in kept:  # everyone else reads as before
            assert mixed.get(f"/api/v1/referrals/{other}").status_code == 200
        mixed.close()


def test_backup_refuses_sqlite_and_a_used_folder(tmp_path):
    env = _env(tmp_path)
    _cli(env, "db", "upgrade")
    refused = _cli(env, "backup", "--out", str(tmp_path / "b"), check=False)
    assert refused.returncode == 1 and "needs PostgreSQL" in refused.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    env_pg = _env(tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    used = _cli(env_pg, "backup", "--out", str(tmp_path / "used"), check=False)
    assert used.returncode == 1 and "not empty" in used.stderr

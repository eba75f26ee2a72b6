"""deploy/postgresql/{roles,grants}.sql on a scratch PostgreSQL database (issue 19): the migration role
owns and upgrades the schema; the app role serves and runs the scheduled jobs, but PostgreSQL itself
refuses it UPDATE, DELETE and TRUNCATE of audit_events (a privilege error, before any trigger)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from referral_api import create_app
from referral_api.audit.sealing import CHAIN_LOCK
from referral_api.backup import libpq_env
from referral_api.db import database
from tests.conftest import throwaway_database
from tests.referral_data import referral_body
from tests.test_serve import BIN, _env

pytestmark = pytest.mark.slow
SQL = Path(__file__).resolve().parent.parent / "deploy" / "postgresql"


def _psql(url: str, script: Path, **variables: str) -> None:
    env = libpq_env(url)
    args = [shutil.which("psql") or "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.pop("PGDATABASE"),
            "-f", str(script)]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    done = subprocess.run(args, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "referral-api"), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def _as(url: str, role: str) -> str:
    return sa.make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.mark.postgres_only
def test_the_app_role_serves_but_cannot_change_the_audit_trail(backend, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    owner, app_role = f"referral_migrator_{suffix}", f"referral_app_{suffix}"
    with throwaway_database(backend, tmp_path) as admin_url:
        try:
            _psql(admin_url, SQL / "roles.sql", owner_role=owner, app_role=app_role)
            owner_url, app_url = _as(admin_url, owner), _as(admin_url, app_role)
            _cli(_env(tmp_path, DATABASE_URL=owner_url), "db", "upgrade")
            _psql(owner_url, SQL / "grants.sql", app_role=app_role)
            _check_refusals(app_url)
            _check_serving(app_url, tmp_path)
        finally:
            name = sa.make_url(admin_url).database
            admin = sa.create_engine(sa.make_url(admin_url).set(database="postgres"),
                                     isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                for role in (app_role, owner):
                    conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            admin.dispose()


def _check_refusals(app_url: str) -> None:
    engine = sa.create_engine(app_url)
    try:
        for statement in ("UPDATE audit_events SET outcome = 'denied'", "DELETE FROM audit_events",
                          "TRUNCATE audit_events", "UPDATE alembic_version SET version_num = 'x'",
                          "CREATE TABLE mine (id int)", "DROP TABLE referrals"):
            with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as refused:
                conn.execute(sa.text(statement))
            assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value)
    finally:
        engine.dispose()


def _check_sealing_waiting_events(app_url: str, http, police: dict[str, str]) -> None:
    """As the app role: an event committed unsealed (the head was busy) is sealed by the next commit,
    in the database (an UPDATE of the three seal columns; the trigger clears its seal input)."""
    engine = sa.create_engine(app_url)
    credentials = {"data": {"grant_type": "client_credentials"},
                   "auth": (police["client_id"], police["client_secret"])}
    try:
        with engine.connect() as holder:
            holder.execute(sa.select(sa.func.pg_advisory_lock(CHAIN_LOCK)))
            assert http.post("/oauth/token", **credentials).status_code == 200
            waiting = holder.scalar(sa.text("SELECT count(*) FROM audit_events WHERE seal_input IS NOT NULL"))
            holder.execute(sa.select(sa.func.pg_advisory_unlock(CHAIN_LOCK)))
            holder.commit()
        assert waiting == 1
        assert http.post("/oauth/token", **credentials).status_code == 200
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM audit_events WHERE seq IS NULL OR seal_input "
                                       "IS NOT NULL")) == 0
    finally:
        engine.dispose()


def _check_serving(app_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, DATABASE_URL=app_url)
    clients = json.loads(_cli(env, "demo", "seed", "--json"))["clients"]
    app = create_app({"database_url": app_url, "instance_path": str(tmp_path), "TESTING": True})
    http = app.test_client()
    try:
        assert http.get("/readyz").status_code == 200
        police = clients["police"]
        token = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(police["client_id"], police["client_secret"]))
        assert token.status_code == 200
        headers = {"Authorization": "Bearer " + token.json["access_token"]}
        made = http.post("/api/v1/referrals", json=referral_body(), headers=headers)
        assert made.status_code == 201, made.json
        assert http.get(made.headers["Location"], headers=headers).status_code == 200
        _check_sealing_waiting_events(app_url, http, police)
    finally:
        database(app).engine.dispose()
    # The scheduled jobs run as the app role too.
    for job in (["audit", "verify"], ["audit", "checkpoint"], ["retention", "run"], ["prune"],
                ["deadlines", "run"], ["webhooks", "work", "--once"]):
        _cli(env, *job)

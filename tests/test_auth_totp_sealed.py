"""TOTP secrets are sealed at rest like every other secret (issue 11, point 14); migration 0900 seals
the plain ones a database already holds."""

from __future__ import annotations

import uuid

import pyotp
import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.access import Role
from referral_api.auth.models import User
from referral_api.auth.services import _check_totp
from referral_api.db import database, utcnow
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h
from tests.conftest import throwaway_database


def _raw_users(session) -> list[dict]:
    return [dict(row) for row in session.execute(sa.text("SELECT * FROM users")).mappings()]


def test_a_new_persons_totp_secret_is_stored_sealed(session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    [row] = _raw_users(session)
    assert "totp_secret" not in row
    sealed = bytes(row["totp_secret_sealed"])
    assert totp.secret.encode() not in sealed and totp.secret not in str(row)
    session.expire_all()
    assert session.get(User, user.id).totp_secret == totp.secret


_STAMPS = ("created_at", "updated_at")
ORGS = sa.table("organisations", sa.column("id", sa.Uuid()),
                *(sa.column(c, sa.String()) for c in ("name", "kind", "country", "status")),
                *(sa.column(c, sa.DateTime()) for c in _STAMPS))
USERS_BEFORE_0900 = sa.table(
    "users", sa.column("id", sa.Uuid()), sa.column("organisation_id", sa.Uuid()),
    *(sa.column(c, sa.String()) for c in ("email", "name", "role", "password_hash", "totp_secret")),
    sa.column("active", sa.Boolean()), sa.column("failed_logins", sa.Integer()),
    *(sa.column(c, sa.DateTime()) for c in _STAMPS))


def _user_before_0900(app, secret: str) -> uuid.UUID:
    with app.app_context():
        dbmigrate.upgrade(database(app), "0850")
    org_id, user_id, now = uuid.uuid4(), uuid.uuid4(), utcnow().replace(tzinfo=None)
    with database(app).engine.begin() as conn:
        conn.execute(sa.insert(ORGS).values(id=org_id, name="MGEC", kind="mgec", country="MN",
                                            status="active", created_at=now, updated_at=now))
        conn.execute(sa.insert(USERS_BEFORE_0900).values(
            id=user_id, organisation_id=org_id, email="c@mgec.example", name="", role="mgec_coordinator",
            password_hash="$argon2id$x", totp_secret=secret, active=True, failed_logins=0, created_at=now,
            updated_at=now))
    return user_id


def test_migration_0900_seals_the_secrets_a_database_holds(backend, tmp_path):
    secret = pyotp.random_base32()
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "TESTING": True})
        try:
            user_id = _user_before_0900(app, secret)
            with app.app_context():  # as `referral-api db upgrade` runs it
                dbmigrate.upgrade(database(app))
            session = database(app).sessionmaker()
            [row] = _raw_users(session)
            assert "totp_secret" not in row and secret.encode() not in bytes(row["totp_secret_sealed"])
            user = session.get(User, user_id)
            assert user.totp_secret == secret
            assert _check_totp(session, user, pyotp.TOTP(secret).now(), utcnow())
            session.close()
        finally:
            database(app).engine.dispose()


def test_migration_0900_without_keys_stops_and_changes_nothing(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "TESTING": True})
        try:
            secret = pyotp.random_base32()
            _user_before_0900(app, secret)
            with pytest.raises(RuntimeError, match="referral-api db upgrade"):
                dbmigrate.upgrade(database(app))  # no app context: no keys
            with database(app).engine.connect() as conn:
                assert dbmigrate.current_revisions(conn) == {"0850"}
                assert conn.execute(sa.text("SELECT totp_secret FROM users")).scalar_one() == secret
        finally:
            database(app).engine.dispose()

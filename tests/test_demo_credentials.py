"""Lost demo secrets: `demo seed --reissue-secrets` gives every demo client a new secret and every demo
person a new password (and TOTP URI where they have one), prints them, and the old ones stop working.
In production `demo seed` refuses to run at all."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from referral_api.audit.models import AuditEvent
from referral_api.auth.models import User


def _seed(run_cli, *args: str) -> dict:
    result = run_cli("demo", "seed", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _token(client, client_id: str, secret: str):
    return client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "referrals:read"},
                       auth=(client_id, secret))


def _count(session, action: str) -> int:
    query = sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    return session.scalar(query)


def test_reissue_secrets_gives_new_credentials_and_the_old_ones_stop_working(run_cli, client, session):
    first = _seed(run_cli)
    again = _seed(run_cli)
    assert again["clients"]["police"]["client_secret"] is None  # shown only when created
    assert again["coordinator"]["password"] is None

    new = _seed(run_cli, "--reissue-secrets")
    for kind, issued in first["clients"].items():
        assert new["clients"][kind]["client_id"] == issued["client_id"]
        assert new["clients"][kind]["client_secret"] not in (None, issued["client_secret"])
        old = _token(client, issued["client_id"], issued["client_secret"])
        assert old.status_code == 401 and old.json["error"] == "invalid_client"
        assert _token(client, issued["client_id"], new["clients"][kind]["client_secret"]).status_code == 200

    hasher = PasswordHasher()
    people = {"coordinator": (first["coordinator"], new["coordinator"]),
              **{kind: (first["officers"][kind], new["officers"][kind]) for kind in first["officers"]}}
    for before, after in people.values():
        stored = session.scalar(sa.select(User.password_hash).where(User.email == after["email"]))
        assert hasher.verify(stored, after["password"])
        with pytest.raises(VerifyMismatchError):
            hasher.verify(stored, before["password"])
        if before["totp_uri"]:  # a new authenticator secret where the person has one
            assert after["totp_uri"].startswith("otpauth://") and after["totp_uri"] != before["totp_uri"]
        else:
            assert after["totp_uri"] is None
    assert new["coordinator"]["totp_uri"] and new["officers"]["embassy"]["totp_uri"]

    assert _count(session, "auth:client:rotate_secret") == len(first["clients"])
    assert _count(session, "auth:user:reset_password") == len(people)


def test_reissued_secrets_are_printed_in_the_text_output_too(run_cli):
    _seed(run_cli)
    result = run_cli("demo", "seed", "--reissue-secrets")
    assert result.exit_code == 0, result.output
    assert "(exists; its secret is not shown again)" not in result.output
    assert "client_secret " in result.output
    assert "coordinator coordinator@mgec.example  password " in result.output


@pytest.mark.parametrize("args", [[], ["--reissue-secrets"]])
def test_demo_seed_refuses_to_run_in_production(tmp_path, args):
    """On a production database it would add to the real MGEC a client holding every scope, accounts
    whose passwords it prints, made-up referrals and cases, and loopback redirect URIs."""
    import base64

    from referral_api import create_app, dbmigrate
    from referral_api.auth.models import Client
    from referral_api.cli import cli
    from referral_api.config import Settings
    from referral_api.db import database
    from referral_api.organisations.models import Organisation

    settings = Settings.from_env({
        "REFERRAL_API_ENV": "production", "REFERRAL_API_ISSUER": "https://referrals.mgec.mn",
        "DATABASE_URL": f"sqlite:///{tmp_path}/prod.sqlite3", "REFERRAL_API_INSTANCE_PATH": str(tmp_path),
        "REFERRAL_API_MASTER_KEY": "mk1:" + base64.b64encode(b"\x01" * 32).decode(),
        "REFERRAL_API_INDEX_KEY": base64.b64encode(b"\x02" * 32).decode(),
    })
    app = create_app(settings)
    dbmigrate.upgrade(database(app))
    result = app.test_cli_runner().invoke(cli, ["demo", "seed", *args, "--json"])
    with database(app).sessionmaker() as s:
        rows = [s.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Organisation, Client, User)]
    database(app).engine.dispose()
    assert result.exit_code == 1 and rows == [0, 0, 0], result.output
    out = json.loads(result.stdout)
    assert out["error"] == "bad_request" and "production" in out["message"]

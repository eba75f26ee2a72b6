"""Idempotency-Key belongs to the principal that used it, keeps nothing personal and expires (issue 11)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_api import idempotency, prune
from referral_api.access import Role
from referral_api.audit.models import AuditEvent
from referral_api.db import database, utcnow
from referral_api.idempotency import IdempotencyKey
from referral_api.organisations.models import Organisation, OrganisationKind
from referral_api.referrals.models import Referral
from tests import oauth_helpers as h
from tests.referral_data import DELETE, referral_body
from tests.world import PEOPLE_SCOPES, person_token

NO_EXTERNAL_REFERENCE = {"external_reference": DELETE}


@pytest.fixture
def officers(client, world, session):
    """Officers of two police forces, both logged in through MGEC's one first-party login client."""
    login_client, secret = h.secret_client(
        session, world.orgs["mgec"], scopes=PEOPLE_SCOPES, grant_types="authorization_code refresh_token",
        redirect_uris=[h.REDIRECT_URI])
    other_force = Organisation(name="Police of Incheon", kind=OrganisationKind.POLICE, country="KR")
    session.add(other_force)
    session.commit()
    tokens = {}
    for who, org in (("a", world.orgs["police"]), ("b", other_force)):
        user, totp = h.person(session, org, Role.PARTNER_OFFICER)
        tokens[who] = h.bearer(person_token(client, login_client, secret, user, totp))
    return tokens


def _keyed(headers, key):
    return {**headers, "Idempotency-Key": key}


def test_two_officers_of_two_forces_through_one_login_client_do_not_share_a_key(client, world, officers):
    """Officer B repeating officer A's request with A's key is a fresh request of B's, not A's answer."""
    body = referral_body(**NO_EXTERNAL_REFERENCE)
    first = client.post("/api/v1/referrals", json=body, headers=_keyed(officers["a"], "psp-0412"))
    assert first.status_code == 201, first.get_json()
    second = client.post("/api/v1/referrals", json=body, headers=_keyed(officers["b"], "psp-0412"))
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.get_json()["id"] != first.get_json()["id"]

    rid = first.get_json()["id"]
    asked = client.post(f"/api/v1/referrals/{rid}/request-information", json={"questions": "Which city?"},
                        headers=world.headers("coordinator"))
    assert asked.status_code == 200, asked.get_json()
    answer = {"answer": "Sainshand, Dornogovi."}
    url = f"/api/v1/referrals/{rid}/information"
    by_a = client.post(url, json=answer, headers=_keyed(officers["a"], "answer-1"))
    assert by_a.status_code == 200 and by_a.get_json()["person"]["family_name"] == "Dorj"
    by_b = client.post(url, json=answer, headers=_keyed(officers["b"], "answer-1"))
    assert by_b.status_code == 404, by_b.get_json()
    assert "Dorj" not in by_b.get_data(as_text=True) and "Idempotent-Replayed" not in by_b.headers
    again = client.post(url, json=answer, headers=_keyed(officers["a"], "answer-1"))
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"


def test_a_replay_after_erasure_shows_the_erased_record(client, world):
    headers = world.headers("police", **{"Idempotency-Key": "psp-erased"})
    first = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    assert first.status_code == 201 and first.get_json()["person"]["family_name"] == "Dorj"
    erase = f"/api/v1/referrals/{first.get_json()['id']}/erase"
    erased = client.post(erase, json={"reason": "person_request"}, headers=world.headers("admin"))
    assert erased.status_code == 200, erased.get_json()
    replay = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]
    # erasing it withdrew it: the submitter's view of a decided referral, which holds no person at all
    assert replay.get_json()["erased"] is True and replay.get_json()["status"] == "withdrawn"
    assert replay.get_json().get("person") is None
    assert "Dorj" not in replay.get_data(as_text=True) and "E1234567" not in replay.get_data(as_text=True)


def test_an_expired_key_is_a_new_request(client, world, session, monkeypatch):
    headers = world.headers("police", **{"Idempotency-Key": "psp-tomorrow"})
    body = referral_body(**NO_EXTERNAL_REFERENCE)
    first = client.post("/api/v1/referrals", json=body, headers=headers)
    assert first.status_code == 201
    soon = utcnow() + timedelta(hours=23)
    monkeypatch.setattr(idempotency, "utcnow", lambda: soon)
    replayed = client.post("/api/v1/referrals", json=body, headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    later = utcnow() + timedelta(hours=24, seconds=1)
    monkeypatch.setattr(idempotency, "utcnow", lambda: later)
    again = client.post("/api/v1/referrals", json=body, headers=headers)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first.get_json()["id"]
    assert session.scalar(sa.select(sa.func.count()).select_from(Referral)) == 2
    row = session.scalar(sa.select(IdempotencyKey))
    assert row.resource_id == again.get_json()["id"]
    assert row.expires_at - row.created_at == timedelta(hours=24)  # IDEMPOTENCY_TTL_HOURS' default


def _reads(session, rid) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.resource_id == rid, AuditEvent.action == "referrals:referral:read"))


def test_a_replay_is_audited_as_the_fresh_read_it_stands_for(client, world, session):
    headers = world.headers("police", **{"Idempotency-Key": "psp-audited"})
    first = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    rid = first.get_json()["id"]
    assert _reads(session, rid) == 0
    assert client.post("/api/v1/referrals", json=referral_body(), headers=headers).status_code == 201
    assert _reads(session, rid) == 1
    client.get(f"/api/v1/referrals/{rid}", headers=world.headers("police"))
    assert _reads(session, rid) == 2


def test_the_key_and_the_change_commit_together(client, world, session):
    """The key is committed with the change and its answer, never before it (a crash cannot strand one)."""
    committed: list[tuple] = []

    def seen_at_commit(s):
        keys = list(s.execute(sa.text("SELECT status_code FROM idempotency_keys")))
        committed.append((keys, s.scalar(sa.select(sa.func.count()).select_from(Referral))))

    headers = world.headers("police", **{"Idempotency-Key": "psp-one-commit"})
    sa.event.listen(sa.orm.Session, "before_commit", seen_at_commit)
    try:
        first = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    finally:
        sa.event.remove(sa.orm.Session, "before_commit", seen_at_commit)
    assert first.status_code == 201
    with_key = [c for c in committed if c[0]]
    assert with_key and all(c == ([(201,)], 1) for c in with_key), committed
    assert session.scalar(sa.select(IdempotencyKey.resource_id)) == first.get_json()["id"]


def test_expired_keys_go_with_prune_not_with_the_retention_run(app, client, world, session, run_cli):
    headers = world.headers("police", **{"Idempotency-Key": "psp-kept-a-day"})
    assert client.post("/api/v1/referrals", json=referral_body(), headers=headers).status_code == 201
    tomorrow = (utcnow() + timedelta(hours=24, minutes=1)).isoformat()
    retention = run_cli("retention", "run", "--json", "--now", tomorrow)
    assert retention.exit_code == 0 and "idempotency_keys_deleted" not in json.loads(retention.output)
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 1
    sessions, settings = database(app).sessionmaker, app.config["SETTINGS"]
    assert prune.run(sessions, settings=settings)["idempotency_keys"] == 0  # within its 24 h
    later = utcnow() + timedelta(hours=24, minutes=1)
    assert prune.run(sessions, settings=settings, now=later)["idempotency_keys"] == 1
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0

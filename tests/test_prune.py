"""`referral-api prune`: every kind of expired row goes, nothing that still guards something does."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa

from referral_api import events
from referral_api.access import Role
from referral_api.auth.models import AuthorizationCode, Token, UsedAssertion, UsedDPoPProof
from referral_api.db import utcnow
from referral_api.idempotency import IdempotencyKey
from referral_api.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from tests import oauth_helpers as h


def _hash() -> str:
    return secrets.token_hex(32)


def _scene(session) -> dict[str, set]:
    """One row of each kind that must go ("dead") and of each that must stay ("live"), by id."""
    now = utcnow()
    org = h.organisation(session)
    client, _secret = h.secret_client(session, org)
    user, _totp = h.person(session, org, Role.PARTNER_OFFICER)
    dead, live = set(), set()

    def code(expires_in: timedelta, used: bool) -> AuthorizationCode:
        row = AuthorizationCode(
            id=uuid.uuid4(),
            code_hash=_hash(),
            client_pk=client.id,
            user_id=user.id,
            redirect_uri=h.REDIRECT_URI,
            scope="cases:read",
            code_challenge="x" * 43,
            code_challenge_method="S256",
            created_at=now + expires_in - timedelta(seconds=60),
            expires_at=now + expires_in,
            used_at=now if used else None,
        )
        session.add(row)
        return row

    def token(age: timedelta, *, refresh_in: timedelta | None = None, code_id=None, revoked=False) -> Token:
        row = Token(
            id=uuid.uuid4(),
            access_token_hash=_hash(),
            client_pk=client.id,
            scope="cases:read",
            issued_at=now - age,
            expires_in=900,
            authorization_code_id=code_id,
            refresh_token_hash=_hash() if refresh_in is not None else None,
            refresh_expires_at=now + refresh_in if refresh_in is not None else None,
            refresh_revoked_at=now - timedelta(minutes=1) if revoked else None,
            access_revoked_at=now - timedelta(minutes=1) if revoked else None,
        )
        session.add(row)
        return row

    # authorization codes: expired and unused; expired, its tokens dead; live; expired, its token live
    expired_unused = code(-timedelta(hours=1), used=False)
    expired_spent = code(-timedelta(hours=13), used=True)
    fresh = code(timedelta(seconds=50), used=False)
    expired_in_use = code(-timedelta(hours=2), used=True)
    session.flush()  # the tokens below point at these codes
    dead |= {("codes", expired_unused.id), ("codes", expired_spent.id)}
    live |= {("codes", fresh.id), ("codes", expired_in_use.id)}
    # tokens: an expired client-credentials token; one whose refresh token expired too
    dead |= {
        ("tokens", token(timedelta(hours=2)).id),
        ("tokens", token(timedelta(hours=13), refresh_in=-timedelta(hours=1), code_id=expired_spent.id).id),
    }
    # ... a live access token; a rotated (revoked) refresh token kept for reuse detection until it
    # would have expired; an expired access token whose refresh token is still good
    live |= {
        ("tokens", token(timedelta(minutes=1)).id),
        ("tokens", token(timedelta(hours=2), refresh_in=timedelta(hours=10), revoked=True).id),
        ("tokens", token(timedelta(hours=2), refresh_in=timedelta(hours=10), code_id=expired_in_use.id).id),
    }
    # jtis: past their window, and within it
    for offset, bucket in ((-timedelta(minutes=5), dead), (timedelta(minutes=5), live)):
        jti = UsedAssertion(
            id=uuid.uuid4(), client_id=client.client_id, jti_hash=_hash(), expires_at=now + offset
        )
        session.add(jti)
        bucket.add(("jtis", jti.id))
        proof = UsedDPoPProof(id=uuid.uuid4(), jti_hash=_hash(), expires_at=now + offset)
        session.add(proof)
        bucket.add(("dpop_jtis", proof.id))
    # idempotency keys: past the 24 h TTL, and within it
    for age, bucket in ((timedelta(hours=25), dead), (timedelta(hours=23), live)):
        key = IdempotencyKey(
            id=uuid.uuid4(),
            principal=f"{client.organisation_id}/{client.client_id}/-",
            key=secrets.token_hex(8),
            fingerprint="f" * 64,
            status_code=201,
            created_at=now - age,
            expires_at=now - age + timedelta(hours=24),
        )
        session.add(key)
        bucket.add(("keys", key.id))
    # webhook attempts: of a delivered webhook, past the 30-day retention and within it; of a failed
    # and of a pending delivery, however old (an integrator debugs them)
    sub = WebhookSubscription(
        id=uuid.uuid4(),
        organisation_id=org.id,
        url="https://hooks.partner.example/in",
        events=[],
        active=True,
    )
    session.add(sub)
    for status, age, bucket in (
        (DeliveryStatus.SUCCEEDED, 31, dead),
        (DeliveryStatus.SUCCEEDED, 29, live),
        (DeliveryStatus.FAILED, 40, live),
        (DeliveryStatus.PENDING, 40, live),
    ):
        event = events.publish(
            session, events.EventType.WEBHOOK_PING, resource_type="marker", resource_id=uuid.uuid4(), data={}
        )
        session.flush()
        delivery = WebhookDelivery(
            id=uuid.uuid4(),
            subscription_id=sub.id,
            event_seq=event.seq,
            status=status,
            attempt_count=1,
            created_at=now - timedelta(days=age),
            next_attempt_at=now + timedelta(days=1),  # the worker below leaves it alone
        )
        session.add(delivery)
        session.flush()
        attempt = WebhookAttempt(
            id=uuid.uuid4(),
            delivery_id=delivery.id,
            status_code=200,
            duration_ms=3,
            attempted_at=now - timedelta(days=age),
        )
        session.add(attempt)
        bucket.add(("attempts", attempt.id))
    session.commit()
    return {"dead": dead, "live": live}


MODELS = {
    "codes": AuthorizationCode,
    "tokens": Token,
    "jtis": UsedAssertion,
    "dpop_jtis": UsedDPoPProof,
    "keys": IdempotencyKey,
    "attempts": WebhookAttempt,
}


def _present(session, rows) -> set:
    session.expire_all()
    return {
        (kind, rid)
        for kind, rid in rows
        if session.scalar(sa.select(MODELS[kind].id).where(MODELS[kind].id == rid)) is not None
    }


def _mine(counts: dict, scene) -> None:
    """The counts cover at least this test's dead rows (other rows of the database may expire too)."""
    expected = {
        "tokens": "tokens",
        "authorization_codes": "codes",
        "assertion_jtis": "jtis",
        "dpop_proof_jtis": "dpop_jtis",
        "idempotency_keys": "keys",
        "webhook_attempts": "attempts",
    }
    for kind, short in expected.items():
        assert counts[kind] >= sum(1 for k, _ in scene["dead"] if k == short), kind


def test_prune_dry_run_counts_and_prune_deletes_each_expired_kind_and_nothing_live(run_cli, session):
    scene = _scene(session)
    dry = run_cli("prune", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["dry_run"] is True
    _mine(report["pruned"], scene)
    assert _present(session, scene["dead"]) == scene["dead"]  # a dry run deletes nothing

    done = run_cli("prune", "--json")
    assert done.exit_code == 0, done.output
    _mine(json.loads(done.output)["pruned"], scene)
    assert _present(session, scene["dead"]) == set()
    assert _present(session, scene["live"]) == scene["live"]
    again = json.loads(run_cli("prune", "--json").output)["pruned"]
    assert again == dict.fromkeys(again, 0)


def test_prune_works_in_small_batches(app, session):
    from referral_api import prune
    from referral_api.db import database

    scene = _scene(session)
    counts = prune.run(database(app).sessionmaker, settings=app.config["SETTINGS"], batch=1)
    _mine(counts, scene)
    assert _present(session, scene["dead"]) == set()
    assert _present(session, scene["live"]) == scene["live"]


def test_the_webhook_worker_prunes_as_it_starts(run_cli, session):
    scene = _scene(session)
    worked = run_cli("webhooks", "work", "--once", "--worker-id", "prune-test")
    assert worked.exit_code == 0, worked.output
    assert _present(session, scene["dead"]) == set()
    assert _present(session, scene["live"]) == scene["live"]


def test_the_worker_runs_the_pruning_every_interval(app):
    from referral_api import prune  # noqa: F401  (registers its step with the worker)
    from referral_api.webhooks.worker import periodic_tasks

    settings = app.config["SETTINGS"]
    tasks = {task.name: task for task in periodic_tasks(settings)}
    assert tasks["prune"].every == settings.prune_interval_seconds == 3600

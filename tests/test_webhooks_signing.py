"""Standard Webhooks signatures as the `standardwebhooks` library verifies them, across secret rotation."""

from __future__ import annotations

import base64
import json
import random
import time
from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from referral_api.events import THIN_KEYS
from referral_api.webhooks import services, signing, visibility
from referral_api.webhooks.models import WebhookSubscription
from referral_api.webhooks.worker import Worker
from tests.webhook_helpers import TEST_RESOURCE, Actor, FakeSender, align_cursor, publish


def test_secret_format():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) == 32
    assert signing.new_secret() != secret


def test_a_signature_verifies_with_the_library_and_fails_on_any_change():
    secret = signing.new_secret()
    body = signing.encode_body({"type": "case.closed", "id": "e1", "timestamp": "2026-03-01T09:00:00Z",
                                "data": {"id": "c1", "stage": "closed"}})
    now = int(time.time())
    headers = signing.headers([secret], msg_id="msg_1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers)["data"]["stage"] == "closed"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"closed", b"opened"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


@pytest.fixture
def ctx(app, session, factories, monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))])
    with app.app_context():
        align_cursor(session)
        yield session
    visibility.unregister(TEST_RESOURCE)


@pytest.mark.parametrize(("rotated_ago", "old_still_valid"), [(timedelta(hours=23), True),
                                                           (timedelta(hours=25), False)])
def test_both_secrets_sign_during_the_overlap_only_the_new_one_after(ctx, factories, rotated_ago,
                                                                    old_still_valid):
    from referral_api.db import database, utcnow

    org = factories.OrganisationFactory()
    visibility.register(TEST_RESOURCE, lambda session, rid: {org.id})
    sub, old = services.create(ctx, actor=Actor(org.id), url="https://hooks.partner.example/in", events=[],
                               allow_http_loopback=False)
    stored = ctx.get(WebhookSubscription, sub.id).secret_ciphertext
    assert stored and old.encode() not in stored and old[6:].encode() not in stored  # encrypted at rest
    _, new = services.rotate_secret(ctx, actor=Actor(org.id), subscription_id=sub.id, overlap_hours=24,
                                    now=utcnow() - rotated_ago)
    assert new != old
    # The real clock: the library refuses timestamps more than five minutes from now.
    sender = FakeSender()
    worker = Worker(database().sessionmaker, worker_id="w", claim_seconds=60, allow_http_loopback=False,
                    send=sender, rng=random.Random(1))
    publish(ctx)
    assert worker.step() == 1
    (sent,) = sender.sent
    assert sent["headers"]["webhook-signature"].count("v1,") == (2 if old_still_valid else 1)
    payload = Webhook(new).verify(sent["body"], sent["headers"])
    assert set(payload) == {"type", "id", "timestamp", "data"} and set(payload["data"]) <= THIN_KEYS
    assert payload["id"] == sent["headers"]["webhook-id"]
    if old_still_valid:
        assert Webhook(old).verify(sent["body"], sent["headers"]) == payload
    else:
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(sent["body"], sent["headers"])
    assert json.loads(sent["body"]) == payload

"""/api/v1/webhooks with real tokens: own organisation only, secret shown once, rotation, ping,
deliveries with their attempts, redelivery, If-Match, Idempotency-Key, audit events."""

from __future__ import annotations

import base64
import json
import random
import socket
import uuid

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.db import database
from referral_api.idempotency import IdempotencyKey
from referral_api.organisations.models import OrganisationKind
from referral_api.webhooks import transport
from referral_api.webhooks.worker import Worker
from tests import oauth_helpers as h
from tests.webhook_helpers import FakeSender, align_cursor

URL = "https://hooks.partner.example/in"


@pytest.fixture(autouse=True)
def _dns(monkeypatch):
    """Names resolve from a table: the partner's receiver is public, the other one private."""
    table = {"hooks.partner.example": "93.184.215.14", "intranet.partner.example": "10.1.2.3"}

    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _token(client, session, org=None, scopes="webhooks:manage"):
    org = org or h.organisation(session, OrganisationKind.EMBASSY)
    c, secret = h.secret_client(session, org, scopes=scopes)
    body = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                       headers=h.basic(c.client_id, secret)).get_json()
    return org, h.bearer(body["access_token"])


@pytest.fixture
def partner(client, session):
    return _token(client, session)


def _create(client, headers, **body):
    return client.post("/api/v1/webhooks", json={"url": URL, **body}, headers=headers)


def _actions(session) -> list[str]:
    return list(session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action.like("webhooks:%"))
                                .order_by(AuditEvent.seq)))


def test_create_shows_the_secret_once_and_read_never(client, session, partner):
    _org, headers = partner
    created = _create(client, headers, events=["case.closed", "referral.accepted"])
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["case.closed", "referral.accepted"]
    assert created.headers["Location"] == f"/api/v1/webhooks/{body['id']}"
    read = client.get(f"/api/v1/webhooks/{body['id']}", headers=headers)
    assert read.status_code == 200 and "secret" not in read.get_json() and read.headers["ETag"]
    listed = client.get("/api/v1/webhooks", headers=headers).get_json()
    assert [s["id"] for s in listed["items"]] == [body["id"]] and "secret" not in listed["items"][0]
    assert body["secret"].encode() not in b"".join(
        r or b"" for r in session.scalars(sa.text("SELECT secret FROM webhook_subscriptions")))
    assert _actions(session) == ["webhooks:subscription:create"]


def test_an_idempotent_retry_replays_without_the_secret(client, session, partner):
    _org, headers = partner
    first = _create(client, {**headers, "Idempotency-Key": "k-1"})
    again = _create(client, {**headers, "Idempotency-Key": "k-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == {**first.get_json(), "secret": None}
    stored = [str(value) for row in session.execute(sa.select(IdempotencyKey.__table__)) for value in row]
    assert stored and all(first.get_json()["secret"] not in s for s in stored)
    assert len(client.get("/api/v1/webhooks", headers=headers).get_json()["items"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://hooks.partner.example/in"}, "url"),
    ({"url": "https://10.0.0.1/in"}, "url"),
    ({"url": "https://169.254.169.254/latest"}, "url"),
    ({"url": "https://intranet.partner.example/in"}, "url"),
    ({"url": "https://hooks.partner.example/in", "events": ["case.exploded"]}, "events.0"),
    ({"url": "https://hooks.partner.example/in", "events": ["webhook.ping"]}, "events.0"),
    ({"url": "https://hooks.partner.example/in", "active": False}, "active"),
    ({}, "url"),
])
def test_invalid_subscriptions_are_422_naming_the_field(client, partner, body, field):
    _org, headers = partner
    response = client.post("/api/v1/webhooks", json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_another_organisations_subscription_is_404_everywhere(client, session, partner):
    _org, headers = partner
    sub = _create(client, headers).get_json()
    _other, other = _token(client, session)
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/rotate-secret"),
                         ("post", "/ping"), ("get", "/deliveries")]:
        kwargs = {"json": {"active": False}} if method == "patch" else {}
        response = getattr(client, method)(f"/api/v1/webhooks/{sub['id']}{path}", headers=other, **kwargs)
        assert response.status_code == 404, (method, path)
    assert client.get("/api/v1/webhooks", headers=other).get_json()["items"] == []
    assert client.get(f"/api/v1/webhooks/{uuid.uuid4()}", headers=headers).status_code == 404


def test_the_scope_is_needed(client, session):
    _org, headers = _token(client, session, scopes="cases:read")
    response = client.get("/api/v1/webhooks", headers=headers)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert client.get("/api/v1/webhooks").status_code == 401


def test_patch_with_if_match_pause_resume_and_delete(client, session, partner):
    _org, headers = partner
    sub = _create(client, headers).get_json()
    path = f"/api/v1/webhooks/{sub['id']}"
    etag = client.get(path, headers=headers).headers["ETag"]
    paused = client.patch(path, json={"active": False}, headers={**headers, "If-Match": etag})
    assert paused.status_code == 200
    assert (paused.get_json()["active"], paused.get_json()["disabled_reason"]) == (False, "by_owner")
    stale = client.patch(path, json={"active": True}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    assert client.patch(path, json={}, headers=headers).status_code == 422
    assert client.patch(path, json={"url": "https://10.0.0.1/"}, headers=headers).status_code == 422
    resumed = client.patch(path, json={"active": True, "events": ["case.closed"]}, headers=headers).get_json()
    assert resumed["active"] and resumed["disabled_reason"] is None and resumed["events"] == ["case.closed"]
    assert client.delete(path, headers={**headers, "If-Match": etag}).status_code == 412
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404
    assert _actions(session) == ["webhooks:subscription:create", "webhooks:subscription:update",
                                 "webhooks:subscription:update", "webhooks:subscription:delete"]


def test_rotate_ping_deliveries_and_redeliver(app, client, session, partner):
    from standardwebhooks import Webhook

    _org, headers = partner
    with app.app_context():
        align_cursor(session)
    sub = _create(client, headers).get_json()
    path = f"/api/v1/webhooks/{sub['id']}"
    rotated = client.post(f"{path}/rotate-secret", headers=headers)
    assert rotated.status_code == 200
    new = rotated.get_json()["secret"]
    assert new.startswith("whsec_") and new != sub["secret"]
    assert rotated.get_json()["previous_secret_expires_at"]

    ping = client.post(f"{path}/ping", headers=headers)
    assert ping.status_code == 202
    webhook_id = ping.get_json()["webhook_id"]
    sender = FakeSender([transport.Outcome(503, 12, error="HTTP 503", body="busy"),
                         transport.Outcome(204, 8)])
    worker = Worker(database(app).sessionmaker, worker_id="w", claim_seconds=60, allow_http_loopback=False,
                    send=sender, rng=random.Random(3))
    with app.app_context():
        assert worker.step() == 1
    sent = sender.sent[0]
    assert sent["url"] == URL and sent["headers"]["webhook-id"] == webhook_id
    for secret in (sub["secret"], new):  # the overlap: both verify
        assert Webhook(secret).verify(sent["body"], sent["headers"])["type"] == "webhook.ping"

    page = client.get(f"{path}/deliveries", headers=headers).get_json()
    (d,) = page["items"]
    assert (d["webhook_id"], d["event_type"], d["status"], d["attempt_count"]) == (webhook_id, "webhook.ping",
                                                                                  "pending", 1)
    (attempt,) = d["attempts"]
    assert (attempt["status_code"], attempt["duration_ms"], attempt["error"], attempt["response_body"]) == (
        503, 12, "HTTP 503", "busy")
    assert attempt["attempted_at"]
    assert client.post(f"/api/v1/webhook-deliveries/{d['id']}/redeliver", headers=headers).status_code == 409

    _other, other = _token(client, session)
    assert client.post(f"/api/v1/webhook-deliveries/{d['id']}/redeliver", headers=other).status_code == 404
    unknown = f"/api/v1/webhook-deliveries/{uuid.uuid4()}/redeliver"
    assert client.post(unknown, headers=headers).status_code == 404
    assert client.get(f"{path}/deliveries?cursor=broken", headers=headers).status_code == 422

    assert "webhooks:secret:rotate" in _actions(session) and "webhooks:subscription:ping" in _actions(session)


def test_lists_page_with_a_cursor(client, session, partner):
    _org, headers = partner
    ids = [_create(client, headers).get_json()["id"] for _ in range(3)]
    first = client.get("/api/v1/webhooks?limit=2", headers=headers).get_json()
    assert first["next_cursor"] and len(first["items"]) == 2
    second = client.get(f"/api/v1/webhooks?limit=2&cursor={first['next_cursor']}", headers=headers).get_json()
    assert second["next_cursor"] is None
    assert sorted(s["id"] for s in first["items"] + second["items"]) == sorted(ids)
    assert client.get("/api/v1/webhooks?cursor=WyJ4IiwieSJd", headers=headers).status_code == 422


ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(("listing", "values"), [
    ("subscriptions", ["2026-01-01T00:00:00", ZERO]),  # no time zone
    ("subscriptions", ["0001-01-01T00:00:00+05:00", ZERO]),  # before year 1 once in UTC
    ("subscriptions", ["9999-12-31T23:59:59-05:00", ZERO]),  # after year 9999 once in UTC
    ("subscriptions", [20260101, ZERO]),  # not a string
    ("deliveries", [10 ** 30]),  # beyond any integer column
    ("deliveries", [2 ** 63]),
    ("deliveries", [-(2 ** 63) - 1]),
    ("deliveries", [True]),
])
def test_a_forged_cursor_is_a_422_on_cursor(client, partner, listing, values):
    _org, headers = partner
    created = _create(client, headers).get_json()
    path = "/api/v1/webhooks" + ("" if listing == "subscriptions" else f"/{created['id']}/deliveries")
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    answer = client.get(f"{path}?cursor={cursor}", headers=headers)
    assert answer.status_code == 422, answer.get_json()
    assert answer.content_type == "application/problem+json"
    assert answer.get_json()["errors"] == {"cursor": ["not a cursor this list gave out"]}


def test_a_cursor_at_the_edges_of_the_ranges_is_a_page(client, partner):
    _org, headers = partner
    created = _create(client, headers).get_json()
    for path, values in [("/api/v1/webhooks", ["2026-01-01T05:00:00+05:00", ZERO]),
                         (f"/api/v1/webhooks/{created['id']}/deliveries", [2 ** 63 - 1])]:
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
        assert client.get(f"{path}?cursor={cursor}", headers=headers).status_code == 200, path

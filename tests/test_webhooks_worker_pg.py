"""PostgreSQL: the receiver is called with no transaction open and no row locked (claim, send, record)."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.db import database
from referral_api.organisations import services as org_services
from referral_api.organisations.models import OrganisationKind
from referral_api.webhooks import services, transport, visibility
from referral_api.webhooks.models import DeliveryStatus, WebhookDelivery
from referral_api.webhooks.worker import Worker
from tests.conftest import throwaway_database
from tests.webhook_helpers import TEST_RESOURCE, Actor, publish


@pytest.mark.postgres_only
def test_the_http_call_holds_no_transaction_and_no_lock(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))])
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path)})
        db = database(app)
        try:
            dbmigrate.upgrade(db)
            with app.app_context():
                session = db.sessionmaker()
                org = org_services.create(session, name="Audience", kind=OrganisationKind.MGEC, country="MN")
                services.create(session, actor=Actor(org.id), url="https://hooks.partner.example/in",
                                events=[], allow_http_loopback=False)
                visibility.register(TEST_RESOURCE, lambda s, rid: {org.id})
                publish(session)
                session.close()
                seen = {}

                def send(url, **kwargs):
                    # Another connection may lock the delivery and the fan-out cursor right now, and no
                    # backend but ours is "idle in transaction".
                    with db.engine.connect() as other, other.begin():
                        other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                        seen["delivery"] = other.execute(sa.text(
                            "SELECT status FROM webhook_deliveries FOR UPDATE NOWAIT")).scalar_one()
                        other.execute(sa.text("SELECT 1 FROM webhook_cursors FOR UPDATE NOWAIT"))
                        seen["idle_in_transaction"] = other.scalar(sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"))
                    return transport.Outcome(200, 4)

                worker = Worker(db.sessionmaker, worker_id="w", claim_seconds=60, allow_http_loopback=False,
                                send=send)
                assert worker.step() == 1
                assert seen == {"delivery": "pending", "idle_in_transaction": 0}
                with db.sessionmaker() as check:
                    assert check.scalar(sa.select(WebhookDelivery.status)) is DeliveryStatus.SUCCEEDED
        finally:
            visibility.unregister(TEST_RESOURCE)
            db.engine.dispose()

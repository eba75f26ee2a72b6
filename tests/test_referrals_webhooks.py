"""Referral events reach, by webhook, only the organisations that may see the referral."""

from __future__ import annotations

import sqlalchemy as sa

from referral_api.db import utcnow
from referral_api.webhooks import fanout
from referral_api.webhooks import services as webhook_services
from referral_api.webhooks.models import WebhookDelivery
from tests.referral_data import referral_body
from tests.webhook_helpers import Actor, align_cursor


def test_referral_events_fan_out_to_mgec_and_the_submitter_only(app, client, world, session):
    with app.app_context():
        _fan_out_and_count(app, client, world, session)


def _fan_out_and_count(app, client, world, session):
    align_cursor(session)
    subs = {}
    for key in ("mgec", "police", "embassy", "iom"):
        sub, _secret = webhook_services.create(
            session,
            actor=Actor(organisation_id=world.orgs[key].id),
            url="http://127.0.0.1:9/hook",
            events=[],
            allow_http_loopback=True,
        )
        subs[key] = sub.id
    rid = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police")).get_json()[
        "id"
    ]
    assert (
        client.post(
            f"/api/v1/referrals/{rid}/accept", json={}, headers=world.headers("coordinator")
        ).status_code
        == 200
    )
    fanout.fan_out(session, now=utcnow())
    session.commit()
    got = {
        key: session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub_id)
        )
        for key, sub_id in subs.items()
    }
    assert got == {"mgec": 2, "police": 2, "embassy": 0, "iom": 0}

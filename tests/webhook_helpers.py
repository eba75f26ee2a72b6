"""Shared helpers of the webhook tests: an actor stub, a fixed clock, fake senders, cursor alignment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from referral_api import events
from referral_api.webhooks import fanout, transport
from referral_api.webhooks.models import WebhookCursor

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TEST_RESOURCE = "test_record"


@dataclass
class Actor:
    organisation_id: uuid.UUID
    client_id: str | None = "test-client"
    user_id: str | None = None


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class FakeSender:
    """Answers each POST with the next scripted outcome (the last one repeats); records what was sent."""

    script: list[transport.Outcome] = field(default_factory=lambda: [transport.Outcome(200, 5)])
    sent: list[dict] = field(default_factory=list)

    def __call__(self, url: str, *, body: bytes, headers: dict[str, str], allow_http_loopback: bool):
        self.sent.append({"url": url, "body": body, "headers": headers})
        index = min(len(self.sent) - 1, len(self.script) - 1)
        return self.script[index]


def align_cursor(session) -> None:
    """Start fan-out after every event so far (PostgreSQL sequences skip numbers of rolled-back tests)."""
    marker = events.publish(session, events.EventType.WEBHOOK_PING, resource_type="marker",
                            resource_id=uuid.uuid4(), data={})
    session.flush()  # the marker's number is the cursor's new position
    cursor = session.get(WebhookCursor, fanout.CURSOR)
    cursor.last_seq = marker.seq
    cursor.gap_since = None
    session.commit()


def publish(session, type_=events.EventType.CASE_STAGE_CHANGED, *, resource_type=TEST_RESOURCE,
            resource_id=None, stage="in_transit"):
    event = events.publish(session, type_, resource_type=resource_type,
                           resource_id=resource_id or uuid.uuid4(),
                           data={"stage": stage, "reference": "CASE-2026-000001"})
    session.commit()
    return event

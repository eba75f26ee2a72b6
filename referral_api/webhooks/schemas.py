"""What comes in to /api/v1/webhooks and what the subscribing organisation is shown (never a secret,
except once: at creation and at rotation)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate, validates_schema

from ..events import EventType
from ..outbound import MAX_URL_LENGTH

SUBSCRIBABLE = sorted(e.value for e in EventType if e is not EventType.WEBHOOK_PING)
_EVENTS_HELP = "event types to receive; empty or left out: all of them"


def _events_field(**kwargs) -> ma.fields.List:
    return ma.fields.List(ma.fields.String(validate=validate.OneOf(SUBSCRIBABLE)),
                          validate=validate.Length(max=len(SUBSCRIBABLE)),
                          metadata={"description": _EVENTS_HELP}, **kwargs)


class WebhookInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    url = ma.fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL_LENGTH),
                           metadata={"description": "https URL of your receiver",
                                     "example": "https://hooks.example.org/mgec"})
    events = _events_field(load_default=list)


class WebhookPatchSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    url = ma.fields.String(validate=validate.Length(min=1, max=MAX_URL_LENGTH))
    events = _events_field()
    active = ma.fields.Boolean(
        metadata={"description": "false pauses deliveries; true resumes and clears flags"})

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("give at least one of url, events, active", field_name="body")


class WebhookSchema(ma.Schema):
    id = ma.fields.UUID()
    url = ma.fields.String()
    events = ma.fields.List(ma.fields.String(), metadata={"description": "empty: all event types"})
    active = ma.fields.Boolean()
    disabled_reason = ma.fields.String(
        allow_none=True, metadata={"description": "gone (the receiver said 410) or by_owner"})
    flagged_reason = ma.fields.String(
        allow_none=True, metadata={"description": "delivery_failed: a delivery used up every attempt"})
    flagged_at = ma.fields.AwareDateTime(allow_none=True)
    previous_secret_expires_at = ma.fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "until when the previous secret also signs (rotation overlap)"})
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


class WebhookWithSecretSchema(WebhookSchema):
    secret = ma.fields.String(allow_none=True, metadata={
        "description": "whsec_...: shown this once, keep it safe; null in the replay of an Idempotency-Key "
                       "(the secret is never stored in clear: rotate for a new one)"})


class WebhookPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WebhookSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AttemptSchema(ma.Schema):
    attempted_at = ma.fields.AwareDateTime()
    status_code = ma.fields.Integer(allow_none=True, metadata={"description": "none when no answer came"})
    duration_ms = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    response_body = ma.fields.String(allow_none=True, metadata={"description": "the answer's first 4 KiB"})


class DeliverySchema(ma.Schema):
    id = ma.fields.UUID()
    webhook_id = ma.fields.UUID(attribute="event.id", metadata={"description": "the webhook-id header"})
    event_type = ma.fields.String(attribute="event.type")
    status = ma.fields.String(metadata={"description": "pending, succeeded or failed"})
    attempt_count = ma.fields.Integer()
    next_attempt_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    completed_at = ma.fields.AwareDateTime(allow_none=True)
    attempts = ma.fields.List(ma.fields.Nested(AttemptSchema))


class DeliveryPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeliverySchema))
    next_cursor = ma.fields.String(allow_none=True)


class PingSchema(ma.Schema):
    webhook_id = ma.fields.UUID(metadata={"description": "the webhook-id the ping will carry"})

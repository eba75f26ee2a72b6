"""A subscription and its deliveries as their organisation sees them, and the ETag of a subscription."""

from __future__ import annotations

from typing import Any

from ..http import etag_of
from .models import WebhookDelivery, WebhookSubscription
from .schemas import DeliverySchema, WebhookSchema

_sub = WebhookSchema()
_delivery = DeliverySchema()


def document(sub: WebhookSubscription, *, secret: str | None = None) -> dict[str, Any]:
    """The subscription; with `secret` only right after creation or rotation."""
    doc = _sub.dump(sub)
    if secret is not None:
        doc["secret"] = secret  # the shape of WebhookWithSecretSchema
    return doc


def etag(sub: WebhookSubscription) -> str:
    return etag_of(_sub.dump(sub))


def delivery_document(delivery: WebhookDelivery) -> dict[str, Any]:
    return _delivery.dump(delivery)

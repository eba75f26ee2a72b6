"""Webhook verification (Standard Webhooks; needs the `webhooks` extra: standardwebhooks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class InvalidWebhook(Exception):
    """The request is not a webhook signed with this secret (or it is too old or too new)."""


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str) -> dict[str, Any]:
    """The event of a webhook request whose `webhook-id`, `webhook-timestamp` and `webhook-signature`
    check out against `secret` (the `whsec_...` of the subscription); else InvalidWebhook."""
    try:
        from standardwebhooks import Webhook
        from standardwebhooks.webhooks import WebhookVerificationError
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError('verify_webhook needs the webhooks extra: pip install "mgec-referrals[webhooks]"') \
            from exc
    lowered = {k.lower(): v for k, v in headers.items()}
    payload = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        return Webhook(secret).verify(payload, lowered)
    except WebhookVerificationError as exc:
        raise InvalidWebhook(str(exc)) from None

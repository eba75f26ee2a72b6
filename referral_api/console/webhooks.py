"""Partners' officers: their organisation's webhook subscriptions, through webhooks/services.py.

A new subscription's signing secret, and a rotated one, are shown once on the answer to the POST.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, redirect, request, url_for

from ..access import Scope
from ..db import get_session
from ..errors import Conflict, InvalidPayload
from ..webhooks import services
from ..webhooks.schemas import SUBSCRIBABLE, WebhookInSchema
from .forms import field_errors, load_form
from .shell import actor, bp, page, render

RECENT_DELIVERIES = 10


def _settings() -> Any:
    return current_app.config["SETTINGS"]


def webhooks_page(
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    secret: str | None = None,
) -> Response:
    """The subscriptions, each with its latest deliveries (status, attempts, last response code)."""
    session, who = get_session(), actor()
    subscriptions, _next = services.list_for(session, actor=who, limit=50, cursor=None)
    rows = []
    for sub in subscriptions:
        deliveries, _more = services.list_deliveries(
            session, actor=who, subscription_id=sub.id, limit=RECENT_DELIVERIES, cursor=None
        )
        rows.append({"sub": sub, "deliveries": deliveries})
    return render(
        "console/partner_webhooks.html",
        status=status,
        active="partner_webhooks",
        rows=rows,
        events=sorted(SUBSCRIBABLE),
        errors=errors or {},
        form=form or {},
        secret=secret,
    )


@bp.route("/partner/webhooks")
@page(Scope.WEBHOOKS_MANAGE, mgec=False, partner=True)
def partner_webhooks() -> Response:
    """The organisation's subscriptions and their recent deliveries."""
    return webhooks_page()


@bp.route("/partner/webhooks", methods=["POST"])
@page(Scope.WEBHOOKS_MANAGE, mgec=False, partner=True)
def partner_webhook_create() -> Response:
    """Subscribe a receiver URL (the API's schema and service); its secret is shown this once."""
    session = get_session()
    data = {
        "url": request.form.get("url", "").strip(),
        "events": [e for e in request.form.getlist("events") if e],
    }
    try:
        loaded = load_form(WebhookInSchema(), data)
        _sub, secret = services.create(
            session,
            actor=actor(),
            url=loaded["url"],
            events=loaded["events"],
            allow_http_loopback=_settings().webhooks_allow_http_loopback,
        )
    except (InvalidPayload, Conflict) as refused:
        session.rollback()
        return webhooks_page(status=refused.status, errors=field_errors(refused.errors), form=data)
    return webhooks_page(status=201, secret=secret)


@bp.route("/partner/webhooks/<uuid:subscription_id>/rotate", methods=["POST"])
@page(Scope.WEBHOOKS_MANAGE, mgec=False, partner=True)
def partner_webhook_rotate(subscription_id: uuid.UUID) -> Response:
    """A new signing secret (shown once); the old one keeps signing for the overlap."""
    _sub, secret = services.rotate_secret(
        get_session(),
        actor=actor(),
        subscription_id=subscription_id,
        overlap_hours=_settings().webhook_secret_overlap_hours,
    )
    return webhooks_page(secret=secret)


@bp.route("/partner/webhooks/deliveries/<uuid:delivery_id>/redeliver", methods=["POST"])
@page(Scope.WEBHOOKS_MANAGE, mgec=False, partner=True)
def partner_webhook_redeliver(delivery_id: uuid.UUID) -> Response:
    """Send a delivery again (same webhook-id)."""
    services.redeliver(get_session(), actor=actor(), delivery_id=delivery_id)
    return redirect(url_for("console.partner_webhooks"), code=303)

"""`/api/v1/webhooks` and `/api/v1/webhook-deliveries`: HTTP in, one service call, HTTP out.

Scope `webhooks:manage`; an organisation sees and changes only its own subscriptions (another's is 404).
"""

from __future__ import annotations

import uuid

from flask import Response, current_app, request
from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import doc_model, error_docs, load, query_args, with_etag
from ..idempotency import idempotent
from ..paging import PageArgs
from . import services
from .schemas import (
    DeliveryPageSchema,
    DeliverySchema,
    PingSchema,
    WebhookInSchema,
    WebhookPageSchema,
    WebhookPatchSchema,
    WebhookSchema,
    WebhookWithSecretSchema,
)
from .views import delivery_document, document, etag

ns = Namespace("webhooks", description="Your organisation's webhook subscriptions and their deliveries",
               path="/api/v1")

_in = doc_model(ns, WebhookInSchema, "WebhookIn")
_patch = doc_model(ns, WebhookPatchSchema, "WebhookPatch")
_out = doc_model(ns, WebhookSchema, "Webhook")
_with_secret = doc_model(ns, WebhookWithSecretSchema, "WebhookWithSecret")
_page = doc_model(ns, WebhookPageSchema, "WebhookPage")
_delivery = doc_model(ns, DeliverySchema, "WebhookDelivery")
_deliveries = doc_model(ns, DeliveryPageSchema, "WebhookDeliveryPage")
_ping = doc_model(ns, PingSchema, "WebhookPing")

_ERRORS = {
    401: "No or bad token",
    403: "The token lacks webhooks:manage",
    404: "No such subscription or delivery, or not your organisation's",
    409: "Not possible in the current state",
    412: "If-Match does not match the current version",
    422: "Invalid fields (a receiver URL that is not https or not public is refused on `url`)",
}
_PAGE_ARGS = {"limit": "1 to 200 (default 50)", "cursor": "next_cursor of a page"}
_IDEMPOTENCY = {"Idempotency-Key": {"in": "header", "type": "string", "description": "retry safely"}}
_IF_MATCH = {"If-Match": {"in": "header", "type": "string"}}


documents = error_docs(ns, _ERRORS)


def _settings():
    return current_app.config["SETTINGS"]


def _json(payload, status: int) -> Response:
    return with_etag(payload, status=status)


def _without_secret(subscription_id: str) -> Response:
    """A replay of an answer that showed a secret: the subscription now, `secret` null (shown once only)."""
    sub = services.get(get_session(), actor=current_actor(), subscription_id=uuid.UUID(subscription_id))
    return with_etag({**document(sub), "secret": None}, etag=etag(sub))


@ns.route("/webhooks")
class WebhookList(Resource):
    @ns.doc(params=_PAGE_ARGS)
    @ns.response(200, "A page of your organisation's subscriptions, oldest first", _page)
    @documents(401, 403, 422)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def get(self):
        """List your organisation's webhook subscriptions."""
        args = query_args(PageArgs())
        items, next_cursor = services.list_for(get_session(), actor=current_actor(), limit=args["limit"],
                                               cursor=args["cursor"])
        return {"items": [document(s) for s in items], "next_cursor": next_cursor}

    @ns.expect(_in)
    @ns.doc(params=_IDEMPOTENCY)
    @ns.response(201, "Created; the signing secret is shown this once", _with_secret)
    @documents(401, 403, 422)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def post(self):
        """Subscribe a receiver URL to events; answers the whsec_ signing secret, once."""
        actor, session = current_actor(), get_session()
        data = load(WebhookInSchema())

        def handler():
            sub, secret = services.create(session, actor=actor, url=data["url"], events=data["events"],
                                          allow_http_loopback=_settings().webhooks_allow_http_loopback)
            response = _json(document(sub, secret=secret), 201)
            response.headers["Location"] = f"/api/v1/webhooks/{sub.id}"
            return sub.id, response

        return idempotent(session, actor=actor, handler=handler, replay=_without_secret)


@ns.route("/webhooks/<uuid:subscription_id>")
@ns.param("subscription_id", "the subscription's id")
class WebhookItem(Resource):
    @ns.response(200, "The subscription (never its secret)", _out)
    @documents(401, 403, 404)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def get(self, subscription_id: uuid.UUID):
        """Read one subscription."""
        sub = services.get(get_session(), actor=current_actor(), subscription_id=subscription_id)
        return with_etag(document(sub), etag=etag(sub))

    @ns.expect(_patch)
    @ns.doc(params=_IF_MATCH)
    @ns.response(200, "Changed", _out)
    @documents(401, 403, 404, 412, 422)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def patch(self, subscription_id: uuid.UUID):
        """Change the URL, the event types, or pause (active false) and resume (true) deliveries."""
        changes = load(WebhookPatchSchema())
        sub = services.update(get_session(), actor=current_actor(), subscription_id=subscription_id,
                              changes=changes, allow_http_loopback=_settings().webhooks_allow_http_loopback,
                              if_match=request.headers.get("If-Match"))
        return with_etag(document(sub), etag=etag(sub))

    @ns.doc(params=_IF_MATCH)
    @ns.response(204, "Deleted, with its deliveries; its secrets are erased")
    @documents(401, 403, 404, 412)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def delete(self, subscription_id: uuid.UUID):
        """Delete a subscription."""
        services.delete(get_session(), actor=current_actor(), subscription_id=subscription_id,
                        if_match=request.headers.get("If-Match"))
        return Response(status=204)


@ns.route("/webhooks/<uuid:subscription_id>/rotate-secret")
@ns.param("subscription_id", "the subscription's id")
class WebhookRotate(Resource):
    @ns.doc(params=_IDEMPOTENCY)
    @ns.response(200, "The new secret, shown this once; the old one also signs until "
                      "previous_secret_expires_at", _with_secret)
    @documents(401, 403, 404)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def post(self, subscription_id: uuid.UUID):
        """Rotate the signing secret, keeping the old one valid for the overlap (24 hours by default)."""
        actor, session = current_actor(), get_session()

        def handler():
            sub, secret = services.rotate_secret(session, actor=actor, subscription_id=subscription_id,
                                                 overlap_hours=_settings().webhook_secret_overlap_hours)
            return sub.id, _json(document(sub, secret=secret), 200)

        return idempotent(session, actor=actor, handler=handler, replay=_without_secret)


@ns.route("/webhooks/<uuid:subscription_id>/ping")
@ns.param("subscription_id", "the subscription's id")
class WebhookPing(Resource):
    @ns.doc(params=_IDEMPOTENCY)
    @ns.response(202, "A webhook.ping event is queued for this subscription only", _ping)
    @documents(401, 403, 404, 409)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def post(self, subscription_id: uuid.UUID):
        """Send a signed webhook.ping to the receiver, to test it."""
        actor, session = current_actor(), get_session()

        def handler():
            webhook_id = services.ping(session, actor=actor, subscription_id=subscription_id)
            return webhook_id, _json({"webhook_id": str(webhook_id)}, 202)

        def replay(webhook_id):
            services.get(session, actor=actor, subscription_id=subscription_id)  # still the caller's
            return _json({"webhook_id": webhook_id}, 202)

        return idempotent(session, actor=actor, handler=handler, replay=replay)


@ns.route("/webhooks/<uuid:subscription_id>/deliveries")
@ns.param("subscription_id", "the subscription's id")
class WebhookDeliveries(Resource):
    @ns.doc(params=_PAGE_ARGS)
    @ns.response(200, "Deliveries, newest event first, each with every attempt", _deliveries)
    @documents(401, 403, 404, 422)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def get(self, subscription_id: uuid.UUID):
        """List a subscription's deliveries and their attempts (time, status code, duration, error)."""
        args = query_args(PageArgs())
        items, next_cursor = services.list_deliveries(
            get_session(), actor=current_actor(), subscription_id=subscription_id, limit=args["limit"],
            cursor=args["cursor"])
        return {"items": [delivery_document(d) for d in items], "next_cursor": next_cursor}


@ns.route("/webhook-deliveries/<uuid:delivery_id>/redeliver")
@ns.param("delivery_id", "the delivery's id")
class WebhookRedeliver(Resource):
    @ns.doc(params=_IDEMPOTENCY)
    @ns.response(202, "Queued again, with the same webhook-id, in its place in the subscription's order",
                 _delivery)
    @documents(401, 403, 404, 409)
    @require_scope(Scope.WEBHOOKS_MANAGE)
    def post(self, delivery_id: uuid.UUID):
        """Deliver a succeeded or failed delivery again."""
        actor, session = current_actor(), get_session()

        def handler():
            delivery = services.redeliver(session, actor=actor, delivery_id=delivery_id)
            return delivery.id, _json(delivery_document(delivery), 202)

        def replay(replayed_id):
            delivery = services.get_delivery(session, actor=actor, delivery_id=uuid.UUID(replayed_id))
            return _json(delivery_document(delivery), 202)

        return idempotent(session, actor=actor, handler=handler, replay=replay)

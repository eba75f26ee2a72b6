"""`/api/v1/audit`: the trail and its verification, for MGEC people holding `audit:read`."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import doc_model, query_args
from . import services
from .schemas import AuditEventSchema, AuditPageSchema, AuditQuerySchema, VerifyResultSchema

ns = Namespace("audit", description="The hash-chained audit trail", path="/api/v1/audit")

_page = doc_model(ns, AuditPageSchema, "AuditPage")
_verify = doc_model(ns, VerifyResultSchema, "AuditVerifyResult")
_event = AuditEventSchema()
_result = VerifyResultSchema()
_FILTERS = {
    "actor_id": "a user id or client id", "organisation_id": "UUID", "resource_type": "e.g. referral",
    "resource_id": "the record's id", "action": "part:resource:action", "since": "RFC 3339",
    "until": "RFC 3339", "limit": "1 to 200 (default 50)", "cursor": "next_cursor of a page",
}


@ns.route("")
class AuditList(Resource):
    @ns.doc(params=_FILTERS)
    @ns.response(200, "Events newest first", _page)
    @ns.response(401, "No or bad token")
    @ns.response(403, "The token lacks audit:read")
    @ns.response(422, "Invalid filter")
    @require_scope(Scope.AUDIT_READ)
    def get(self):
        """List audit events, newest first, with filters (keyset pages)."""
        args = query_args(AuditQuerySchema())
        items, next_cursor = services.read_page(get_session(), current_actor(), args)
        return {"items": _event.dump(items, many=True), "next_cursor": next_cursor}


@ns.route("/verify")
class AuditVerify(Resource):
    @ns.response(200, "The result of walking the whole chain", _verify)
    @ns.response(401, "No or bad token")
    @ns.response(403, "The token lacks audit:read")
    @require_scope(Scope.AUDIT_READ)
    def get(self):
        """Verify the whole hash chain now; `ok` is false and names the first bad event when it is broken."""
        return _result.dump(services.verify_as(get_session(), current_actor()))

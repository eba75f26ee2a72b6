"""`/api/v1/referrals`: HTTP in, one service call, HTTP out."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import doc_model, doc_query, error_docs, load, query_args, with_etag
from ..idempotency import idempotent
from . import services
from .schemas import (
    AcceptInSchema,
    InformationInSchema,
    MatchesSchema,
    MatchSchema,
    NoteInSchema,
    ReferralInSchema,
    ReferralListArgs,
    ReferralPageSchema,
    ReferralPartnerSchema,
    ReferralStaffSchema,
    ReferralStatusSchema,
    RejectInSchema,
    RequestInformationInSchema,
)
from .views import document, etag
from .visibility import audience

ns = Namespace(
    "referrals",
    description="Referrals of people identified as victims, and their review",
    path="/api/v1/referrals",
)

_in = doc_model(ns, ReferralInSchema, "ReferralIn")
_staff = doc_model(ns, ReferralStaffSchema, "ReferralStaffView")
doc_model(ns, ReferralPartnerSchema, "ReferralPartnerView")
doc_model(ns, ReferralStatusSchema, "ReferralStatusView")
_page = doc_model(ns, ReferralPageSchema, "ReferralPage")
_matches = doc_model(ns, MatchesSchema, "ReferralMatches")
_accept = doc_model(ns, AcceptInSchema, "ReferralAccept")
_reject = doc_model(ns, RejectInSchema, "ReferralReject")
_questions = doc_model(ns, RequestInformationInSchema, "ReferralQuestions")
_information = doc_model(ns, InformationInSchema, "ReferralInformation")
_note = doc_model(ns, NoteInSchema, "Note")
_match = MatchSchema()

_ERRORS = {
    404: "No such referral, or not yours to see",
    409: "The move is not allowed from the current state (allowed_actions says which are)",
}
_LIST_ARGS = doc_query(ReferralListArgs)


def _answer(referral, seen, status=200, headers=None):
    return with_etag(document(referral, seen), status=status, headers=headers, etag=etag(referral))


def _read(ref):
    """The referral as the caller may see it now (audited when personal): a GET, and a replayed POST."""
    referral, seen = services.read(get_session(), current_actor(), ref=ref)
    return _answer(referral, seen)


documents = error_docs(ns, _ERRORS)


@ns.route("")
class ReferralList(Resource):
    @ns.doc(params=_LIST_ARGS)
    @ns.response(200, "A page of referrals, each in the caller's view", _page)
    @documents(401, 403, 422)
    @require_scope(Scope.REFERRALS_READ)
    def get(self):
        """List the referrals you may see, newest first (keyset pages)."""
        args = query_args(ReferralListArgs())
        items, next_cursor = services.list_for(get_session(), current_actor(), args=args)
        return {"items": [document(r, seen) for r, seen in items], "next_cursor": next_cursor}

    @ns.expect(_in)
    @ns.doc(params={"Idempotency-Key": {"in": "header", "type": "string", "description": "retry safely"}})
    @ns.response(201, "Submitted; Location names the referral", _staff)
    @documents(401, 403, 409, 422)
    @require_scope(Scope.REFERRALS_SUBMIT)
    def post(self):
        """Submit a referral (person, situation, consent); duplicates are looked for at once."""
        actor, session = current_actor(), get_session()
        data = load(ReferralInSchema())

        def handler():
            referral = services.submit(session, actor, data=data)
            return referral.id, _answer(
                referral, audience(actor, referral), 201, {"Location": f"/api/v1/referrals/{referral.id}"}
            )

        return idempotent(session, actor=actor, handler=handler, replay=_read)


@ns.route("/<string:ref>")
@ns.param("ref", "the referral's id or reference (REF-2026-000123)")
class ReferralItem(Resource):
    @ns.response(200, "The referral in the caller's view (staff, partner or status)", _staff)
    @documents(401, 403, 404)
    @require_scope(Scope.REFERRALS_READ)
    def get(self, ref):
        """Read one referral: MGEC staff see it all, the referring partner what it sent, then its status."""
        return _read(ref)


def _move(path, scope, summary, service, schema=None, model=None):
    """Register POST /<ref>/<path>: a move of the state table, idempotent, honouring If-Match."""

    def post(self, ref):
        actor, session = current_actor(), get_session()
        data = load(schema()) if schema else load(NoteInSchema())

        def handler():
            referral = service(session, actor, ref=ref, data=data, if_match=request.headers.get("If-Match"))
            return referral.id, _answer(referral, audience(actor, referral))

        return idempotent(session, actor=actor, handler=handler, replay=_read)

    post.__doc__ = summary
    post = require_scope(scope)(post)
    post = ns.doc(
        params={
            "If-Match": {"in": "header", "type": "string"},
            "Idempotency-Key": {"in": "header", "type": "string"},
        }
    )(post)
    post = ns.response(200, "Moved; the referral in the caller's view", _staff)(post)
    post = documents(401, 403, 404, 409, 412, 422)(post)
    if model is not None:
        post = ns.expect(model)(post)
    resource = type(f"Referral{path.title().replace('-', '')}", (Resource,), {"post": post})
    ns.route(f"/<string:ref>/{path}")(ns.param("ref", "the referral's id or reference")(resource))


def _review(session, actor, *, ref, data, if_match=None):
    return services.review(session, actor, ref=ref, if_match=if_match)


_move(
    "review", Scope.REFERRALS_REVIEW, "A coordinator takes the referral (under_review).", _review, model=_note
)
_move(
    "accept",
    Scope.REFERRALS_REVIEW,
    "Accept: open a case, or link to an existing case (case_id).",
    services.accept,
    AcceptInSchema,
    _accept,
)
_move(
    "reject",
    Scope.REFERRALS_REVIEW,
    "Reject with a reason code and a note.",
    services.reject,
    RejectInSchema,
    _reject,
)
_move(
    "request-information",
    Scope.REFERRALS_REVIEW,
    "Ask the referring partner questions.",
    services.request_information,
    RequestInformationInSchema,
    _questions,
)
_move(
    "information",
    Scope.REFERRALS_SUBMIT,
    "The referring partner answers or adds facts (back to submitted).",
    services.provide_information,
    InformationInSchema,
    _information,
)
_move(
    "withdraw",
    Scope.REFERRALS_SUBMIT,
    "The referring partner withdraws the referral.",
    services.withdraw,
    NoteInSchema,
    _note,
)


@ns.route("/<string:ref>/matches")
@ns.param("ref", "the referral's id or reference")
class ReferralMatches(Resource):
    @ns.response(200, "Duplicate candidates, best first, each with why it matched", _matches)
    @documents(401, 403, 404)
    @require_scope(Scope.REFERRALS_REVIEW)
    def get(self, ref):
        """Possible duplicates among referrals and cases, found through blind indexes only."""
        found = services.matches(get_session(), current_actor(), ref=ref)
        return {
            "items": [
                _match.dump(
                    {
                        "referral_id": m.referral.id,
                        "reference": m.referral.reference,
                        "status": m.referral.status,
                        "case_id": m.referral.case_id,
                        "score": m.score,
                        "reasons": sorted(m.reasons),
                    }
                )
                for m in found
            ]
        }

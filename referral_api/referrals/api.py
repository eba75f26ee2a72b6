"""`/api/v1/referrals`: HTTP in, one service call, HTTP out."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import arguments, doc_model, doc_query, error_docs, load, query_args, response, with_etag
from ..idempotency import idempotent
from . import services
from .schemas import (
    AcceptInSchema,
    InformationInSchema,
    MatchesSchema,
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

_ERRORS = {
    404: "No such referral, or not yours to see",
    409: "The move is not allowed from the current state (allowed_actions says which are)",
    410: "The referral was erased (its personal data crypto-shredded): no move is made on it",
}
_LIST_ARGS = doc_query(ReferralListArgs)
# One instance for every submission: a schema keeps no state between loads, and building one (its
# nested schemas and copied fields) for each request costs more than the load itself.
_SUBMISSION = ReferralInSchema()


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
        data = load(_SUBMISSION)

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


def _moved(service, ref, data):
    """One move of the state table: idempotent, honouring If-Match, answered in the caller's view."""
    actor, session = current_actor(), get_session()

    def handler():
        referral = service(session, actor, ref=ref, data=data, if_match=request.headers.get("If-Match"))
        return referral.id, _answer(referral, audience(actor, referral))

    return idempotent(session, actor=actor, handler=handler, replay=_read)


def _move_docs(fn):
    """What every move answers: If-Match and Idempotency-Key, the referral in the caller's view, errors."""
    fn = ns.doc(params={"If-Match": {"in": "header", "type": "string"},
                        "Idempotency-Key": {"in": "header", "type": "string"}})(fn)
    fn = ns.response(200, "Moved; the referral in the caller's view", _staff)(fn)
    return documents(401, 403, 404, 409, 410, 412, 422)(fn)


_REF = "the referral's id or reference"


@ns.route("/<string:ref>/review")
@ns.param("ref", _REF)
class ReferralReview(Resource):
    @_move_docs
    @require_scope(Scope.REFERRALS_REVIEW)
    @arguments(ns, NoteInSchema, "Note")
    def post(self, ref, data):
        """A coordinator takes the referral (under_review)."""
        return _moved(_review, ref, data)


def _review(session, actor, *, ref, data, if_match=None):
    return services.review(session, actor, ref=ref, if_match=if_match)


@ns.route("/<string:ref>/accept")
@ns.param("ref", _REF)
class ReferralAccept(Resource):
    @_move_docs
    @require_scope(Scope.REFERRALS_REVIEW)
    @arguments(ns, AcceptInSchema, "ReferralAccept")
    def post(self, ref, data):
        """Accept: open a case, or link to an existing case (case_id)."""
        return _moved(services.accept, ref, data)


@ns.route("/<string:ref>/reject")
@ns.param("ref", _REF)
class ReferralReject(Resource):
    @_move_docs
    @require_scope(Scope.REFERRALS_REVIEW)
    @arguments(ns, RejectInSchema, "ReferralReject")
    def post(self, ref, data):
        """Reject with a reason code and a note."""
        return _moved(services.reject, ref, data)


@ns.route("/<string:ref>/request-information")
@ns.param("ref", _REF)
class ReferralRequestInformation(Resource):
    @_move_docs
    @require_scope(Scope.REFERRALS_REVIEW)
    @arguments(ns, RequestInformationInSchema, "ReferralQuestions")
    def post(self, ref, data):
        """Ask the referring partner questions."""
        return _moved(services.request_information, ref, data)


@ns.route("/<string:ref>/information")
@ns.param("ref", _REF)
class ReferralInformation(Resource):
    @_move_docs
    @require_scope(Scope.REFERRALS_SUBMIT)
    @arguments(ns, InformationInSchema, "ReferralInformation")
    def post(self, ref, data):
        """The referring partner answers or adds facts (back to submitted)."""
        return _moved(services.provide_information, ref, data)


@ns.route("/<string:ref>/withdraw")
@ns.param("ref", _REF)
class ReferralWithdraw(Resource):
    @_move_docs
    @require_scope(Scope.REFERRALS_SUBMIT)
    @arguments(ns, NoteInSchema, "Note")
    def post(self, ref, data):
        """The referring partner withdraws the referral."""
        return _moved(services.withdraw, ref, data)


@ns.route("/<string:ref>/matches")
@ns.param("ref", _REF)
class ReferralMatches(Resource):
    @response(ns, 200, "Duplicate candidates, best first, each with why it matched", MatchesSchema,
              "ReferralMatches")
    @documents(401, 403, 404)
    @require_scope(Scope.REFERRALS_REVIEW)
    def get(self, ref):
        """Possible duplicates among referrals and cases, found through blind indexes only."""
        return {"items": services.matches(get_session(), current_actor(), ref=ref)}

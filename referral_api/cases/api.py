"""`/api/v1/cases`, `/api/v1/services`, `/api/v1/shelters`: HTTP in, one service call, HTTP out."""

from __future__ import annotations

from flask import Response, request
from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import arguments, doc_model, error_docs, load, query_args, with_etag
from ..idempotency import idempotent
from . import care, moves, participants, persons, services
from .schemas import (
    CaseListArgs,
    CasePageSchema,
    CaseParticipantViewSchema,
    CaseStaffSchema,
    CaseStatusSchema,
    ConsentChangeInSchema,
    ParticipantInSchema,
    ParticipantListSchema,
    ParticipantSchema,
    ReasonInSchema,
    ResumeInSchema,
    ServiceInSchema,
    ServiceListSchema,
    ServicePatchSchema,
    ServiceSchema,
    StatusArgs,
    TimelineSchema,
    TransitionInSchema,
)
from .views import (
    OMIT,
    case_etag,
    document,
    etag,
    event_document,
    participant_document,
    service_document,
    status_document,
)

ns = Namespace("cases", description="Cases: the way home, stage by stage", path="/api/v1/cases")
services_ns = Namespace("services", description="Services given on a case", path="/api/v1/services")

_staff = doc_model(ns, CaseStaffSchema, "CaseStaffView")
doc_model(ns, CaseParticipantViewSchema, "CaseParticipantView")
_status = doc_model(ns, CaseStatusSchema, "CaseStatus")
_page = doc_model(ns, CasePageSchema, "CasePage")
_timeline = doc_model(ns, TimelineSchema, "CaseTimeline")
_participant_in = doc_model(ns, ParticipantInSchema, "CaseParticipantIn")
_participant = doc_model(ns, ParticipantSchema, "CaseParticipant")
_participants = doc_model(ns, ParticipantListSchema, "CaseParticipants")
_service_in = doc_model(ns, ServiceInSchema, "ServiceIn")
_service = doc_model(ns, ServiceSchema, "Service")
_services = doc_model(ns, ServiceListSchema, "Services")
_service_patch = doc_model(services_ns, ServicePatchSchema, "ServicePatch")
_service_out = doc_model(services_ns, ServiceSchema, "Service")

ERRORS = {
    401: "No or bad token",
    403: "The token lacks the scope, or the action is not your role's",
    404: "No such case, or not yours to see",
    409: "Not allowed in the case's current state (the answer names what is)",
    412: "If-Match does not match the current version",
    422: "Invalid fields",
}
_IF_MATCH = {"If-Match": {"in": "header", "type": "string"}}
IDEMPOTENCY = {"Idempotency-Key": {"in": "header", "type": "string", "description": "retry safely"}}
_REF = "the case's id or reference (CASE-2026-000042)"


_DOCS = {id(n): error_docs(n, ERRORS) for n in (ns, services_ns)}


def documents(namespace, *codes):
    """Document the error answers a route of `namespace` can give."""
    return _DOCS[id(namespace)](*codes)


def _service_answer(service, status=200, headers=None):
    note = care.shows_note(get_session(), current_actor(), service)
    return with_etag(service_document(service, note=note), status=status, headers=headers, etag=etag(service))


def _case(case, seen, role, session, person=OMIT):
    participants = services.participants_of(session, case) if role is None else None
    tag = case_etag(case, seen, role, covered=persons.covered(current_actor(), case))
    return with_etag(document(case, seen, role, participants, person), etag=tag)


def _read(ref):
    """The case as the caller may see it now (audited when personal): a GET, and a replayed write."""
    session = get_session()
    case, seen, role, person = services.read(session, current_actor(), ref)
    return _case(case, seen, role, session, person)


@ns.route("")
class CaseList(Resource):
    @ns.doc(
        params={
            "stage": "a stage",
            "on_hold": "true or false",
            "participant": "an organisation id taking part (MGEC staff; a partner only its own, else 422)",
            "limit": "1 to 200 (default 50)",
            "cursor": "next_cursor of a page",
        }
    )
    @ns.response(200, "A page of cases, each in the caller's view", _page)
    @documents(ns, 401, 403, 422)
    @require_scope(Scope.CASES_READ)
    def get(self):
        """List the cases you may see (MGEC: all; partners: those they take part in), newest first."""
        args = query_args(CaseListArgs())
        items, next_cursor = services.list_for(get_session(), current_actor(), args)
        return {"items": [document(c, seen, role) for c, seen, role in items], "next_cursor": next_cursor}


@ns.route("/status")
class CaseStatusByExternalReference(Resource):
    @ns.doc(
        params={
            "external_reference": {
                "description": "your own case number, as you referred it",
                "required": True,
                "type": "string",
            }
        }
    )
    @ns.response(200, "The status of the case you referred under that number", _status)
    @documents(ns, 401, 403, 404, 422)
    @require_scope(Scope.CASES_STATUS)
    def get(self):
        """Status of a case found by the referring partner's own external_reference (nothing personal)."""
        args = query_args(StatusArgs())
        case = services.status_by_external_reference(
            get_session(), current_actor(), args["external_reference"]
        )
        return with_etag(status_document(case))


@ns.route("/<string:ref>")
@ns.param("ref", _REF)
class CaseItem(Resource):
    @ns.response(200, "The case in the caller's view (staff or participant)", _staff)
    @documents(ns, 401, 403, 404)
    @require_scope(Scope.CASES_READ)
    def get(self, ref):
        """Read one case: MGEC staff see it all, a participant its status, role and its moves."""
        return _read(ref)


@ns.route("/<string:ref>/status")
@ns.param("ref", _REF)
class CaseStatus(Resource):
    @ns.response(200, "Reference, stage, since, on hold and key dates; nothing personal", _status)
    @documents(ns, 401, 403, 404)
    @require_scope(Scope.CASES_STATUS)
    def get(self, ref):
        """The case's status and key dates (MGEC and participants, e.g. an embassy)."""
        case, _seen, _role = services.load(get_session(), current_actor(), ref)
        return with_etag(status_document(case))


@ns.route("/<string:ref>/events")
@ns.param("ref", _REF)
class CaseTimeline(Resource):
    @ns.response(200, "The timeline, in the order things happened; notes for MGEC staff only", _timeline)
    @documents(ns, 401, 403, 404)
    @require_scope(Scope.CASES_READ)
    def get(self, ref):
        """The case's timeline: who, organisation, when it happened, when recorded, from, to, details."""
        found, staff = services.timeline(get_session(), current_actor(), ref)
        return {"items": [event_document(e, staff=staff) for e in found]}


def _written(service, ref, data):
    """One write to the case: idempotent, honouring If-Match, answered in the caller's view."""
    actor, session = current_actor(), get_session()

    def handler():
        case, seen, role = service(session, actor, ref, data, if_match=request.headers.get("If-Match"))
        return case.id, _case(case, seen, role, session)

    return idempotent(session, actor=actor, handler=handler, replay=_read)


def _write_docs(fn):
    """What every write answers: If-Match and Idempotency-Key, the case in the caller's view, errors."""
    fn = ns.doc(params={**_IF_MATCH, **IDEMPOTENCY})(fn)
    fn = ns.response(200, "Done; the case in the caller's view", _staff)(fn)
    return documents(ns, 401, 403, 404, 409, 412, 422)(fn)


@ns.route("/<string:ref>/transitions")
@ns.param("ref", _REF)
class CaseTransitions(Resource):
    @_write_docs
    @require_scope(Scope.CASES_UPDATE)
    @arguments(ns, TransitionInSchema, "CaseTransition")
    def post(self, ref, data):
        """Move the case to another stage, with the details its move records; closing ends a hold."""
        return _written(moves.transition, ref, data)


@ns.route("/<string:ref>/hold")
@ns.param("ref", _REF)
class CaseHold(Resource):
    @_write_docs
    @require_scope(Scope.CASES_UPDATE)
    @arguments(ns, ReasonInSchema, "CaseHold")
    def post(self, ref, data):
        """Put the case on hold without changing its stage (MGEC staff; a closed case: 409)."""
        return _written(moves.hold, ref, data)


@ns.route("/<string:ref>/resume")
@ns.param("ref", _REF)
class CaseResume(Resource):
    @_write_docs
    @require_scope(Scope.CASES_UPDATE)
    @arguments(ns, ResumeInSchema, "CaseResume")
    def post(self, ref, data):
        """Resume a case on hold (MGEC staff; a closed case, whose closing ended its hold: 409)."""
        return _written(moves.resume, ref, data)


@ns.route("/<string:ref>/consent")
@ns.param("ref", _REF)
class CaseConsent(Resource):
    @_write_docs
    @require_scope(Scope.CASES_UPDATE)
    @arguments(ns, ConsentChangeInSchema, "CaseConsentChange")
    def post(self, ref, data):
        """The person's consent changed or was withdrawn (MGEC staff): share_with replaced, views follow at once."""  # noqa: E501  (one line: it is the operation summary)
        return _written(moves.change_consent, ref, data)


@ns.route("/<string:ref>/participants")
@ns.param("ref", _REF)
class CaseParticipants(Resource):
    @ns.response(200, "The organisations taking part, with their roles", _participants)
    @documents(ns, 401, 403, 404)
    @require_scope(Scope.CASES_READ)
    def get(self, ref):
        """List the case's participants (MGEC staff)."""
        found = participants.list_participants(get_session(), current_actor(), ref)
        return {"items": [participant_document(p) for p in found]}

    @ns.expect(_participant_in)
    @ns.doc(params=IDEMPOTENCY)
    @ns.response(201, "Added", _participant)
    @documents(ns, 401, 403, 404, 409, 422)
    @require_scope(Scope.CASES_UPDATE)
    def post(self, ref):
        """Add an organisation to the case with a role (MGEC staff)."""
        actor, session = current_actor(), get_session()
        data = load(ParticipantInSchema())

        def handler():
            participant = participants.add_participant(session, actor, ref, data)
            return participant.organisation_id, with_etag(participant_document(participant), status=201)

        def replay(organisation_id):
            return with_etag(participant_document(
                participants.get_participant(session, actor, ref, organisation_id)))

        return idempotent(session, actor=actor, handler=handler, replay=replay)


@ns.route("/<string:ref>/participants/<string:organisation_id>")
@ns.param("ref", _REF)
@ns.param("organisation_id", "the participant organisation's id")
class CaseParticipantItem(Resource):
    @ns.response(204, "Removed")
    @documents(ns, 401, 403, 404)
    @require_scope(Scope.CASES_UPDATE)
    def delete(self, ref, organisation_id):
        """Remove an organisation from the case (MGEC staff)."""
        participants.remove_participant(get_session(), current_actor(), ref, organisation_id)
        return Response(status=204)


@ns.route("/<string:ref>/services")
@ns.param("ref", _REF)
class CaseServices(Resource):
    @ns.response(200, "The case's services (a service provider sees its own)", _services)
    @documents(ns, 401, 403, 404)
    @require_scope(Scope.CASES_READ)
    def get(self, ref):
        """List the services of a case."""
        session, actor = get_session(), current_actor()
        found = care.list_services(session, actor, ref)
        return {"items": [service_document(s, note=care.shows_note(session, actor, s)) for s in found]}

    @ns.expect(_service_in)
    @ns.doc(params=IDEMPOTENCY)
    @ns.response(201, "Recorded; Location names the service", _service)
    @documents(ns, 401, 403, 404, 409, 422)
    @require_scope(Scope.CASES_UPDATE)
    def post(self, ref):
        """Record a service (a shelter placement needs a free bed: 409 when the shelter is full)."""
        actor, session = current_actor(), get_session()
        data = load(ServiceInSchema())

        def handler():
            service = care.add_service(session, actor, ref, data)
            location = {"Location": f"/api/v1/services/{service.id}"}
            return service.id, _service_answer(service, status=201, headers=location)

        def replay(service_id):
            return _service_answer(care.get_service(session, actor, ref, service_id))

        return idempotent(session, actor=actor, handler=handler, replay=replay)


@services_ns.route("/<string:service_id>")
@services_ns.param("service_id", "the service's id")
class ServiceItem(Resource):
    @services_ns.expect(_service_patch)
    @services_ns.doc(params=_IF_MATCH)
    @services_ns.response(200, "Changed", _service_out)
    @documents(services_ns, 401, 403, 404, 409, 412, 422)
    @require_scope(Scope.CASES_UPDATE)
    def patch(self, service_id):
        """Change a service's status, dates or note (MGEC staff, or its provider)."""
        data = load(ServicePatchSchema())
        service = care.update_service(
            get_session(), current_actor(), service_id, data, if_match=request.headers.get("If-Match")
        )
        return _service_answer(service)

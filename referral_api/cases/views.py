"""A case as each audience sees it: the documents the output schemas describe."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..privacy import readable
from .models import Case, CaseEvent, CaseParticipant, CaseService
from .schemas import (
    CaseEventSchema,
    CaseParticipantViewSchema,
    CaseStaffSchema,
    CaseStatusSchema,
    ParticipantSchema,
    ServiceSchema,
)
from .stages import MOVES, STAFF_ONLY_DETAILS, MoveKind, ParticipantRole, allowed_targets
from .visibility import Audience

_STATUS, _PARTICIPANT, _STAFF = CaseStatusSchema(), CaseParticipantViewSchema(), CaseStaffSchema()
_EVENT, _PART, _SERVICE = CaseEventSchema(), ParticipantSchema(), ServiceSchema()


def _status(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "reference": case.reference,
        "stage": case.stage,
        "stage_since": case.stage_since,
        "on_hold": case.on_hold,
        "key_dates": {
            "referred_at": case.referred_at,
            "accepted_at": case.opened_at,
            "travel_document_issued_on": case.travel_document_issued_on,
            "departed_on": case.departed_on,
            "arrived_on": case.arrived_on,
            "closed_at": case.closed_at,
        },
    }


def status_document(case: Case) -> dict[str, Any]:
    """Reference, stage, since, on hold and key dates; nothing personal, for anyone who may see it."""
    return _STATUS.dump(_status(case))


def stages_for(case: Case, role: ParticipantRole | None, *, staff: bool) -> list[str]:
    """The stages the caller may move the case to (reopening is an admin's: listed for staff)."""
    return [
        t
        for t in allowed_targets(case.stage)
        if staff or (role is not None and role in MOVES[(case.stage, t)].by)
        if staff or MOVES[(case.stage, t)].kind is not MoveKind.REOPEN
    ]


OMIT: Any = object()  # a list leaves the person out (one provider call a case): the case's own answer has it


def document(
    case: Case,
    audience: Audience,
    role: ParticipantRole | None = None,
    participants: list[CaseParticipant] | None = None,
    person: dict[str, Any] | None = OMIT,
) -> dict[str, Any]:
    """The case in the schema of `audience`; only staff see the hold reason (it may be personal).

    `person` is what persons.person_for() allows the caller (None: nothing, by consent).
    """
    doc = {**_status(case), "erased": case.erased_at is not None}
    if person is not OMIT:
        doc["person"] = person
    if audience is Audience.PARTICIPANT:
        return _PARTICIPANT.dump({**doc, "role": role, "allowed_stages": stages_for(case, role, staff=False)})
    return _STAFF.dump(
        {
            **doc,
            "internal": case.internal,
            "on_hold_since": case.on_hold_since,
            "hold_reason": None if case.erased_at else case.hold_reason,
            "erased_at": case.erased_at,
            "closure_reason": case.closure_reason,
            "opened_by_organisation_id": case.opened_by_organisation_id,
            "share_with": case.share_with,
            "allowed_stages": stages_for(case, None, staff=True),
            # a list leaves them out (one query a case); the case's own answer has them
            **({} if participants is None else {"participants": [_participant(p) for p in participants]}),
        }
    )


def _participant(p: CaseParticipant) -> dict[str, Any]:
    return {
        "organisation_id": p.organisation_id,
        "role": p.role,
        "external_reference": p.external_reference,
        "added_at": p.added_at,
    }


def participant_document(p: CaseParticipant) -> dict[str, Any]:
    return _PART.dump(_participant(p))


def event_document(event: CaseEvent, *, staff: bool) -> dict[str, Any]:
    """A timeline entry; the note, personal and staff-only details (STAFF_ONLY_DETAILS), client and
    person are MGEC staff's only."""
    details = {k: v for k, v in (event.details or {}).items() if staff or k not in STAFF_ONLY_DETAILS}
    personal = readable(event, "personal_details") if staff else None
    if personal:
        details.update(personal)
    entry = {
        "id": event.id,
        "kind": event.kind.value,
        "from_stage": event.from_stage,
        "to_stage": event.to_stage,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "organisation_id": event.organisation_id,
        "details": details,
        "note": readable(event, "note") if staff else None,
    }
    if staff:
        entry.update(client_id=event.client_id, user_id=event.user_id)
    return _EVENT.dump(entry)


def service_document(service: CaseService, *, note: bool) -> dict[str, Any]:
    """A service; its sealed note only when `note` (care.shows_note: MGEC staff, or its provider while
    the person's consent covers its kind), else null."""
    return _SERVICE.dump(
        {
            "id": service.id,
            "case_id": service.case_id,
            "kind": service.kind,
            "provider_id": service.provider_id,
            "shelter_id": service.shelter_id,
            "status": service.status,
            "starts_on": service.starts_on,
            "ends_on": service.ends_on,
            "note": readable(service, "note") if note else None,
            "updated_at": service.updated_at,
        }
    )


def etag(record: Case | CaseService) -> str:
    """Changes with every write (the version column), whoever looks: the ETag of a service, and of a
    case as MGEC staff see it (case_etag gives a participant's)."""
    return '"' + hashlib.sha256(f"{record.id}:{record.version}".encode()).hexdigest()[:32] + '"'


def case_etag(case: Case, audience: Audience, role: ParticipantRole | None, *, covered: bool) -> str:
    """The case's ETag in the caller's view (a GET, a write's answer, and its If-Match).

    Staff see every write (`etag`). A participant's changes only with what its view shows: the status
    and key dates, its role and moves, whether the case is erased and whether consent lets it see the
    person (`covered`, persons.covered). So another organisation joining or leaving the case, a
    changed hold reason or a consent change for other kinds never shows in its ETag."""
    if audience is Audience.STAFF:
        return etag(case)
    seen = {**document(case, audience, role), "person": covered and case.erased_at is None}
    canonical = json.dumps(seen, sort_keys=True, default=str, separators=(",", ":"))
    return '"' + hashlib.sha256(f"{case.id}:{canonical}".encode()).hexdigest()[:32] + '"'

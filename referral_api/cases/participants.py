"""A case's participants (docs/domain.md, Participants): added and removed by MGEC staff.

Each commits once."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from .. import audit, events
from ..access import Actor
from ..audit.actions import AuditAction
from ..db import utcnow
from ..errors import Conflict, InvalidPayload, NotFound
from ..organisations import services as org_services
from ..organisations.models import Organisation, OrganisationKind
from .models import CaseParticipant
from .services import commit, load, participants_of, prepare, staff_only
from .stages import ParticipantRole
from .visibility import organisations_visible_to

# Which roles an organisation of each kind may take in a case (docs/domain.md, Organisation kinds and
# Participants): any partner may have referred the person; only an embassy acts as the embassy and
# only IOM as IOM; those that shelter, treat, counsel or train are service providers. MGEC runs every
# case and never takes part in one.
ROLES_OF_KIND: dict[OrganisationKind, tuple[ParticipantRole, ...]] = {
    OrganisationKind.MGEC: (),
    OrganisationKind.POLICE: (ParticipantRole.REFERRER,),
    OrganisationKind.EMBASSY: (ParticipantRole.REFERRER, ParticipantRole.EMBASSY),
    OrganisationKind.IOM: (ParticipantRole.REFERRER, ParticipantRole.IOM),
    OrganisationKind.NGO: (ParticipantRole.REFERRER, ParticipantRole.SERVICE_PROVIDER),
    OrganisationKind.GOVERNMENT: (ParticipantRole.REFERRER, ParticipantRole.SERVICE_PROVIDER),
    OrganisationKind.SERVICE_PROVIDER: (ParticipantRole.REFERRER, ParticipantRole.SERVICE_PROVIDER),
}


def _check_role(org: Organisation, role: ParticipantRole) -> None:
    """Refuse a role the organisation's kind cannot take (422 naming the roles it can)."""
    allowed = [r.value for r in ROLES_OF_KIND[org.kind]]
    if role.value not in allowed:
        says = f"one of {', '.join(allowed)}" if allowed else "none: MGEC runs every case"
        raise InvalidPayload(
            f"An organisation of kind {org.kind.value} cannot take part as {role.value}.",
            errors={"role": [f"for an organisation of kind {org.kind.value}: {says}"]},
            extra={"allowed_roles": allowed},
        )


def list_participants(session: Session, actor: Actor, ref: str) -> list[CaseParticipant]:
    case, seen, _role = load(session, actor, ref)
    staff_only(actor, seen, "list a case's participants")
    return participants_of(session, case)


def get_participant(session: Session, actor: Actor, ref: str, organisation_id: str) -> CaseParticipant:
    """One participant of the case (MGEC staff); a replayed addition answers it."""
    case, seen, _role = load(session, actor, ref)
    staff_only(actor, seen, "list a case's participants")
    return _participant(session, case.id, organisation_id)


def _participant(session: Session, case_id: uuid.UUID, organisation_id: str) -> CaseParticipant:
    try:
        participant = session.get(CaseParticipant, (case_id, uuid.UUID(organisation_id)))
    except ValueError:
        participant = None
    if participant is None:
        raise NotFound("This organisation does not take part in the case.")
    return participant


def add_participant(session: Session, actor: Actor, ref: str, data: dict[str, Any]) -> CaseParticipant:
    """MGEC staff add an organisation to a case with a role."""
    case, seen, _role = prepare(session, actor, ref, None)
    staff_only(actor, seen, "add participants")
    org = session.get(Organisation, data["organisation_id"])
    if org is None:
        raise InvalidPayload(errors={"organisation_id": ["no such organisation"]})
    _check_role(org, data["role"])
    if session.get(CaseParticipant, (case.id, org.id)) is not None:
        raise Conflict(
            "This organisation takes part in the case already.", errors={"organisation_id": ["taken"]}
        )
    participant = CaseParticipant(
        case_id=case.id,
        organisation_id=org.id,
        role=data["role"],
        added_at=utcnow(),
        added_by_user_id=actor.user_id,
    )
    session.add(participant)
    _participants_changed(session, actor, case, org.id, data["role"], added=True)
    return participant


def remove_participant(session: Session, actor: Actor, ref: str, organisation_id: str) -> None:
    case, seen, _role = prepare(session, actor, ref, None)
    staff_only(actor, seen, "remove participants")
    participant = _participant(session, case.id, organisation_id)
    session.delete(participant)
    _participants_changed(session, actor, case, participant.organisation_id, participant.role, added=False)


def _participants_changed(session, actor, case, organisation_id, role, *, added):
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CASE_UPDATE,
        resource_type="case",
        resource_id=case.id,
        details={"participant": str(organisation_id), "role": role.value, "added": added},
    )
    events.publish(
        session,
        events.EventType.CASE_PARTICIPANT_ADDED if added else events.EventType.CASE_PARTICIPANT_REMOVED,
        resource_type="case",
        resource_id=case.id,
        data={"reference": case.reference, "organisation_id": organisation_id, "role": role.value},
    )
    # bumps the version: a participant change changes what staff see of the case (a participant's ETag
    # is of its own view, views.case_etag, and does not tell it of this change)
    case.updated_at = utcnow()
    commit(session)


def directory(session: Session, actor: Actor, *, text: str, limit: int,
              cursor: str | None) -> tuple[list[Organisation], str | None]:
    """A page of the organisation directory (GET /api/v1/organisations) as `actor` may see it: MGEC
    staff every organisation, suspended ones too; a partner the active ones of organisations_visible_to."""
    return org_services.directory_page(session, text=text, limit=limit, cursor=cursor,
                                       include_suspended=actor.is_mgec,
                                       visible=organisations_visible_to(actor))

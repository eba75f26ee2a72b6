"""Who sees what of a case (docs/domain.md, Who sees what), as checks and as query filters.

MGEC staff see everything; a participant (the referrer included) sees the case's stage and key
dates, and of the services only those it provides; anyone else gets 404, because even the
existence of a case is personal data.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import MGEC_KIND, Actor
from ..events import EventType, OutboxEvent
from ..organisations.models import Organisation
from ..webhooks import visibility as webhook_visibility
from .models import Case, CaseEvent, CaseParticipant, CaseService
from .stages import ParticipantRole


class Audience(StrEnum):
    STAFF = "staff"
    PARTICIPANT = "participant"


def role_of(session: Session, actor: Actor, case_id: uuid.UUID) -> ParticipantRole | None:
    """The role of the caller's organisation in the case, or None."""
    return session.scalar(
        sa.select(CaseParticipant.role).where(
            CaseParticipant.case_id == case_id, CaseParticipant.organisation_id == actor.organisation_id
        )
    )


def audience(actor: Actor, role: ParticipantRole | None) -> Audience | None:
    """The view `actor` gets of a case where its organisation has `role` (or None when it takes no
    part), or None when it may not know the case exists (as referrals.visibility.audience)."""
    if actor.is_mgec:
        return Audience.STAFF
    return Audience.PARTICIPANT if role is not None else None


def visible_to(actor: Actor) -> sa.ColumnElement[bool]:
    """The listing filter matching `audience()`: never a post-filter in Python."""
    if actor.is_mgec:
        return sa.true()
    return Case.id.in_(
        sa.select(CaseParticipant.case_id).where(CaseParticipant.organisation_id == actor.organisation_id)
    )


def organisations_visible_to(actor: Actor) -> sa.ColumnElement[bool] | None:
    """The organisations a caller may find in the directory: MGEC staff all (None: no filter);
    a partner MGEC and the organisations taking part in the cases it takes part in."""
    if actor.is_mgec:
        return None
    mine = sa.select(CaseParticipant.case_id).where(CaseParticipant.organisation_id == actor.organisation_id)
    fellow = sa.select(CaseParticipant.organisation_id).where(CaseParticipant.case_id.in_(mine))
    return sa.or_(Organisation.kind == MGEC_KIND, Organisation.id.in_(fellow))


def timeline_visible_to(actor: Actor) -> sa.ColumnElement[bool]:
    """The timeline entries a participant sees: those of MGEC and of its own organisation."""
    mgec = sa.select(Organisation.id).where(Organisation.kind == MGEC_KIND)
    return sa.or_(CaseEvent.organisation_id == actor.organisation_id, CaseEvent.organisation_id.in_(mgec))


def mgec_ids(session: Session) -> set[uuid.UUID]:
    """The ids of MGEC organisations (told of everything)."""
    return set(session.scalars(sa.select(Organisation.id).where(Organisation.kind == MGEC_KIND)))


def organisations_seeing(session: Session, case_id: uuid.UUID) -> set[uuid.UUID]:
    """Who may see a case (for webhooks): MGEC and every participant organisation."""
    parts = session.scalars(
        sa.select(CaseParticipant.organisation_id).where(CaseParticipant.case_id == case_id)
    ).all()
    return mgec_ids(session) | set(parts)


def organisations_told_of_participant(session: Session, event: OutboxEvent) -> set[uuid.UUID]:
    """Who hears that an organisation joined or left a case: MGEC and that organisation only; the
    other participants do not learn who else takes part."""
    return mgec_ids(session) | {uuid.UUID(event.payload["organisation_id"])}


def organisations_seeing_service(session: Session, service_id: uuid.UUID) -> set[uuid.UUID]:
    """Who may see a service (for webhooks): MGEC, and the provider while it takes part in the case."""
    row = session.execute(
        sa.select(CaseService.case_id, CaseService.provider_id).where(CaseService.id == service_id)
    ).first()
    if row is None:
        return set()
    mgec = mgec_ids(session)
    provider_takes_part = row.provider_id is not None and session.scalar(
        sa.select(CaseParticipant.organisation_id).where(
            CaseParticipant.case_id == row.case_id, CaseParticipant.organisation_id == row.provider_id
        )
    )
    return mgec | ({row.provider_id} if provider_takes_part else set())


webhook_visibility.register("case", organisations_seeing)
webhook_visibility.register("service", organisations_seeing_service)
for _type in (EventType.CASE_PARTICIPANT_ADDED, EventType.CASE_PARTICIPANT_REMOVED):
    webhook_visibility.register_event(_type.value, organisations_told_of_participant)

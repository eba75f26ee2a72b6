"""Services given to the person of a case (docs/domain.md, Services).

MGEC staff record any service; a `service_provider` participant records and reads only those it
provides. A shelter placement takes a bed while it is planned or under way; the shelter row is locked
for the count (shelters.py), so concurrent placements never overshoot its capacity.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit, events
from ..access import Actor
from ..audit.actions import AuditAction
from ..errors import Conflict, Forbidden, InvalidPayload, NotFound, require_current
from ..organisations.models import Organisation
from ..privacy import has_sealed
from . import persons
from . import services as cases
from .models import ACTIVE_SERVICE, Case, CaseService, ServiceKind, Shelter
from .shelters import locked, occupancy
from .stages import ParticipantRole
from .views import etag
from .visibility import Audience, audience, role_of


def _provider_only(seen: Audience, role: ParticipantRole | None, actor: Actor) -> sa.ColumnElement[bool]:
    """Which of a case's services the caller sees: staff all, a service provider its own, others none."""
    if seen is Audience.STAFF:
        return sa.true()
    if role is ParticipantRole.SERVICE_PROVIDER:
        return CaseService.provider_id == actor.organisation_id
    raise Forbidden("Only MGEC staff and the case's service providers see its services.")


def _visible_services(session: Session, actor: Actor, ref: str) -> tuple[sa.Select, Case]:
    case, seen, role = cases.load(session, actor, ref)
    query = sa.select(CaseService).where(CaseService.case_id == case.id, _provider_only(seen, role, actor))
    return query, case


def shows_note(session: Session, actor: Actor, service: CaseService) -> bool:
    """Whether the caller reads the service's sealed note (a diagnosis, a doctor's name: personal data):
    MGEC staff, and its provider only while the person's consent covers its kind of organisation
    (persons.covered, the rule of the person's fields). The answer of every read and write asks."""
    case = session.get(Case, service.case_id)  # loaded already: no query
    return case is not None and persons.covered(actor, case)


def list_services(session: Session, actor: Actor, ref: str) -> list[CaseService]:
    """The case's services the caller sees; showing their sealed notes is an audited read."""
    query, case = _visible_services(session, actor, ref)
    found = list(session.scalars(query.order_by(CaseService.created_at, CaseService.id)))
    shown = persons.covered(actor, case)
    noted = [str(s.id) for s in found if shown and case.erased_at is None and has_sealed(s, "note")]
    if noted:
        cases.audit_read(session, actor, case.id, {"service_notes": noted})
    return found


def get_service(session: Session, actor: Actor, ref: str, service_id: str) -> CaseService:
    """One service of the case, if the caller sees it in the list (a replayed recording answers it)."""
    query, case = _visible_services(session, actor, ref)
    service = session.scalar(query.where(CaseService.id == uuid.UUID(service_id)))
    if service is None:
        raise NotFound("No such service that you may see.")
    if persons.covered(actor, case) and case.erased_at is None and has_sealed(service, "note"):
        cases.audit_read(session, actor, case.id, {"service_notes": [str(service.id)]})
    return service


def _named_shelter(session: Session, actor: Actor, seen: Audience, shelter_id: uuid.UUID, *,
                   lock: bool) -> Shelter:
    """The shelter a service names, locked until the commit when it takes a bed; 422 when there is none.

    Shelters are MGEC's to know (GET /shelters is staff's): a service provider names only a shelter
    its own organisation runs, and any other id is answered exactly as a missing one."""
    query = sa.select(Shelter).where(Shelter.id == shelter_id)
    if seen is not Audience.STAFF:
        query = query.where(Shelter.organisation_id == actor.organisation_id)
    shelter = session.scalar(query.with_for_update() if lock else query)
    if shelter is None:
        raise InvalidPayload(errors={"shelter_id": ["no such shelter"]})
    return shelter


def _take_bed(session: Session, shelter: Shelter, *, staff: bool, leaving: uuid.UUID | None = None) -> None:
    """Refuse a placement in a full or closed shelter (409); the shelter row is locked until the commit.
    Only MGEC staff are told its name, capacity and occupancy."""
    if shelter.closed_at is not None:
        raise Conflict(f"{shelter.name if staff else 'The shelter'} is closed.",
                       errors={"shelter_id": ["the shelter is closed"]})
    taken = occupancy(session, shelter.id, leaving=leaving)
    if taken >= shelter.capacity:
        if not staff:
            raise Conflict("The shelter has no free bed.", errors={"shelter_id": ["no free bed"]})
        raise Conflict(
            f"{shelter.name} is full ({taken} of {shelter.capacity} beds taken).",
            errors={"shelter_id": ["no free bed"]},
            extra={"capacity": shelter.capacity, "occupancy": taken},
        )


def _take_bed_again(session: Session, actor: Actor, seen: Audience, service: CaseService) -> None:
    """A finished placement brought back takes a bed again: in a shelter the provider runs (MGEC staff
    in any)."""
    staff = seen is Audience.STAFF
    shelter = locked(session, service.shelter_id)  # type: ignore[arg-type]
    if shelter is None or (not staff and shelter.organisation_id != actor.organisation_id):
        raise Forbidden("Only MGEC staff bring back a placement in a shelter you do not run.")
    _take_bed(session, shelter, staff=staff, leaving=service.id)


def _changed(session: Session, actor: Actor, service: CaseService, case: Case, *, created: bool) -> None:
    audit.record(
        session,
        actor=actor,
        action=AuditAction.SERVICE_CREATE if created else AuditAction.SERVICE_UPDATE,
        resource_type="service",
        resource_id=service.id,
        details={"case_id": str(case.id), "kind": service.kind.value, "status": service.status.value},
    )
    events.publish(
        session,
        events.EventType.SERVICE_UPDATED,
        resource_type="service",
        resource_id=service.id,
        data={
            "case_id": case.id,
            "case_reference": case.reference,
            "service_id": service.id,
            "kind": service.kind.value,
            "status": service.status.value,
        },
    )
    cases.commit(session)


def add_service(session: Session, actor: Actor, ref: str, data: dict[str, Any]) -> CaseService:
    """Record a service for a case; a shelter placement needs a free bed."""
    case, seen, role = cases.load(session, actor, ref)
    if seen is not Audience.STAFF:
        if role is not ParticipantRole.SERVICE_PROVIDER:
            raise Forbidden("Only MGEC staff and the case's service providers record services.")
        if data.get("provider_id") not in (None, actor.organisation_id):
            raise Forbidden("A service provider records only the services it provides.")
        data["provider_id"] = actor.organisation_id
    if data.get("provider_id") is not None and session.get(Organisation, data["provider_id"]) is None:
        raise InvalidPayload(errors={"provider_id": ["no such organisation"]})
    if data.get("shelter_id") is not None:
        takes_bed = data["kind"] is ServiceKind.SHELTER and data["status"] in ACTIVE_SERVICE
        shelter = _named_shelter(session, actor, seen, data["shelter_id"], lock=takes_bed)
        if takes_bed:
            _take_bed(session, shelter, staff=seen is Audience.STAFF)
    service = CaseService(id=uuid.uuid4(), case_id=case.id, data_key_id=case.data_key_id, **data)
    session.add(service)
    _changed(session, actor, service, case, created=True)
    return service


def update_service(
    session: Session, actor: Actor, service_id: str, data: dict[str, Any], *, if_match: str | None = None
) -> CaseService:
    """Change a service's status, dates or note (staff, or the provider that gives it)."""
    try:
        sid = uuid.UUID(service_id)
    except ValueError:
        raise NotFound("No such service that you may see.") from None
    service = session.scalar(sa.select(CaseService).where(CaseService.id == sid).with_for_update())
    case = session.get(Case, service.case_id) if service else None
    role = role_of(session, actor, case.id) if case else None
    seen = audience(actor, role) if case else None
    if (
        service is None
        or seen is None
        or (
            seen is not Audience.STAFF
            and (
                role is not ParticipantRole.SERVICE_PROVIDER
                or service.provider_id != actor.organisation_id
            )
        )
    ):
        raise NotFound("No such service that you may see.")
    require_current(if_match, etag(service), what="service")
    status = data.get("status", service.status)
    if service.shelter_id is not None and status in ACTIVE_SERVICE and service.status not in ACTIVE_SERVICE:
        _take_bed_again(session, actor, seen, service)
    starts, ends = data.get("starts_on", service.starts_on), data.get("ends_on", service.ends_on)
    if starts and ends and ends < starts:
        raise InvalidPayload(errors={"ends_on": ["must not be before starts_on"]})
    for name, value in data.items():
        setattr(service, name, value)
    _changed(session, actor, service, case, created=False)
    return service

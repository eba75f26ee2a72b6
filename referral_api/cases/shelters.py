"""Shelters (docs/domain.md, Services): MGEC admins add, rename, resize and close them; staff see occupancy.

A bed is taken by a shelter placement that is planned or under way. The shelter row is locked for
every count that decides something (a placement, a smaller capacity, a closing), so a placement and
a change of capacity never pass each other.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit
from ..access import Actor
from ..audit.actions import AuditAction
from ..db import utcnow
from ..errors import Conflict, Forbidden, InvalidPayload, NotFound
from ..organisations.models import Organisation
from .models import ACTIVE_SERVICE, CaseService, Shelter
from .services import commit


def occupancy(session: Session, shelter_id: uuid.UUID, *, leaving: uuid.UUID | None = None) -> int:
    """Beds taken in the shelter (active placements), leaving one placement out when it is the one moving."""
    return session.scalar(
        sa.select(sa.func.count())
        .select_from(CaseService)
        .where(
            CaseService.shelter_id == shelter_id,
            CaseService.status.in_(ACTIVE_SERVICE),
            CaseService.id != (leaving or uuid.UUID(int=0)),
        )
    ) or 0


def locked(session: Session, shelter_id: uuid.UUID) -> Shelter | None:
    """The shelter, its row locked until the commit (PostgreSQL; SQLite serialises writes anyway)."""
    return session.scalar(sa.select(Shelter).where(Shelter.id == shelter_id).with_for_update())


def _staff(actor: Actor) -> None:
    if not actor.is_mgec:
        raise Forbidden("Only MGEC staff see and manage the shelters.")


def shelters(session: Session, actor: Actor) -> list[tuple[Shelter, int]]:
    """Every shelter with its occupancy (active placements); shelters' whereabouts are MGEC's to know."""
    _staff(actor)
    occupied = (
        sa.select(CaseService.shelter_id, sa.func.count().label("n"))
        .where(CaseService.status.in_(ACTIVE_SERVICE), CaseService.shelter_id.is_not(None))
        .group_by(CaseService.shelter_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(Shelter, sa.func.coalesce(occupied.c.n, 0))
        .outerjoin(occupied, occupied.c.shelter_id == Shelter.id)
        .order_by(Shelter.city, Shelter.name)
    ).all()
    return [(s, int(n)) for s, n in rows]


def shelter(session: Session, actor: Actor, shelter_id: uuid.UUID) -> tuple[Shelter, int]:
    """One shelter with its occupancy (MGEC staff), as `shelters()` lists it."""
    _staff(actor)
    found = session.get(Shelter, shelter_id)
    if found is None:
        raise NotFound("No such shelter.")
    return found, occupancy(session, found.id)


def _check_names(session: Session, data: dict[str, Any], *, shelter_id: uuid.UUID | None = None) -> None:
    """The operating organisation must exist and the name be free (the UNIQUE key is the backstop)."""
    if data.get("organisation_id") is not None and session.get(Organisation, data["organisation_id"]) is None:
        raise InvalidPayload(errors={"organisation_id": ["no such organisation"]})
    if "name" in data:
        other = session.scalar(sa.select(Shelter.id).where(Shelter.name == data["name"]))
        if other is not None and other != shelter_id:
            raise Conflict("A shelter of this name exists already.", errors={"name": ["taken"]})


def _record(session: Session, actor: Actor, shelter: Shelter, changed: list[str], *, created: bool) -> None:
    audit.record(
        session,
        actor=actor,
        action=AuditAction.SHELTER_CREATE if created else AuditAction.SHELTER_UPDATE,
        resource_type="shelter",
        resource_id=shelter.id,
        details={
            "changed": sorted(changed),
            "capacity": shelter.capacity,
            "closed": shelter.closed_at is not None,
        },
    )
    commit(session)


def create_shelter(session: Session, actor: Actor, data: dict[str, Any]) -> tuple[Shelter, int]:
    """Add a shelter (MGEC admin; the scope is checked at the edge)."""
    _staff(actor)
    _check_names(session, data)
    shelter = Shelter(id=uuid.uuid4(), **data)
    session.add(shelter)
    _record(session, actor, shelter, list(data), created=True)
    return shelter, 0


def update_shelter(
    session: Session, actor: Actor, shelter_id: str, data: dict[str, Any]
) -> tuple[Shelter, int]:
    """Rename, move, resize, close or reopen a shelter; never below the beds taken (409 naming them)."""
    _staff(actor)
    try:
        shelter = locked(session, uuid.UUID(shelter_id))
    except ValueError:
        shelter = None
    if shelter is None:
        raise NotFound("No such shelter.")
    _check_names(session, data, shelter_id=shelter.id)
    taken = occupancy(session, shelter.id)
    if data.get("capacity", shelter.capacity) < taken:
        raise Conflict(
            f"{shelter.name} has {taken} beds taken: its capacity cannot drop below that.",
            errors={"capacity": [f"must be at least the current occupancy ({taken})"]},
            extra={"capacity": shelter.capacity, "occupancy": taken},
        )
    closing = data.pop("closed", None)
    if closing and shelter.closed_at is None:
        if taken:
            raise Conflict(
                f"{shelter.name} still has {taken} beds taken: end or move those placements first.",
                errors={"closed": [f"the shelter has {taken} active placements"]},
                extra={"occupancy": taken},
            )
        shelter.closed_at = utcnow()
    elif closing is False:
        shelter.closed_at = None
    for name, value in data.items():
        setattr(shelter, name, value)
    shelter.updated_at = utcnow()
    _record(session, actor, shelter, [*data, *(["closed"] if closing is not None else [])], created=False)
    return shelter, taken

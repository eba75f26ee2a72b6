"""Case use cases: open, read, list, status, timeline, and what every write shares. Each commits once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit, db
from ..access import Actor
from ..audit.actions import AuditAction
from ..db import utcnow
from ..errors import Forbidden, InvalidPayload, NotFound, require_current
from ..privacy import has_sealed
from ..records import by_id_or_reference, deny, keyset_page, settle
from ..references import next_reference
from . import persons
from .models import Case, CaseEvent, CaseEventKind, CaseParticipant
from .referred import cases_referred_as
from .stages import ParticipantRole, Stage
from .views import case_etag
from .visibility import Audience, audience, role_of, timeline_visible_to, visible_to

# ---- opening (called by the referrals part when it accepts a referral) -------------------------------


def add_to_timeline(
    session: Session, case: Case, actor: Actor, kind: CaseEventKind, *, occurred_at: datetime, **fields: Any
) -> CaseEvent:
    """Add an entry to the case's timeline (caller commits); not the audit trail, which is audit.record."""
    event = CaseEvent(
        id=uuid.uuid4(),
        case_id=case.id,
        kind=kind,
        occurred_at=occurred_at,
        recorded_at=utcnow(),
        organisation_id=actor.organisation_id,
        client_id=actor.client_id,
        user_id=actor.user_id,
        data_key_id=case.data_key_id,  # the timeline's free text is erased with the person
        **fields,
    )
    session.add(event)
    return event


def open_case(
    session: Session,
    actor: Actor,
    *,
    data_key_id: uuid.UUID | None,
    share_with: list[str],
    referred_at: datetime,
    internal: bool,
    referral_id: uuid.UUID,
    now: datetime,
) -> Case:
    """Open a case at verification, or at rehabilitation when the person is already home (caller commits)."""
    stage = Stage.REHABILITATION if internal else Stage.VERIFICATION
    case = Case(
        id=uuid.uuid4(),
        reference=next_reference(session, "CASE", now=now),
        data_key_id=data_key_id,
        opened_at=now,
        opened_by_organisation_id=actor.organisation_id,
        opened_by_user_id=actor.user_id,
        share_with=list(share_with),
        stage=stage,
        stage_since=now,
        last_occurred_at=now,
        internal=internal,
        referred_at=referred_at,
    )
    session.add(case)
    add_to_timeline(session, case, actor, CaseEventKind.OPENED, occurred_at=now, to_stage=stage)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CASE_OPEN,
        resource_type="case",
        resource_id=case.id,
        details={"referral_id": str(referral_id), "stage": stage.value},
    )
    return case


def add_referrer(
    session: Session, case: Case, *, organisation_id: uuid.UUID, external_reference: str | None
) -> None:
    """The referring organisation takes part from the start (caller commits); MGEC itself never needs to."""
    if organisation_id == case.opened_by_organisation_id or session.get(
        CaseParticipant, (case.id, organisation_id)
    ):
        return
    session.add(
        CaseParticipant(
            case_id=case.id,
            organisation_id=organisation_id,
            role=ParticipantRole.REFERRER,
            external_reference=external_reference,
            added_at=utcnow(),
        )
    )


# ---- reading ----------------------------------------------------------------------------------------


def _deny(session: Session, actor: Actor, what: str, found: uuid.UUID | None) -> NotFound:
    return deny(session, actor, resource_type="case", resource_id=found, what=what)


def load(
    session: Session, actor: Actor, ref: str, *, for_update: bool = False
) -> tuple[Case, Audience, ParticipantRole | None]:
    """The case `ref` (id or CASE- reference) and how the caller sees it; 404 when it may not.

    For a write (`for_update`) the case row is locked first and the caller's role read after, in a
    statement of its own: under READ COMMITTED a write queued behind another (a participant's removal)
    reads the role in a snapshot taken once the lock is held, not the one it started with."""
    if for_update:
        # Concurrent writes to one case queue here; the first wins, the others see its result.
        case = session.scalar(sa.select(Case).where(by_id_or_reference(Case, ref)).with_for_update())
        role = role_of(session, actor, case.id) if case is not None and not actor.is_mgec else None
    else:
        # The case and the caller's role in it in one round trip (the status view is read under load).
        row = session.execute(
            sa.select(Case, CaseParticipant.role)
            .outerjoin(
                CaseParticipant,
                sa.and_(
                    CaseParticipant.case_id == Case.id,
                    CaseParticipant.organisation_id == actor.organisation_id,
                ),
            )
            .where(by_id_or_reference(Case, ref))
        ).first()
        case, role = row if row is not None else (None, None)
    seen = audience(actor, role) if case is not None else None
    if case is None or seen is None:
        raise _deny(session, actor, ref, case.id if case else None)
    # staff see the case as MGEC, whatever part MGEC's own organisation may take in it
    return case, seen, role if seen is Audience.PARTICIPANT else None


def participants_of(session: Session, case: Case) -> list[CaseParticipant]:
    return list(
        session.scalars(
            sa.select(CaseParticipant)
            .where(CaseParticipant.case_id == case.id)
            .order_by(CaseParticipant.added_at, CaseParticipant.organisation_id)
        )
    )


def read(
    session: Session, actor: Actor, ref: str
) -> tuple[Case, Audience, ParticipantRole | None, dict[str, Any] | None]:
    """One case in the caller's view, with the person as far as consent lets the caller see it.

    A read that shows personal data (the person, or the hold reason to staff) is audited.
    """
    case, seen, role = load(session, actor, ref)
    person = persons.person_for(session, actor, case)
    if seen is Audience.STAFF or person is not None:
        audit_read(session, actor, case.id, {"person": person is not None})
    return case, seen, role, person


def audit_read(session: Session, actor: Actor, case_id: uuid.UUID | None, details: dict[str, Any]) -> None:
    """Record (and commit) that the caller was shown personal or sealed text of a case, or of the
    cases `details` lists."""
    audit.record(
        session, actor=actor, action=AuditAction.CASE_READ, resource_type="case", resource_id=case_id,
        details=details,
    )
    db.commit(session)


def status_by_external_reference(session: Session, actor: Actor, external_reference: str) -> Case:
    """The case a partner referred under its own case number: only that partner finds it this way,
    and only while it takes part in the case. Any of its referrals accepted into the case finds it,
    not only the first, whose number its participation keeps."""
    number = CaseParticipant.external_reference == external_reference
    referred = cases_referred_as(actor.organisation_id, external_reference)
    case = session.scalar(
        sa.select(Case)
        .join(CaseParticipant, CaseParticipant.case_id == Case.id)
        .where(
            CaseParticipant.organisation_id == actor.organisation_id,
            number if referred is None else sa.or_(number, Case.id.in_(referred)),
        )
        .order_by(Case.opened_at, Case.id)
        .limit(1)
    )
    if case is None:
        raise _deny(session, actor, "with that external_reference", None)
    return case


def _filtered(actor: Actor, args: dict[str, Any]) -> sa.Select:
    """The cases the caller may see, narrowed by the list's filters.

    Who else takes part in a case is MGEC staff's to know: a partner may filter by `participant`
    only with its own organisation's id (any other is a 422 naming `participant`), or the filter
    would tell it which of its cases another organisation takes part in."""
    query = sa.select(Case).where(visible_to(actor))
    if args.get("stage") is not None:
        query = query.where(Case.stage == args["stage"])
    if args.get("on_hold") is not None:
        query = query.where(Case.on_hold == args["on_hold"])
    if args.get("overdue") is not None:
        overdue = Case.overdue_since.is_not(None)
        query = query.where(overdue if args["overdue"] else ~overdue)
    if args.get("participant") is not None:
        if not actor.is_mgec and args["participant"] != actor.organisation_id:
            raise InvalidPayload(errors={"participant": [
                "only MGEC staff filter by another organisation; yours is the only one you may name"]})
        query = query.where(
            Case.id.in_(
                sa.select(CaseParticipant.case_id).where(
                    CaseParticipant.organisation_id == args["participant"]
                )
            )
        )
    return query


def list_for(
    session: Session, actor: Actor, args: dict[str, Any]
) -> tuple[list[tuple[Case, Audience, ParticipantRole | None]], str | None]:
    """A keyset page of the cases the caller may see, newest first."""
    rows, next_cursor = keyset_page(session, _filtered(actor, args), at=Case.opened_at, row_id=Case.id,
                                    limit=args["limit"], cursor=args.get("cursor"))
    if actor.is_mgec:
        # Staff see each case's hold reason, sealed text that may be personal: the read is audited.
        held = [str(c.id) for c in rows if c.erased_at is None and has_sealed(c, "hold_reason")]
        if held:
            audit_read(session, actor, None, {"listed": held, "hold_reason": True})
        return [(c, Audience.STAFF, None) for c in rows], next_cursor
    roles = dict(
        session.execute(
            sa.select(CaseParticipant.case_id, CaseParticipant.role).where(
                CaseParticipant.organisation_id == actor.organisation_id,
                CaseParticipant.case_id.in_([c.id for c in rows]),
            )
        ).all()
    )
    # Each statement reads its own snapshot (READ COMMITTED): a participation removed between the
    # page and the roles leaves a case the caller no longer takes part in, and no longer sees.
    return [(c, Audience.PARTICIPANT, roles[c.id]) for c in rows if c.id in roles], next_cursor


def timeline(session: Session, actor: Actor, ref: str) -> tuple[list[CaseEvent], bool]:
    """The case's events in the order they happened; whether the caller is MGEC staff (who see every
    entry, its note, client and person). A participant sees only MGEC's entries and its own: the
    other participants' work is theirs to tell."""
    case, seen, _role = load(session, actor, ref)
    staff = seen is Audience.STAFF
    query = sa.select(CaseEvent).where(CaseEvent.case_id == case.id)
    if not staff:
        # why and how the person's consent changed is between the person and MGEC
        query = query.where(timeline_visible_to(actor), CaseEvent.kind != CaseEventKind.CONSENT_CHANGED)
    found = list(session.scalars(query.order_by(CaseEvent.occurred_at, CaseEvent.recorded_at, CaseEvent.id)))
    if staff:
        audit_read(session, actor, case.id, {"timeline": True})
    return found, staff


# ---- writes -----------------------------------------------------------------------------------------


def commit(session: Session) -> None:
    """Commit, turning a lost race (version column, unique key) into a 409."""
    settle(session, what="case")


def prepare(session: Session, actor: Actor, ref: str, if_match: str | None) -> tuple[Case, Audience, Any]:
    """Load the case locked for a write, honouring If-Match (412 when stale)."""
    case, seen, role = load(session, actor, ref, for_update=True)
    require_current(if_match, case_etag(case, seen, role, covered=persons.covered(actor, case)), what="case")
    return case, seen, role


def staff_only(actor: Actor, seen: Audience, what: str) -> None:
    if seen is not Audience.STAFF:
        raise Forbidden(f"Only MGEC staff may {what}.")

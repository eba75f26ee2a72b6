"""Moves of a case along the stage table, holds and resumptions (docs/domain.md, Case). Each commits once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import marshmallow as ma
from sqlalchemy.orm import Session

from .. import audit, events
from ..access import Actor, Role
from ..audit.actions import AuditAction
from ..db import utcnow
from ..errors import Forbidden, InvalidPayload
from . import persons
from .models import Case, CaseEventKind
from .services import add_to_timeline, commit, prepare, staff_only
from .stages import MOVES, PERSONAL_DETAILS, Move, MoveKind, Stage
from .visibility import Audience


def _when(case: Case, occurred_at: datetime | None) -> datetime:
    now = utcnow()
    when = occurred_at or now
    if when > now:
        raise InvalidPayload(errors={"occurred_at": ["must not be in the future"]})
    earliest = case.last_occurred_at or case.opened_at
    if when < earliest:
        raise InvalidPayload(
            errors={"occurred_at": [f"must not be before the previous event ({earliest.isoformat()})"]}
        )
    return when


def _details(schema: type[ma.Schema], raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a move's details; split them into plain JSON and what is sealed as personal."""
    try:
        loaded = schema().load(raw)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise InvalidPayload(
            errors={f"details.{k}" if k != "_schema" else "details": v for k, v in messages.items()}
        ) from None
    plain = {k: v.isoformat() if hasattr(v, "isoformat") else str(v) for k, v in loaded.items()}
    personal = {k: plain.pop(k) for k in list(plain) if k in PERSONAL_DETAILS}
    return {k: loaded[k] for k in loaded}, {"plain": plain, "personal": personal}


def may_make(actor: Actor, move: Move) -> bool:
    """Whether `actor` may make a move of this kind at all: reopening a closed case is an MGEC admin's
    (the participant's role in the case is asked apart, by the stage table's `by`)."""
    return move.kind is not MoveKind.REOPEN or actor.role is Role.MGEC_ADMIN


def transition(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> tuple[Case, Audience, Any]:
    """Move a case along the stage table, recording who, when, a note and the move's details."""
    case, seen, role = prepare(session, actor, ref, if_match)
    target: Stage = data["to"]
    move = MOVES.get((case.stage, target))
    if move is not None:
        if not may_make(actor, move):
            raise Forbidden("Only an MGEC admin may reopen a closed case.")
        if seen is not Audience.STAFF and role not in move.by:
            raise Forbidden(
                f"A participant with role {role.value if role else 'none'} cannot record this move.",
                extra={"allowed_roles": [*sorted(r.value for r in move.by), "mgec"]},
            )
        if move.needs_note and not data.get("note"):
            raise InvalidPayload(errors={"note": [f"a {move.kind.value} move says why"]})
        loaded, stored = _details(move.details, data.get("details") or {})
        when = _when(case, data.get("occurred_at"))
    else:
        loaded, stored, when = {}, {"plain": {}, "personal": {}}, utcnow()
    ended_hold = case.on_hold and target is Stage.CLOSED
    previous, move = case.move_to(target, occurred_at=when, details=loaded)  # 409 when not in the table
    if ended_hold:  # closing ended the hold: the timeline and the participants learn it first
        _held_or_resumed(session, actor, case, CaseEventKind.RESUMED, when, None, stage=previous)
    add_to_timeline(
        session,
        case,
        actor,
        CaseEventKind.MOVED,
        occurred_at=when,
        from_stage=previous,
        to_stage=target,
        details=stored["plain"],
        note=data.get("note"),
        personal_details=stored["personal"] or None,
    )
    _moved(session, actor, case, previous, move, when)
    commit(session)
    return case, seen, role


def _moved(session: Session, actor: Actor, case: Case, previous: Stage, move: Move, when: datetime) -> None:
    """Audit the move and publish its thin event (caller commits)."""
    closed = move.target is Stage.CLOSED
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CASE_CLOSE if closed else AuditAction.CASE_MOVE,
        resource_type="case",
        resource_id=case.id,
        details={"from": previous.value, "to": move.target.value, "move": move.kind.value},
    )
    events.publish(
        session,
        events.EventType.CASE_CLOSED if closed else events.EventType.CASE_STAGE_CHANGED,
        resource_type="case",
        resource_id=case.id,
        data={
            "reference": case.reference,
            "stage": move.target.value,
            "previous_stage": previous.value,
            "occurred_at": when,  # no closure_reason: every participant gets it (STAFF_ONLY_DETAILS)
        },
    )


def hold(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> tuple[Case, Audience, Any]:
    """Put the case on hold without changing its stage (MGEC staff)."""
    case, seen, role = prepare(session, actor, ref, if_match)
    staff_only(actor, seen, "put a case on hold")
    when = _when(case, data.get("occurred_at"))
    case.hold(reason=data["reason"], occurred_at=when)
    _held_or_resumed(session, actor, case, CaseEventKind.HELD, when, data["reason"])
    commit(session)
    return case, seen, role


def resume(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> tuple[Case, Audience, Any]:
    """Resume a case on hold, at the stage it was in (MGEC staff)."""
    case, seen, role = prepare(session, actor, ref, if_match)
    staff_only(actor, seen, "resume a case")
    when = _when(case, data.get("occurred_at"))
    case.resume(occurred_at=when)
    _held_or_resumed(session, actor, case, CaseEventKind.RESUMED, when, data.get("reason"))
    commit(session)
    return case, seen, role


def _held_or_resumed(
    session: Session, actor: Actor, case: Case, kind: CaseEventKind, when: datetime, reason: str | None,
    *, stage: Stage | None = None,
) -> None:
    """A hold or its end in `stage` (by default the case's): timeline, audit, event (caller commits)."""
    stage = stage or case.stage
    add_to_timeline(
        session, case, actor, kind, occurred_at=when, from_stage=stage, to_stage=stage, note=reason
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.CASE_UPDATE,
        resource_type="case",
        resource_id=case.id,
        details={"on_hold": case.on_hold},
    )
    events.publish(
        session,
        events.EventType.CASE_ON_HOLD if case.on_hold else events.EventType.CASE_RESUMED,
        resource_type="case",
        resource_id=case.id,
        data={
            "reference": case.reference,
            "stage": stage.value,
            "on_hold": case.on_hold,
            "occurred_at": when,
        },
    )


def change_consent(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> tuple[Case, Audience, Any]:
    """The person's consent changed (MGEC staff): participants no longer covered lose the person at
    once (views read `share_with` on every request), every participant gets a thin event, and the
    timeline keeps what changed, how and why (an entry for MGEC staff only). A minor's case is shared
    with more kinds only by a guardian's consent (`method: guardian`); withdrawing needs nobody's."""
    case, seen, role = prepare(session, actor, ref, if_match)
    staff_only(actor, seen, "change a case's consent")
    before, after = set(case.share_with or []), set(data["share_with"])
    withdrawn, given = sorted(before - after), sorted(after - before)
    method = data.get("method")
    if given and method is not persons.ConsentMethod.GUARDIAN and persons.is_minor(session, case):
        raise InvalidPayload(
            "The person is a minor: a guardian gives their consent.",
            errors={"method": ["sharing a minor's case with more kinds of organisation needs a guardian's "
                               "consent (method guardian)"]},
        )
    case.share_with = sorted(after)
    now = utcnow()
    add_to_timeline(
        session,
        case,
        actor,
        CaseEventKind.CONSENT_CHANGED,
        occurred_at=now,
        from_stage=case.stage,
        to_stage=case.stage,
        details={"share_with": case.share_with, "withdrawn": withdrawn, "given": given,
                 **({"consent_method": method.value} if method else {})},
        note=data.get("note"),  # sealed under the case's key, like every note of the timeline
    )
    for action, kinds in ((AuditAction.CONSENT_WITHDRAW, withdrawn), (AuditAction.CONSENT_GIVE, given)):
        if kinds:
            audit.record(
                session, actor=actor, action=action, resource_type="case", resource_id=case.id,
                details={"kinds": kinds, "share_with": case.share_with,
                         **({"method": method.value} if method and kinds is given else {})},
            )
    events.publish(
        session,
        events.EventType.CASE_CONSENT_CHANGED,
        resource_type="case",
        resource_id=case.id,
        data={"reference": case.reference, "occurred_at": now},
    )
    commit(session)
    return case, seen, role

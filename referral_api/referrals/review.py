"""Reviewing a referral: the moves of the state table (review, accept, reject, questions and answers,
withdraw), each with its audit and outbox event, committed once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import events
from ..access import Actor
from ..audit.actions import AuditAction
from ..cases import services as cases
from ..cases.models import Case
from ..db import utcnow
from ..errors import DataErased, InvalidPayload, require_current
from ..records import by_id_or_reference, settle
from . import guards, matching
from .models import MessageKind, Referral, ReferralMessage
from .reading import load
from .states import ReferralAction, ReferralStatus
from .submission import (
    apply_person_and_situation,
    check_age,
    check_consent,
    event_data,
    keep_needed,
    minor_and_band,
)
from .trail import audit_referral
from .views import etag
from .visibility import Audience

EVENT_OF = {
    ReferralAction.REVIEW: events.EventType.REFERRAL_UNDER_REVIEW,
    ReferralAction.ACCEPT: events.EventType.REFERRAL_ACCEPTED,
    ReferralAction.REJECT: events.EventType.REFERRAL_REJECTED,
    ReferralAction.REQUEST_INFORMATION: events.EventType.REFERRAL_INFORMATION_REQUESTED,
    ReferralAction.INFORMATION: events.EventType.REFERRAL_INFORMATION_PROVIDED,
    ReferralAction.WITHDRAW: events.EventType.REFERRAL_WITHDRAWN,
}
AUDIT_OF = {
    ReferralAction.REVIEW: AuditAction.REFERRAL_UPDATE,
    ReferralAction.ACCEPT: AuditAction.REFERRAL_ACCEPT,
    ReferralAction.REJECT: AuditAction.REFERRAL_REJECT,
    ReferralAction.REQUEST_INFORMATION: AuditAction.REFERRAL_UPDATE,
    ReferralAction.INFORMATION: AuditAction.REFERRAL_UPDATE,
    ReferralAction.WITHDRAW: AuditAction.REFERRAL_WITHDRAW,
}


def _finish(
    session: Session,
    actor: Actor,
    referral: Referral,
    action: ReferralAction,
    previous: ReferralStatus,
    *,
    details: dict[str, Any] | None = None,
    event_extra: dict[str, Any] | None = None,
) -> Referral:
    audit_referral(
        session,
        actor,
        AUDIT_OF[action],
        referral,
        details={
            "move": action.value,
            "from": previous.value,
            "to": referral.status.value,
            **(details or {}),
        },
    )
    events.publish(
        session,
        EVENT_OF[action],
        resource_type="referral",
        resource_id=referral.id,
        data=event_data(referral, previous_status=previous.value, **(event_extra or {})),
    )
    settle(session, what="referral")
    return referral


def prepare(session: Session, actor: Actor, *, ref: str, if_match: str | None) -> tuple[Referral, Audience]:
    """Load the referral locked for a move, honouring If-Match (412 when stale). An erased referral is
    moved by nobody (410, as a read of its personal data): its person's key is shredded, so no case can
    be opened on it, no question asked nor answered, and it is closed already (retention.py)."""
    referral, seen = load(session, actor, ref=ref, for_update=True)
    if referral.erased_at is not None:
        raise DataErased(
            "The referral's personal data was erased: it can no longer be moved.",
            extra={"erased_at": referral.erased_at.isoformat(), "current_status": referral.status.value},
        )
    require_current(if_match, etag(referral), what="referral")
    return referral, seen


def review(session: Session, actor: Actor, *, ref: str, if_match: str | None = None) -> Referral:
    referral, seen = prepare(session, actor, ref=ref, if_match=if_match)
    guards.coordinator(actor, seen)
    previous = referral.move(ReferralAction.REVIEW, now=utcnow())
    referral.reviewed_by_user_id = actor.user_id
    return _finish(session, actor, referral, ReferralAction.REVIEW, previous)


def _find_case(session: Session, ref: str) -> Case:
    case = session.scalar(sa.select(Case).where(by_id_or_reference(Case, ref)))
    if case is None:
        raise InvalidPayload(errors={"case_id": ["no such case"]})
    return case


def accept(
    session: Session, actor: Actor, *, ref: str, data: dict[str, Any], if_match: str | None = None
) -> Referral:
    """Accept: open a case (sharing the person's data key) or link the referral to an existing one."""
    referral, seen = prepare(session, actor, ref=ref, if_match=if_match)
    guards.coordinator(actor, seen)
    guards.four_eyes(actor, referral)
    now = utcnow()
    previous = referral.move(ReferralAction.ACCEPT, now=now)
    opened = data.get("case_id") is None
    if opened:
        case = cases.open_case(
            session,
            actor,
            data_key_id=referral.data_key_id,
            share_with=list(referral.share_with),
            referred_at=referral.submitted_at,
            internal=referral.identified_country == "MN",
            referral_id=referral.id,
            now=now,
        )
    else:
        case = _find_case(session, data["case_id"])
    cases.add_referrer(
        session,
        case,
        organisation_id=referral.submitted_by_organisation_id,
        external_reference=referral.external_reference,
    )
    referral.link_case(case.id)
    referral.decided_by_user_id, referral.decided_at = actor.user_id, now
    if data.get("note"):
        referral.decision_note = data["note"]
    return _finish(
        session,
        actor,
        referral,
        ReferralAction.ACCEPT,
        previous,
        details={"case_id": str(case.id), "case_opened": opened},
        event_extra={"case_id": case.id, "case_reference": case.reference},
    )


def reject(
    session: Session, actor: Actor, *, ref: str, data: dict[str, Any], if_match: str | None = None
) -> Referral:
    referral, seen = prepare(session, actor, ref=ref, if_match=if_match)
    guards.coordinator(actor, seen)
    guards.four_eyes(actor, referral)
    now = utcnow()
    previous = referral.move(ReferralAction.REJECT, now=now)
    referral.reject_reason = data["reason"]
    referral.decision_note = data["note"]
    referral.decided_by_user_id, referral.decided_at = actor.user_id, now
    return _finish(
        session,
        actor,
        referral,
        ReferralAction.REJECT,
        previous,
        details={"reason": data["reason"].value},
        event_extra={"reason_code": data["reason"].value},
    )


def _message(referral: Referral, actor: Actor, kind: MessageKind, text: str) -> None:
    # The message shares the referral's data key: erasing the referral erases its messages too.
    referral.messages.append(
        ReferralMessage(
            id=uuid.uuid4(),
            kind=kind,
            text=text,
            data_key_id=referral.data_key_id,
            organisation_id=actor.organisation_id,
            user_id=actor.user_id,
        )
    )


def request_information(
    session: Session, actor: Actor, *, ref: str, data: dict[str, Any], if_match: str | None = None
) -> Referral:
    referral, seen = prepare(session, actor, ref=ref, if_match=if_match)
    guards.coordinator(actor, seen)
    previous = referral.move(ReferralAction.REQUEST_INFORMATION, now=utcnow())
    _message(referral, actor, MessageKind.QUESTION, data["questions"])
    return _finish(session, actor, referral, ReferralAction.REQUEST_INFORMATION, previous)


def _age_after(
    referral: Referral, person: dict[str, Any], situation: dict[str, Any]
) -> tuple[bool | None, Any]:
    """Minority and age band once an answer changes the date of birth, the estimated age or the day of
    identification, checked as a submission is: the date of birth not after that day, an estimate sent
    within a year of the date of birth the referral will have (a date of birth sent alone replaces what
    an earlier estimate said), and the consent and legal basis right for the age (child protection for
    a minor only)."""
    identified_on = situation.get("identified_on", referral.identified_on)
    born = person.get("date_of_birth", referral.date_of_birth)
    named = "person.date_of_birth" if "date_of_birth" in person else "situation.identified_on"
    sent = {"date_of_birth": born, "estimated_age": person.get("estimated_age")}
    check_age(sent, identified_on, born_field=named)
    values = {"date_of_birth": born, "estimated_age": person.get("estimated_age", referral.estimated_age)}
    minor, band = minor_and_band(values, identified_on)
    consent = {"given": referral.consent_given, "method": referral.consent_method}
    check_consent({"consent": consent, "legal_basis": referral.legal_basis}, minor)
    return minor, band


def provide_information(
    session: Session, actor: Actor, *, ref: str, data: dict[str, Any], if_match: str | None = None
) -> Referral:
    """The submitting partner answers (or adds facts): back to submitted, duplicates looked for again."""
    if data.get("person") or data.get("situation"):
        matching.hold_matching(session)  # before the referral's row lock: its sharers are recounted
    referral, _seen = prepare(session, actor, ref=ref, if_match=if_match)
    guards.submitter(actor, referral)
    previous = referral.move(ReferralAction.INFORMATION, now=utcnow())
    person, situation = dict(data.get("person") or {}), dict(data.get("situation") or {})
    if not referral.consent_given:
        dropped = keep_needed(referral.legal_basis, person, situation)  # type: ignore[arg-type]
        referral.minimised = sorted(set(referral.minimised) | set(dropped))
    if "date_of_birth" in person or "estimated_age" in person or "identified_on" in situation:
        referral.is_minor, referral.age_band = _age_after(referral, person, situation)
    apply_person_and_situation(referral, person, situation)
    _message(referral, actor, MessageKind.ANSWER, data["answer"])
    if person or situation:
        keys, old = matching.store_keys(session, referral, matching.person_values(referral))
        referral.possible_duplicates = matching.count_candidates(session, referral.id, keys)
        # those that shared a key before (one fewer, perhaps) and those that share one now
        matching.recount_sharers(session, referral.id, keys | old)
    return _finish(
        session,
        actor,
        referral,
        ReferralAction.INFORMATION,
        previous,
        details={"fields_changed": len(person) + len(situation)},
    )


def withdraw(
    session: Session, actor: Actor, *, ref: str, data: dict[str, Any], if_match: str | None = None
) -> Referral:
    referral, _seen = prepare(session, actor, ref=ref, if_match=if_match)
    guards.submitter(actor, referral)
    now = utcnow()
    previous = referral.move(ReferralAction.WITHDRAW, now=now)
    referral.decided_at = now
    if data.get("note"):
        referral.decision_note = data["note"]
    return _finish(session, actor, referral, ReferralAction.WITHDRAW, previous)


def withdraw_erased(session: Session, actor: Actor | None, referral: Referral, *, reason: str,
                    now: datetime) -> None:
    """An open referral whose person is erased is withdrawn (the move every open state allows): no one
    can move it any more (`prepare` answers 410), so it leaves the coordinators' queue and the partner
    learns it by the withdrawn event. Audited as that move, with the erasure's reason code; the caller
    (the erasure) commits. A referral already final stays as it is."""
    if not referral.is_open:
        return
    previous = referral.move(ReferralAction.WITHDRAW, now=now)
    referral.decided_at = now
    audit_referral(session, actor, AUDIT_OF[ReferralAction.WITHDRAW], referral,  # type: ignore[arg-type]
                   details={"move": ReferralAction.WITHDRAW.value, "from": previous.value,
                            "to": referral.status.value, "erasure": reason})
    events.publish(session, EVENT_OF[ReferralAction.WITHDRAW], resource_type="referral",
                   resource_id=referral.id, data=event_data(referral, previous_status=previous.value))

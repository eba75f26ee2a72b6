"""Referral use cases: submit, read, list, and the moves of the state table. Each commits once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from .. import audit, events
from ..access import Actor
from ..audit.actions import AuditAction, Outcome
from ..cases import services as cases
from ..cases.models import Case
from ..db import commit, utcnow
from ..errors import Conflict, Forbidden, InvalidPayload, NotFound, require_current
from ..http import decode_cursor, encode_cursor
from ..privacy import load_keys
from ..references import next_reference
from . import matching
from .models import MatchKey, MessageKind, Referral, ReferralMessage, age_band, age_on
from .queue import submitted_by_actor
from .states import ReferralAction, ReferralStatus
from .views import etag
from .visibility import Audience, audience, is_submitter, visible_to
from .vocab import ConsentMethod, LegalBasis

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

# Without consent a referral keeps only what its legal basis needs (DOMAIN.md, Referral: consent).
_IDENTITY = frozenset(
    {
        "family_name",
        "given_name",
        "names_cyrillic",
        "sex",
        "date_of_birth",
        "estimated_age",
        "nationality",
        "passport_number",
        "national_id",
    }
)
_SITUATION = frozenset(
    {
        "identified_country",
        "identified_city",
        "identified_on",
        "exploitation_types",
        "urgency",
        "needs",
        "safety_risk",
        "contact_family",
    }
)
NEEDED_WITHOUT_CONSENT: dict[LegalBasis, frozenset[str]] = {
    # to protect someone in danger: who, and how to reach them
    LegalBasis.VITAL_INTEREST: _IDENTITY | _SITUATION | {"phone", "languages", "current_location"},
    # child protection authorities trace the family and need the account of what happened
    LegalBasis.CHILD_PROTECTION: _IDENTITY
    | _SITUATION
    | {"home_province", "languages", "current_location", "narrative"},
    # a legal duty to report: identity and the facts of the finding only
    LegalBasis.LEGAL_OBLIGATION: _IDENTITY | _SITUATION,
}


# ---- submission ------------------------------------------------------------------------------------


def _is_minor(person: dict[str, Any], identified_on: date) -> tuple[bool | None, Any]:
    born = person.get("date_of_birth")
    age = age_on(born, identified_on) if born else person.get("estimated_age")
    if age is None:
        return None, None
    return age < 18, age_band(max(age, 0))


def _check_consent(data: dict[str, Any], minor: bool | None) -> None:
    consent, basis = data["consent"], data.get("legal_basis")
    if not consent["given"] and basis is None:
        raise InvalidPayload(
            errors={
                "legal_basis": [
                    "Required when consent.given is false: "
                    "vital_interest, child_protection or legal_obligation."
                ]
            }
        )
    if minor:
        guardian = consent["given"] and consent.get("method") is ConsentMethod.GUARDIAN
        if not guardian and basis is not LegalBasis.CHILD_PROTECTION:
            raise InvalidPayload(
                "The person is a minor at identified_on.",
                errors={
                    "consent.method": [
                        "A minor's consent is given by a guardian (method guardian), "
                        "or the referral rests on legal_basis child_protection."
                    ]
                },
            )


def _minimise(data: dict[str, Any]) -> list[str]:
    """Drop what the legal basis does not need when there is no consent; return what was dropped."""
    if data["consent"]["given"]:
        return []
    needed = NEEDED_WITHOUT_CONSENT[data["legal_basis"]]
    dropped = []
    for group in ("person", "situation"):
        for name in list(data.get(group, {})):
            if name not in needed:
                del data[group][name]
                dropped.append(f"{group}.{name}")
    data["consent"]["share_with"] = []
    return sorted(dropped)


def _apply_person_and_situation(
    referral: Referral, person: dict[str, Any], situation: dict[str, Any]
) -> None:
    for name, value in person.items():
        setattr(referral, name, value)
    for name, value in situation.items():
        setattr(referral, name, value)


def submit(session: Session, actor: Actor, data: dict[str, Any]) -> Referral:
    """A partner submits a referral; duplicates are looked for at once, through blind indexes only."""
    person, situation, consent = data["person"], data["situation"], data["consent"]
    minor, band = _is_minor(person, situation["identified_on"])
    _check_consent(data, minor)
    dropped = _minimise(data)
    if data.get("external_reference") and session.scalar(
        sa.select(Referral.id).where(
            Referral.submitted_by_organisation_id == actor.organisation_id,
            Referral.external_reference == data["external_reference"],
        )
    ):
        raise Conflict(
            "Your organisation has submitted a referral with this external_reference already.",
            errors={"external_reference": ["already used by your organisation"]},
        )
    now = utcnow()
    referral = Referral(
        id=uuid.uuid4(),
        reference=next_reference(session, "REF", now=now),
        status=ReferralStatus.SUBMITTED,
        concern=data["concern"],
        source=data["source"],
        external_reference=data.get("external_reference"),
        submitted_by_organisation_id=actor.organisation_id,
        submitted_by_client_id=actor.client_id,
        submitted_by_user_id=actor.user_id,
        submitted_at=now,
        status_changed_at=now,
        is_minor=minor,
        age_band=band,
        consent_given=consent["given"],
        consent_method=consent.get("method"),
        share_with=sorted(set(consent.get("share_with") or [])),
        legal_basis=data.get("legal_basis"),
        minimised=dropped,
        consent_obtained_on=consent.get("obtained_on"),
        consent_obtained_by=consent.get("obtained_by"),
        consent_language=consent.get("language"),
    )
    _apply_person_and_situation(referral, person, situation)
    session.add(referral)
    # Flushed here, not by the autoflush of the next query: a concurrent submission with the same
    # external_reference then fails on the unique key inside the mapping to 409, never as a 500.
    _settle(session, Session.flush, "external_reference")
    keys = matching.store_keys(session, referral, {**person, "identified_on": situation["identified_on"]})
    referral.possible_duplicates = matching.count_candidates(session, referral.id, keys)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REFERRAL_SUBMIT,
        resource_type="referral",
        resource_id=referral.id,
        details={"possible_duplicates": referral.possible_duplicates, "minimised": len(dropped)},
    )
    events.publish(
        session,
        events.EventType.REFERRAL_SUBMITTED,
        resource_type="referral",
        resource_id=referral.id,
        data=_event_data(referral),
    )
    _commit(session, "external_reference")
    return referral


# ---- reading ---------------------------------------------------------------------------------------


def _lookup(ref: str) -> sa.ColumnElement[bool]:
    try:
        return Referral.id == uuid.UUID(ref)
    except ValueError:
        return Referral.reference == ref.upper()


def _deny(session: Session, actor: Actor, ref: str, found: Referral | None) -> NotFound:
    """Audit a refused look at a referral (committed on its own: the request ends in 404)."""
    audit.record(
        session,
        actor=actor,
        action=AuditAction.HTTP_REQUEST_DENY,
        resource_type="referral",
        resource_id=found.id if found else None,
        outcome=Outcome.DENIED,
        details={"reason": "not visible" if found else "no such referral"},
    )
    commit(session)
    return NotFound(f"No referral {ref} that you may see.")


def _load(session: Session, actor: Actor, ref: str, *, for_update: bool = False) -> tuple[Referral, Audience]:
    query = sa.select(Referral).where(_lookup(ref)).options(selectinload(Referral.messages))
    if for_update:
        # Concurrent moves of one referral queue here; the first wins, the rest see its result (409).
        query = query.with_for_update(of=Referral)
    referral = session.scalar(query)
    seen = audience(actor, referral) if referral is not None else None
    if referral is None or seen is None:
        raise _deny(session, actor, ref, referral)
    return referral, seen


def read(session: Session, actor: Actor, ref: str) -> tuple[Referral, Audience]:
    """One referral in the caller's view; a read that shows personal data is audited."""
    referral, seen = _load(session, actor, ref)
    if seen is not Audience.STATUS:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.REFERRAL_READ,
            resource_type="referral",
            resource_id=referral.id,
        )
        commit(session)
    return referral, seen


def list_for(
    session: Session, actor: Actor, args: dict[str, Any]
) -> tuple[list[tuple[Referral, Audience]], str | None]:
    """A keyset page of the referrals the caller may see, newest first."""
    query = sa.select(Referral).where(visible_to(actor)).options(selectinload(Referral.messages))
    for name in ("status", "source", "identified_country", "urgency"):
        if args.get(name) is not None:
            query = query.where(getattr(Referral, name) == args[name])
    if args.get("submitted_after") is not None:
        query = query.where(Referral.submitted_at > args["submitted_after"])
    if args.get("overdue") is not None:
        overdue = Referral.overdue_since.is_not(None)
        query = query.where(overdue if args["overdue"] else ~overdue)
    if args.get("cursor"):
        at, rid = decode_cursor(args["cursor"], size=2)
        try:
            at, rid = datetime.fromisoformat(at), uuid.UUID(rid)
        except (TypeError, ValueError):
            raise InvalidPayload(errors={"cursor": ["not a cursor this list gave out"]}) from None
        query = query.where(
            sa.tuple_(Referral.submitted_at, Referral.id) < sa.tuple_(sa.literal(at), sa.literal(rid))
        )
    limit = args["limit"]
    rows = list(
        session.scalars(query.order_by(Referral.submitted_at.desc(), Referral.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1].submitted_at.isoformat(), str(rows[-1].id)])
    items = [(r, audience(actor, r) or Audience.STATUS) for r in rows]
    personal = [r for r, seen in items if seen is not Audience.STATUS]
    if personal:
        load_keys(session, personal)
        audit.record(
            session,
            actor=actor,
            action=AuditAction.REFERRAL_READ,
            resource_type="referral",
            details={"listed": [str(r.id) for r in personal]},
        )
        commit(session)
    return items, next_cursor


# ---- moves -----------------------------------------------------------------------------------------


def _event_data(referral: Referral, **extra: Any) -> dict[str, Any]:
    return {
        "reference": referral.reference,
        "external_reference": referral.external_reference,
        "status": referral.status.value,
        "occurred_at": referral.status_changed_at,
        **extra,
    }


def _commit(session: Session, field: str | None = None) -> None:
    _settle(session, commit, field)


def _settle(session: Session, step: Callable[[Session], None], field: str | None = None) -> None:
    """Run a commit or a flush, turning a lost race (version column, unique key) into a 409."""
    try:
        step(session)
    except StaleDataError:
        session.rollback()
        raise Conflict("The referral was changed by someone else at the same time; read it again.") from None
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "The change conflicts with another one made at the same time.",
            errors={field: ["conflicts with a concurrent change"]} if field else None,
        ) from None


def _coordinator(actor: Actor, seen: Audience) -> None:
    if seen is not Audience.STAFF or not actor.is_person:
        raise Forbidden("Only an MGEC coordinator may make this move.")


def _four_eyes(actor: Actor, referral: Referral) -> None:
    if submitted_by_actor(actor, referral):
        raise Forbidden(
            "Four eyes: a referral is decided by a coordinator other than the one who submitted it."
        )


def _submitter(actor: Actor, referral: Referral) -> None:
    if not is_submitter(actor, referral):
        raise Forbidden("Only the organisation that submitted the referral may make this move.")


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
    audit.record(
        session,
        actor=actor,
        action=AUDIT_OF[action],
        resource_type="referral",
        resource_id=referral.id,
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
        data=_event_data(referral, previous_status=previous.value, **(event_extra or {})),
    )
    _commit(session)
    return referral


def _prepare(session: Session, actor: Actor, ref: str, if_match: str | None) -> tuple[Referral, Audience]:
    referral, seen = _load(session, actor, ref, for_update=True)
    require_current(if_match, etag(referral), what="referral")
    return referral, seen


def review(session: Session, actor: Actor, ref: str, *, if_match: str | None = None) -> Referral:
    referral, seen = _prepare(session, actor, ref, if_match)
    _coordinator(actor, seen)
    previous = referral.move(ReferralAction.REVIEW, now=utcnow())
    referral.reviewed_by_user_id = actor.user_id
    return _finish(session, actor, referral, ReferralAction.REVIEW, previous)


def _find_case(session: Session, ref: str) -> Case:
    try:
        condition = Case.id == uuid.UUID(ref)
    except ValueError:
        condition = Case.reference == ref.upper()
    case = session.scalar(sa.select(Case).where(condition))
    if case is None:
        raise InvalidPayload(errors={"case_id": ["no such case"]})
    return case


def accept(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> Referral:
    """Accept: open a case (sharing the person's data key) or link the referral to an existing one."""
    referral, seen = _prepare(session, actor, ref, if_match)
    _coordinator(actor, seen)
    _four_eyes(actor, referral)
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
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> Referral:
    referral, seen = _prepare(session, actor, ref, if_match)
    _coordinator(actor, seen)
    _four_eyes(actor, referral)
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
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> Referral:
    referral, seen = _prepare(session, actor, ref, if_match)
    _coordinator(actor, seen)
    previous = referral.move(ReferralAction.REQUEST_INFORMATION, now=utcnow())
    _message(referral, actor, MessageKind.QUESTION, data["questions"])
    return _finish(session, actor, referral, ReferralAction.REQUEST_INFORMATION, previous)


def provide_information(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> Referral:
    """The submitting partner answers (or adds facts): back to submitted, duplicates looked for again."""
    referral, _seen = _prepare(session, actor, ref, if_match)
    _submitter(actor, referral)
    previous = referral.move(ReferralAction.INFORMATION, now=utcnow())
    person, situation = dict(data.get("person") or {}), dict(data.get("situation") or {})
    if not referral.consent_given:
        needed = NEEDED_WITHOUT_CONSENT[referral.legal_basis]  # type: ignore[index]
        dropped = [
            f"{g}.{n}"
            for g, part in (("person", person), ("situation", situation))
            for n in part
            if n not in needed
        ]
        person = {k: v for k, v in person.items() if k in needed}
        situation = {k: v for k, v in situation.items() if k in needed}
        referral.minimised = sorted(set(referral.minimised) | set(dropped))
    if "date_of_birth" in person or "estimated_age" in person or "identified_on" in situation:
        values = {"date_of_birth": referral.date_of_birth, "estimated_age": referral.estimated_age, **person}
        minor, band = _is_minor(values, situation.get("identified_on", referral.identified_on))
        if minor and not referral.is_minor:
            _check_consent(
                {
                    "consent": {"given": referral.consent_given, "method": referral.consent_method},
                    "legal_basis": referral.legal_basis,
                },
                minor,
            )
        referral.is_minor, referral.age_band = minor, band
    _apply_person_and_situation(referral, person, situation)
    _message(referral, actor, MessageKind.ANSWER, data["answer"])
    if person or situation:
        keys = matching.store_keys(session, referral, matching.person_values(referral))
        referral.possible_duplicates = matching.count_candidates(session, referral.id, keys)
    return _finish(
        session,
        actor,
        referral,
        ReferralAction.INFORMATION,
        previous,
        details={"fields_changed": len(person) + len(situation)},
    )


def withdraw(
    session: Session, actor: Actor, ref: str, data: dict[str, Any], *, if_match: str | None = None
) -> Referral:
    referral, _seen = _prepare(session, actor, ref, if_match)
    _submitter(actor, referral)
    now = utcnow()
    previous = referral.move(ReferralAction.WITHDRAW, now=now)
    referral.decided_at = now
    if data.get("note"):
        referral.decision_note = data["note"]
    return _finish(session, actor, referral, ReferralAction.WITHDRAW, previous)


# ---- duplicates ------------------------------------------------------------------------------------


def matches(session: Session, actor: Actor, ref: str) -> list[matching.Match]:
    """Duplicate candidates of a referral: found through its stored blind indexes, then scored."""
    referral, seen = _load(session, actor, ref)
    _coordinator(actor, seen)
    keys = set(
        session.execute(
            sa.select(MatchKey.kind, MatchKey.digest).where(MatchKey.referral_id == referral.id)
        ).all()
    )
    found = matching.candidates(session, referral.id, keys, {"date_of_birth": referral.date_of_birth})
    audit.record(
        session,
        actor=actor,
        action=AuditAction.REFERRAL_SEARCH_DUPLICATES,
        resource_type="referral",
        resource_id=referral.id,
        details={"candidates": len(found)},
    )
    commit(session)
    return found

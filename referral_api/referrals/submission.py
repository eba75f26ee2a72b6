"""Submitting a referral: consent and its legal basis, minimisation, the record, its match keys."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import events
from ..access import Actor
from ..audit.actions import AuditAction
from ..db import commit_at_end, pipelined, utcnow
from ..errors import Conflict, InvalidPayload
from ..records import insert_now, settle
from ..references import next_reference_with
from . import matching
from .models import Referral, age_band, age_on
from .states import ReferralStatus
from .trail import audit_referral
from .vocab import ConsentMethod, LegalBasis

# Without consent a referral keeps only what its legal basis needs (docs/domain.md, Referral: consent).
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


def minor_and_band(person: dict[str, Any], identified_on: date) -> tuple[bool | None, Any]:
    """Whether the person is a minor on `identified_on`, and their age band (None, None if unknown)."""
    born = person.get("date_of_birth")
    age = age_on(born, identified_on) if born else person.get("estimated_age")
    if age is None:
        return None, None
    return age < 18, age_band(max(age, 0))


# An estimated age may be a year off the age a date of birth gives; more is a contradiction.
AGE_TOLERANCE_YEARS = 1


def check_age(
    person: dict[str, Any], identified_on: date, *, born_field: str = "person.date_of_birth"
) -> None:
    """A date of birth is not after the day the person was identified (422 naming `born_field`), and an
    estimated age given with it is the age it gives then, within AGE_TOLERANCE_YEARS (422 naming
    `person.estimated_age`): a contradicting estimate would be ignored, and with it the minors' rules."""
    born, estimated = person.get("date_of_birth"), person.get("estimated_age")
    if born is None:
        return
    if born > identified_on:
        raise InvalidPayload(
            "The date of birth is after the day the person was identified.",
            errors={born_field: ["Must not be after situation.identified_on."]},
        )
    age = age_on(born, identified_on)
    if estimated is not None and abs(age - estimated) > AGE_TOLERANCE_YEARS:
        raise InvalidPayload(
            "The estimated age contradicts the date of birth.",
            errors={
                "person.estimated_age": [
                    f"Contradicts date_of_birth, which gives {age} at situation.identified_on; "
                    "leave estimated_age out when the date of birth is known."
                ]
            },
        )


def check_consent(data: dict[str, Any], minor: bool | None) -> None:
    """Without consent a legal basis is needed; child protection is a basis for a minor only; a
    minor's consent is a guardian's, or the referral rests on child protection."""
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
    if basis is LegalBasis.CHILD_PROTECTION and not minor:
        raise InvalidPayload(
            "The person is not a minor at identified_on.",
            errors={
                "legal_basis": [
                    "child_protection is the legal basis for a minor only: "
                    "the person is 18 or older at situation.identified_on."
                ]
            },
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


def keep_needed(basis: LegalBasis, person: dict[str, Any], situation: dict[str, Any]) -> list[str]:
    """Without consent, drop from `person` and `situation` (in place) what `basis` does not need;
    return the dropped names (`person.phone`, ...), sorted."""
    needed = NEEDED_WITHOUT_CONSENT[basis]
    dropped = []
    for group, part in (("person", person), ("situation", situation)):
        for name in [n for n in part if n not in needed]:
            del part[name]
            dropped.append(f"{group}.{name}")
    return sorted(dropped)


def minimise(data: dict[str, Any]) -> list[str]:
    """Drop what the legal basis does not need when there is no consent; return what was dropped."""
    if data["consent"]["given"]:
        return []
    data["consent"]["share_with"] = []
    return keep_needed(data["legal_basis"], data.get("person", {}), data.get("situation", {}))


def apply_person_and_situation(referral: Referral, person: dict[str, Any], situation: dict[str, Any]) -> None:
    """Set the person's and the situation's fields (the encrypted ones are sealed at the next flush)."""
    for name, value in person.items():
        setattr(referral, name, value)
    for name, value in situation.items():
        setattr(referral, name, value)


def event_data(referral: Referral, **extra: Any) -> dict[str, Any]:
    """The thin data of a referral's outbox event (no personal field)."""
    return {
        "reference": referral.reference,
        "external_reference": referral.external_reference,
        "status": referral.status.value,
        "occurred_at": referral.status_changed_at,
        **extra,
    }


def _insert(session: Session, referral: Referral, keys: set[tuple[str, str]]) -> None:
    """Store the new referral, its data key, its match keys and its outbox event in one round trip, and
    when it has possible duplicates, recount theirs (one UPDATE in the same round trip). The referral's
    INSERT (Core, records.insert_now) creates the person's data key and seals the personal fields first.
    The organisation's external_reference taken already (before, or by a concurrent submission) is a
    409 naming the field: the unique key checks it, with no read beforehand."""
    if referral.possible_duplicates:
        matching.hold_matching(session)  # before the sharers' rows are updated (see hold_matching)
    try:
        with pipelined(session):
            insert_now(session, referral)
            matching.add_keys(session, referral.id, keys)
            if referral.possible_duplicates:  # the earlier referrals count this one too
                matching.recount_sharers(session, referral.id, keys)
            events.publish_row(
                session,
                events.EventType.REFERRAL_SUBMITTED,
                resource_type="referral",
                resource_id=referral.id,
                data=event_data(referral),
            )
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "Your organisation has submitted a referral with this external_reference already.",
            errors={"external_reference": ["already used by your organisation"]},
        ) from None


def _new_referral(
    session: Session,
    actor: Actor,
    data: dict[str, Any],
    *,
    now: datetime,
    minor: bool | None,
    band: Any,
    dropped: list[str],
    keys: set[tuple[str, str]],
) -> Referral:
    consent = data["consent"]
    # The duplicate count (before the INSERT: every sharer is another referral) with the reference.
    sharers, params = matching.count_sharing(None, keys)
    reference, possible_duplicates = next_reference_with(session, "REF", sharers, now=now, params=params)
    referral = Referral(
        id=uuid.uuid4(),
        reference=reference,
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
        possible_duplicates=possible_duplicates,
        messages=[],  # new: no read of its (empty) thread when it is rendered
    )
    apply_person_and_situation(referral, data["person"], data["situation"])
    return referral


def submit(session: Session, actor: Actor, *, data: dict[str, Any]) -> Referral:
    """A partner submits a referral; duplicates are looked for at once, through blind indexes only.

    Round trips: the duplicate count with the reference (one statement on PostgreSQL); with possible
    duplicates only, the matching lock (matching.hold_matching); the data key with the referral, its
    match keys, the recount of its possible duplicates' own counts (only when it has some) and its
    outbox event (in one pipeline on PostgreSQL); at the commit (inside a unit of work, the unit's) the
    sealed audit entry.

    Two submissions of one person at the same moment: each counts the referrals committed before its
    count statement, and recounts those visible when its pipeline runs; a submission that commits in
    between the other's two is missed by the other's own count (the next submission, answer or
    erasure touching their keys recounts them). A submission that found no duplicate takes no lock."""
    person, situation = data["person"], data["situation"]
    check_age(person, situation["identified_on"])
    minor, band = minor_and_band(person, situation["identified_on"])
    check_consent(data, minor)
    dropped = minimise(data)
    keys = matching.match_keys(session, {**person, "identified_on": situation["identified_on"]})
    referral = _new_referral(session, actor, data, now=utcnow(), minor=minor, band=band, dropped=dropped,
                             keys=keys)
    _insert(session, referral, keys)
    # The audit entry stays pending until the commit (the unit's, inside one): it is then inserted
    # sealed when the chain's head is free, never updated (see audit/services.py).
    audit_referral(
        session,
        actor,
        AuditAction.REFERRAL_SUBMIT,
        referral,
        details={"possible_duplicates": referral.possible_duplicates, "minimised": len(dropped)},
    )
    settle(session, what="referral", step=commit_at_end)
    return referral

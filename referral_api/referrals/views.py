"""A referral as each audience sees it: the documents the output schemas describe."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..cases import persons as case_persons
from ..cases import referred as cases_referred
from ..cases.models import Case
from ..privacy import readable
from .models import Referral
from .schemas import ReferralPartnerSchema, ReferralStaffSchema, ReferralStatusSchema
from .states import MOVES, Mover, allowed_actions
from .visibility import Audience

PERSON_FIELDS = (
    "family_name",
    "given_name",
    "names_cyrillic",
    "aliases",
    "sex",
    "date_of_birth",
    "estimated_age",
    "nationality",
    "passport_number",
    "national_id",
    "phone",
    "home_province",
    "languages",
    "current_location",
)
SITUATION_FIELDS = (
    "identified_country",
    "identified_city",
    "identified_on",
    "exploitation_types",
    "narrative",
    "urgency",
    "needs",
    "safety_risk",
    "contact_family",
)
CONSENT_FIELDS = {  # API name -> model attribute
    "given": "consent_given",
    "obtained_on": "consent_obtained_on",
    "obtained_by": "consent_obtained_by",
    "method": "consent_method",
    "language": "consent_language",
    "share_with": "share_with",
}

_SCHEMAS = {
    Audience.STAFF: ReferralStaffSchema(),
    Audience.PARTNER: ReferralPartnerSchema(),
    Audience.STATUS: ReferralStatusSchema(),
}


def _actions_for(referral: Referral, audience: Audience) -> list[str]:
    who = Mover.COORDINATOR if audience is Audience.STAFF else Mover.SUBMITTER
    return [a for a in allowed_actions(referral.status) if MOVES[a].by is who]  # type: ignore[index]


def document(referral: Referral, audience: Audience) -> dict[str, Any]:
    """The referral in the schema of `audience`; decrypts only when that audience sees personal data.

    An erased referral (crypto-shredded) shows its plain facts, `erased: true` and `person: null`."""
    erased = referral.erased_at is not None
    doc: dict[str, Any] = {
        "id": referral.id,
        "reference": referral.reference,
        "external_reference": referral.external_reference,
        "status": referral.status,
        "submitted_at": referral.submitted_at,
        "status_changed_at": referral.status_changed_at,
        "decided_at": referral.decided_at,
        "reject_reason": referral.reject_reason,
        "case_id": referral.case_id,
        "erased": erased,
        "erased_at": referral.erased_at,
    }
    if audience is not Audience.STATUS:
        doc.update(
            concern=referral.concern,
            source=referral.source,
            is_minor=referral.is_minor,
            legal_basis=referral.legal_basis,
            minimised=referral.minimised,
            person=None if erased else {f: getattr(referral, f) for f in PERSON_FIELDS},
            situation={f: readable(referral, f) for f in SITUATION_FIELDS},
            consent={k: readable(referral, attr) for k, attr in CONSENT_FIELDS.items()},
            messages=[
                {
                    "id": m.id,
                    "kind": m.kind,
                    "text": None if erased else m.text,
                    "organisation_id": m.organisation_id,
                    "created_at": m.created_at,
                }
                for m in referral.messages
            ],
            allowed_actions=_actions_for(referral, audience),
        )
    if audience is Audience.STAFF:
        doc.update(
            submitted_by_organisation_id=referral.submitted_by_organisation_id,
            age_band=referral.age_band,
            decision_note=readable(referral, "decision_note"),
            possible_duplicates=referral.possible_duplicates,
        )
    return _SCHEMAS[audience].dump(doc)


def etag(referral: Referral) -> str:
    """Changes with every write (the version column), whoever looks."""
    return '"' + hashlib.sha256(f"{referral.id}:{referral.version}".encode()).hexdigest()[:32] + '"'


def person_of_case(session: Session, case_id: uuid.UUID) -> dict[str, Any] | None:
    """The person fields of the referral that opened the case (the case view asks through
    cases.persons, since cases never import referrals).

    Accepting a referral that opens a case gives the case that referral's data key (review.accept);
    every referral has a key of its own. So the opening referral is the case's one whose key is the
    case's: a referral linked to the case later (a duplicate, perhaps submitted earlier and without
    consent) is never shown under the consent of the one that opened it. None when there is none."""
    referral = session.scalar(_opening_referral(sa.select(Referral), case_id))
    if referral is None or referral.erased_at is not None:
        return None
    return {f: getattr(referral, f) for f in PERSON_FIELDS}


def cases_referred_as(organisation_id: uuid.UUID, external_reference: str) -> sa.Select:
    """The ids of the cases the organisation's referrals numbered `external_reference` were accepted
    into (a referral is linked to a case only by its acceptance); for the status lookup of cases."""
    return sa.select(Referral.case_id).where(
        Referral.submitted_by_organisation_id == organisation_id,
        Referral.external_reference == external_reference,
        Referral.case_id.is_not(None),
    )


def minor_of_case(session: Session, case_id: uuid.UUID) -> bool:
    """Whether the referral that opened the case (as person_of_case finds it) records a minor: its plain
    `is_minor`, kept when the person is erased. A case no referral opened has no minor."""
    return bool(session.scalar(_opening_referral(sa.select(Referral.is_minor), case_id)))


def _opening_referral(query: sa.Select, case_id: uuid.UUID) -> sa.Select:
    """`query` narrowed to the referral that opened the case: the case's one holding the case's key."""
    return (query.join(Case, Case.id == Referral.case_id)
            .where(Referral.case_id == case_id, Referral.data_key_id == Case.data_key_id)
            .order_by(Referral.submitted_at, Referral.id)
            .limit(1))


case_persons.register(person_of_case)
case_persons.register_minor(minor_of_case)
cases_referred.register(cases_referred_as)

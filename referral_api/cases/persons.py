"""The person of a case, as the part that holds it provides it, and who may see which fields.

The person's data lives on the referral(s) linked to a case, and cases sit below referrals: a case
never imports referrals. So the referrals part registers a provider here when it is imported
(`persons.register(fn)`), and the case view asks it for the fields its audience may see. Without a
registered provider a case shows no person at all: it fails closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from ..access import Actor
from .models import Case

PersonProvider = Callable[[Session, uuid.UUID], dict[str, Any] | None]
MinorProvider = Callable[[Session, uuid.UUID], bool]
_provider: list[PersonProvider] = []
_minor: list[MinorProvider] = []


class ConsentMethod(StrEnum):
    """How a change of consent was given: the values of a referral's `consent.method`."""

    WRITTEN = "written"
    VERBAL = "verbal"
    GUARDIAN = "guardian"

# docs/domain.md, Who sees what: an embassy participant sees name, date of birth and documents.
EMBASSY_FIELDS = (
    "family_name",
    "given_name",
    "names_cyrillic",
    "date_of_birth",
    "nationality",
    "passport_number",
    "national_id",
)
EMBASSY_KIND = "embassy"


def register(provider: PersonProvider) -> None:
    """Set the function giving a case's person fields (decrypted), or None when there is none."""
    _provider[:] = [provider]


def register_minor(provider: MinorProvider) -> None:
    """Set the function telling whether a case's person is a minor (the referral that opened it says)."""
    _minor[:] = [provider]


def is_minor(session: Session, case: Case) -> bool:
    """Whether the person of `case` was a minor at identification, as its opening referral records it
    (docs/domain.md: a minor's consent is a guardian's). Without a registered provider: yes (fails closed)."""
    return _minor[0](session, case.id) if _minor else True


def covered(actor: Actor, case: Case) -> bool:
    """Whether the person's consent covers the caller's kind of organisation (MGEC always)."""
    return actor.is_mgec or actor.organisation.kind in (case.share_with or [])


def person_for(session: Session, actor: Actor, case: Case) -> dict[str, Any] | None:
    """The person fields `actor` may see of `case`: all for MGEC staff, by consent for participants."""
    if not _provider or not covered(actor, case):
        return None
    person = _provider[0](session, case.id)
    if person is None or actor.is_mgec:
        return person
    if actor.organisation.kind == EMBASSY_KIND:
        return {k: v for k, v in person.items() if k in EMBASSY_FIELDS}
    return person

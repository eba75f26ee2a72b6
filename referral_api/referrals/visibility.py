"""Who sees what of a referral (docs/domain.md, Who sees what), as checks and as query filters.

MGEC staff see everything; the referring organisation sees what it sent while the referral is open,
then its status only; anyone else gets 404, because even the existence of a record is personal data.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import Actor
from ..organisations.models import Organisation, OrganisationKind
from ..webhooks import visibility as webhook_visibility
from .models import Referral


class Audience(StrEnum):
    STAFF = "staff"
    PARTNER = "partner"
    STATUS = "status"


def audience(actor: Actor, referral: Referral) -> Audience | None:
    """The view `actor` gets of `referral`, or None when it may not know the referral exists."""
    if actor.is_mgec:
        return Audience.STAFF
    if actor.organisation_id == referral.submitted_by_organisation_id:
        return Audience.PARTNER if referral.is_open else Audience.STATUS
    return None


def visible_to(actor: Actor) -> sa.ColumnElement[bool]:
    """The listing filter matching `audience()`: never a post-filter in Python."""
    if actor.is_mgec:
        return sa.true()
    return Referral.submitted_by_organisation_id == actor.organisation_id


def is_submitter(actor: Actor, referral: Referral) -> bool:
    return actor.organisation_id == referral.submitted_by_organisation_id


def organisations_seeing(session: Session, referral_id: uuid.UUID) -> set[uuid.UUID]:
    """For webhooks: MGEC and the submitting organisation (which keeps seeing the status)."""
    submitter = session.scalar(
        sa.select(Referral.submitted_by_organisation_id).where(Referral.id == referral_id)
    )
    if submitter is None:
        return set()
    mgec = session.scalar(sa.select(Organisation.id).where(Organisation.kind == OrganisationKind.MGEC))
    return {submitter} | ({mgec} if mgec else set())


webhook_visibility.register("referral", organisations_seeing)

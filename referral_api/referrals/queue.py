"""The review queue: open referrals, overdue first, then most urgent and oldest (the MGEC console's).

Only plain facts of each referral are read (reference, partner, country, urgency, minor flag, age,
duplicate count): nothing personal is decrypted, so listing the queue is not a read of personal data.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access import Actor
from ..errors import Forbidden
from .models import Referral
from .states import ReferralStatus
from .visibility import visible_to
from .vocab import Urgency

QUEUE_STATUSES = (ReferralStatus.SUBMITTED, ReferralStatus.UNDER_REVIEW, ReferralStatus.INFORMATION_REQUESTED)
_URGENCY_RANK = sa.case(
    {Urgency.EMERGENCY.value: 0, Urgency.URGENT.value: 1, Urgency.ROUTINE.value: 2},
    value=Referral.urgency,
    else_=3,
)
FILTERS = ("status", "identified_country", "source", "urgency")
QUEUE_LIMIT = 500


def review_queue(session: Session, actor: Actor, filters: dict[str, Any]) -> list[Referral]:
    """Referrals waiting for MGEC (submitted, under review, information requested), overdue first."""
    if not actor.is_mgec:
        raise Forbidden("The review queue is MGEC's.")
    query = sa.select(Referral).where(visible_to(actor), Referral.status.in_(QUEUE_STATUSES))
    for name in FILTERS:
        if filters.get(name) is not None:
            query = query.where(getattr(Referral, name) == filters[name])
    # Overdue first (a deadline passed: deadlines/evaluate.py sets overdue_since), then as before.
    overdue_last = Referral.overdue_since.is_(None)
    query = query.order_by(overdue_last, _URGENCY_RANK, Referral.submitted_at, Referral.id).limit(QUEUE_LIMIT)
    return list(session.scalars(query))


def submitted_by_actor(actor: Actor, referral: Referral) -> bool:
    """Four eyes: whether `actor` is the person who submitted `referral` (then another decides it)."""
    return referral.submitted_by_user_id is not None and referral.submitted_by_user_id == actor.user_id

"""Who hears of an overdue item (for webhooks): within who may see its record, whom its level names.

A referral's item goes to MGEC, and to the referring partner only where the level says so (the
reminder of an unanswered information request); a case's item to MGEC and every participant, the
same as the case's own events.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from ..cases import visibility as case_visibility
from ..referrals import visibility as referral_visibility
from ..webhooks import visibility as webhook_visibility
from .evaluate import RESOURCE
from .models import OverdueItem
from .table import Subject, Told


def organisations_told(session: Session, item_id: uuid.UUID) -> set[uuid.UUID]:
    """The organisations an overdue item's event reaches."""
    item = session.get(OverdueItem, item_id)
    if item is None:
        return set()
    if item.subject is Subject.CASE:
        return case_visibility.organisations_seeing(session, item.subject_id)
    seeing = referral_visibility.organisations_seeing(session, item.subject_id)
    if item.told is Told.SUBMITTER:
        return seeing
    return seeing & case_visibility.mgec_ids(session)


webhook_visibility.register(RESOURCE, organisations_told)

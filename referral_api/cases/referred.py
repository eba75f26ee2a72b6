"""The cases an organisation's own case numbers lead to, as the referrals part provides them.

A partner's `external_reference` is on each referral it sends, and every referral it has had
accepted into a case is linked to that case; cases sit below referrals and never import them. So
the referrals part registers here, when it is imported, the query of the cases an organisation's
accepted referrals with one external_reference were linked to (`referred.register(fn)`). Without a
registered provider only the number a participation keeps (its first referral's) finds a case: it
fails closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import sqlalchemy as sa

CasesReferredAs = Callable[[uuid.UUID, str], sa.Select]
_provider: list[CasesReferredAs] = []


def register(provider: CasesReferredAs) -> None:
    """Set the function giving the SELECT of the case ids an organisation referred under a number."""
    _provider[:] = [provider]


def cases_referred_as(organisation_id: uuid.UUID, external_reference: str) -> sa.Select | None:
    """The SELECT of the ids of the cases `organisation_id` had a referral numbered
    `external_reference` accepted into, or None when no provider is registered."""
    return _provider[0](organisation_id, external_reference) if _provider else None

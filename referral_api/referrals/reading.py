"""Reading referrals: one by id or reference, a keyset page, duplicate candidates. Reads of personal
data are audited."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from ..access import Actor
from ..audit.actions import AuditAction
from ..db import commit
from ..privacy import load_keys
from ..records import by_id_or_reference, deny, keyset_page
from . import guards, matching
from .models import MatchKey, Referral
from .trail import audit_referral
from .visibility import Audience, audience, visible_to


def load(session: Session, actor: Actor, *, ref: str, for_update: bool = False) -> tuple[Referral, Audience]:
    """The referral `ref` (id or REF- reference) and how the caller sees it; 404 (audited) when it may not."""
    query = sa.select(Referral).where(by_id_or_reference(Referral, ref))
    query = query.options(selectinload(Referral.messages))
    if for_update:
        # Concurrent moves of one referral queue here; the first wins, the rest see its result (409).
        query = query.with_for_update(of=Referral)
    referral = session.scalar(query)
    seen = audience(actor, referral) if referral is not None else None
    if referral is None or seen is None:
        raise deny(
            session, actor, resource_type="referral", resource_id=referral.id if referral else None, what=ref
        )
    return referral, seen


def read(session: Session, actor: Actor, *, ref: str) -> tuple[Referral, Audience]:
    """One referral in the caller's view; a read that shows personal data is audited."""
    referral, seen = load(session, actor, ref=ref)
    if seen is not Audience.STATUS:
        audit_referral(session, actor, AuditAction.REFERRAL_READ, referral)
        commit(session)
    return referral, seen


def list_for(
    session: Session, actor: Actor, *, args: dict[str, Any]
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
    rows, next_cursor = keyset_page(
        session,
        query,
        at=Referral.submitted_at,
        row_id=Referral.id,
        limit=args["limit"],
        cursor=args.get("cursor"),
    )
    items = [(r, audience(actor, r) or Audience.STATUS) for r in rows]
    personal = [r for r, seen in items if seen is not Audience.STATUS]
    if personal:
        load_keys(session, personal)
        audit_referral(
            session, actor, AuditAction.REFERRAL_READ, None, details={"listed": [str(r.id) for r in personal]}
        )
        commit(session)
    return items, next_cursor


def matches(session: Session, actor: Actor, *, ref: str) -> list[matching.Match]:
    """Duplicate candidates of a referral: found through its stored blind indexes, then scored."""
    referral, seen = load(session, actor, ref=ref)
    guards.coordinator(actor, seen)
    keys = set(
        session.execute(
            sa.select(MatchKey.kind, MatchKey.digest).where(MatchKey.referral_id == referral.id)
        ).all()
    )
    found = matching.candidates(session, referral.id, keys, {"date_of_birth": referral.date_of_birth})
    audit_referral(
        session, actor, AuditAction.REFERRAL_SEARCH_DUPLICATES, referral, details={"candidates": len(found)}
    )
    commit(session)
    return found
